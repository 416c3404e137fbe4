//! This process's copy of the revocation log, for the token-exchange grant:
//! "is the subject token revoked?" without a PostgreSQL round trip per grant.
//!
//! # Why the grant may ask a copy
//!
//! A token obtained by exchange names the tokens it was derived from
//! (`derived_from`) and keeps its subject token's `sid`, `sub` and `iat`. So
//! every revocation that ends the subject token ends the exchanged one too, at
//! every validator, the moment that validator learns of it. The grant's own
//! check only saves issuing a token that is already refused wherever the
//! revocation is known; it does not have to be ahead of the validators, only
//! as current as they are. This copy is fed the way their denylists are: from
//! the revocation [`Hub`] (woken by the log's `NOTIFY`, and reading the log
//! every [`POLL`] anyway), so it lags a commit by milliseconds.
//!
//! # When it answers, and when the log does
//!
//! [`View::verdict`] answers `None` ("ask the log", [`super::is_revoked`])
//! unless all of these hold:
//!
//! - it holds the whole log: loaded from the start (a snapshot), then followed
//!   without a gap; a hub it fell behind (its broadcast lagged) or more than
//!   [`CAPACITY`] live entries make it reload, and until then the log answers;
//! - it is current: everything committed before a moment at most [`MAX_LAG`]
//!   ago is in it (the hub's checkpoints say so at least every [`POLL`]), so a
//!   hub cut off from PostgreSQL never leaves a stale copy answering;
//! - this process did not itself write a revocation of one of the token's
//!   keys (`jti` and ancestors, `sid`, `sub`) in the last [`LOCAL_WRITE_TTL`]:
//!   a revocation written here is refused here at once, even in the
//!   milliseconds before its commit reaches the hub ([`note_local_write`]). A
//!   revocation written by another replica or the CLI reaches the grant as it
//!   reaches the validators.
//!
//! Hand-written rather than a cache crate: like guard's denylist, it must
//! never evict silently; it either holds the whole log or says it does not.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{broadcast, watch};

use guard::AccessClaims;
use guard::revocation::{self, Key, Revocation};

use super::{Hub, HubItem, POLL, StreamEvent, page, unix_millis};

/// Live revocations held at most; past that the log answers.
pub const CAPACITY: usize = 200_000;

/// How old the copy's latest "caught up" may be for it to answer.
pub const MAX_LAG: Duration = Duration::from_secs(3 * POLL.as_secs());

/// How long a revocation written by this process sends its keys to the log.
pub const LOCAL_WRITE_TTL: Duration = Duration::from_secs(30);

/// Entries are dropped this long after every token they concern expired.
const EXPIRY_MARGIN: i64 = 60;

/// The IdP's copy of the revocation log; cheap to clone.
#[derive(Clone, Default)]
pub struct View(Arc<RwLock<Lists>>);

#[derive(Default)]
struct Lists {
    /// Revoked jtis, sids and subjects (with `issued_before`), each with the
    /// time (Unix seconds) when every token it concerns has expired.
    jtis: HashMap<String, i64>,
    sids: HashMap<String, i64>,
    subjects: HashMap<String, (i64, i64)>,
    /// Every revocation committed before this (Unix milliseconds) is here;
    /// `None` while the copy is not whole (before or between snapshots).
    complete_as_of: Option<i64>,
    /// When expired entries were last dropped (Unix seconds).
    swept_at: i64,
}

impl Lists {
    fn len(&self) -> usize {
        self.jtis.len() + self.sids.len() + self.subjects.len()
    }

    fn insert(&mut self, revocation: &Revocation, expires_at: i64) {
        match revocation {
            Revocation::Token { jti } => {
                self.jtis.insert(jti.clone(), expires_at);
            }
            Revocation::Session { sid } => {
                self.sids.insert(sid.clone(), expires_at);
            }
            Revocation::Subject { sub, issued_before } => {
                let entry = self.subjects.entry(sub.clone()).or_insert((0, 0));
                // Several subject revocations: the latest cut-off covers all.
                *entry = (entry.0.max(*issued_before), entry.1.max(expires_at));
            }
        }
    }

    fn drop_expired(&mut self, now: i64) {
        let live = |expires_at: i64| expires_at + EXPIRY_MARGIN > now;
        self.jtis.retain(|_, e| live(*e));
        self.sids.retain(|_, e| live(*e));
        self.subjects.retain(|_, (_, e)| live(*e));
        self.swept_at = now;
    }

    fn matches(&self, claims: &AccessClaims) -> bool {
        revocation::keys(claims).any(|key| match key {
            Key::Jti(jti) => self.jtis.contains_key(jti),
            Key::Sid(sid) => self.sids.contains_key(sid),
            Key::Sub(sub) => self
                .subjects
                .get(sub)
                .is_some_and(|(issued_before, _)| claims.iat < *issued_before),
        })
    }
}

/// Why the copy is not whole.
enum Gap {
    /// More than [`CAPACITY`] live revocations.
    TooLarge,
    /// It fell behind the hub's broadcast.
    Lagged,
    /// The log could not be read.
    Read(sqlx::Error),
}

impl View {
    /// Whether `claims` is revoked, from the copy; `None` when the copy cannot
    /// say (see the module doc): the caller asks the log.
    pub fn verdict(&self, claims: &AccessClaims) -> Option<bool> {
        if written_here(claims) {
            return None;
        }
        let lists = self.0.read().unwrap_or_else(|e| e.into_inner());
        let as_of = lists.complete_as_of?;
        if unix_millis() - as_of > MAX_LAG.as_millis() as i64 {
            return None;
        }
        Some(lists.matches(claims))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Lists> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows `hub` until `stopping` turns true: a snapshot of the log first
    /// (and again after any gap), then every revocation the hub broadcasts.
    pub async fn run(self, hub: Hub, db: PgPool, mut stopping: watch::Receiver<bool>) {
        loop {
            // Subscribed first: what the hub broadcasts from here on waits in
            // the subscription while the snapshot reads the log.
            let mut live = hub.subscribe();
            let gap = match self.snapshot(&db).await {
                Ok(()) => match self.follow(&mut live, &mut stopping).await {
                    Some(gap) => gap,
                    None => return,
                },
                Err(gap) => gap,
            };
            self.write().complete_as_of = None;
            let (reason, retry) = match gap {
                Gap::Lagged => ("it fell behind the hub".to_owned(), Duration::ZERO),
                Gap::Read(e) => (format!("the log cannot be read: {e}"), POLL),
                Gap::TooLarge => (
                    format!("more than {CAPACITY} live revocations"),
                    LOCAL_WRITE_TTL,
                ),
            };
            tracing::warn!(%reason, "revocation copy not whole; the exchange grant reads the log");
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// Applies what the hub broadcasts until a gap (answered) or the end (`None`).
    async fn follow(
        &self,
        live: &mut broadcast::Receiver<HubItem>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Option<Gap> {
        loop {
            tokio::select! {
                item = live.recv() => match item {
                    Ok(HubItem::Event(e)) => {
                        if !self.apply(&e) {
                            return Some(Gap::TooLarge);
                        }
                    }
                    Ok(HubItem::CaughtUp { at, .. }) => self.caught_up(at),
                    Err(broadcast::error::RecvError::Lagged(_)) => return Some(Gap::Lagged),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = stopping.changed() => return None,
            }
        }
    }

    /// Reads the whole log (every revocation that still matters) into a new
    /// copy. Events the hub broadcasts meanwhile wait in the subscription and
    /// are applied after (applying one twice changes nothing).
    async fn snapshot(&self, db: &PgPool) -> Result<(), Gap> {
        let started = unix_millis();
        let mut fresh = Lists::default();
        let mut after = 0;
        loop {
            let events = page(db, after).await.map_err(Gap::Read)?;
            let full = events.len() as i64 == super::PAGE;
            for e in &events {
                fresh.insert(&e.revocation, e.expires_at);
                after = e.position;
            }
            if fresh.len() > CAPACITY {
                return Err(Gap::TooLarge);
            }
            if !full {
                break;
            }
        }
        fresh.complete_as_of = Some(started);
        *self.write() = fresh;
        Ok(())
    }

    /// Adds one revocation; answers whether the copy is still whole.
    fn apply(&self, e: &StreamEvent) -> bool {
        let mut lists = self.write();
        lists.insert(&e.revocation, e.expires_at);
        if lists.len() > CAPACITY {
            lists.drop_expired(guard::unix_now());
        }
        if lists.len() > CAPACITY {
            *lists = Lists::default();
            return false;
        }
        true
    }

    /// The hub's checkpoint: everything committed before `at` is here.
    /// Expired entries go at most once per [`POLL`]: the hub checkpoints after
    /// every notification, and a sweep walks the whole copy under its lock.
    fn caught_up(&self, at: i64) {
        let mut lists = self.write();
        let now = guard::unix_now();
        if now - lists.swept_at >= POLL.as_secs() as i64 {
            lists.drop_expired(now);
        }
        lists.complete_as_of = lists.complete_as_of.map(|as_of| as_of.max(at));
    }
}

/// Values (jtis, sids, subjects) this process wrote a revocation of lately,
/// until when. Keyed by the value alone: a jti that equalled some sid would
/// only send one more check to the log. Process-wide because revocations are
/// written deep in transactions that hold a connection, not the application
/// state; two IdPs in one process (tests) share it, which only sends more
/// checks to the log.
static LOCAL_WRITES: LazyLock<Mutex<LocalWrites>> = LazyLock::new(Default::default);

/// At most this many values are remembered; past that, every check goes to
/// the log until the oldest would have been forgotten.
const LOCAL_WRITES_CAPACITY: usize = 10_000;

#[derive(Default)]
struct LocalWrites {
    values: HashMap<String, Instant>,
    /// After an overflow: every check asks the log until then.
    all_until: Option<Instant>,
}

fn local_writes() -> std::sync::MutexGuard<'static, LocalWrites> {
    LOCAL_WRITES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called by every revocation this process writes (its `jti`, `sid` or
/// `sub`), before its transaction commits: tokens with that key are checked
/// against the log for [`LOCAL_WRITE_TTL`], by which time the hub has long
/// brought the committed revocation into the copy.
pub fn note_local_write(value: &str) {
    let now = Instant::now();
    let until = now + LOCAL_WRITE_TTL;
    let mut w = local_writes();
    if w.values.len() >= LOCAL_WRITES_CAPACITY {
        w.values.retain(|_, t| *t > now);
    }
    if w.values.len() >= LOCAL_WRITES_CAPACITY {
        w.values.clear();
        w.all_until = Some(until);
        return;
    }
    w.values.insert(value.to_owned(), until);
}

/// Whether this process lately wrote a revocation of one of `claims`' keys.
fn written_here(claims: &AccessClaims) -> bool {
    let now = Instant::now();
    let w = local_writes();
    if w.all_until.is_some_and(|t| t > now) {
        return true;
    }
    if w.values.is_empty() {
        return false;
    }
    revocation::keys(claims).any(|key| w.values.get(key.value()).is_some_and(|t| *t > now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sid: &str, sub: &str, iat: i64) -> AccessClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://idp.example", "sub": sub, "aud": ["order"], "client_id": "gateway",
            "scope": "orders:read", "exp": iat + 300, "iat": iat, "nbf": iat, "jti": jti,
            "sid": sid,
        }))
        .expect("claims")
    }

    fn event(revocation: Revocation) -> StreamEvent {
        StreamEvent {
            position: 1,
            data: String::new(),
            revocation,
            expires_at: guard::unix_now() + 300,
        }
    }

    fn whole(view: &View) {
        view.write().complete_as_of = Some(unix_millis());
    }

    #[test]
    fn a_copy_that_is_not_whole_or_not_current_says_nothing() {
        let view = View::default();
        let c = claims("view-j1", "view-s1", "view-u1", guard::unix_now());
        assert_eq!(view.verdict(&c), None, "before its snapshot");
        whole(&view);
        assert_eq!(view.verdict(&c), Some(false));
        view.write().complete_as_of = Some(unix_millis() - MAX_LAG.as_millis() as i64 - 1);
        assert_eq!(view.verdict(&c), None, "its hub has not caught up lately");
        view.caught_up(unix_millis());
        assert_eq!(
            view.verdict(&c),
            Some(false),
            "a checkpoint makes it current"
        );
    }

    #[test]
    fn it_refuses_what_the_log_refuses() {
        let view = View::default();
        whole(&view);
        let now = guard::unix_now();
        for revocation in [
            Revocation::Token {
                jti: "view-j2".into(),
            },
            Revocation::Session {
                sid: "view-s2".into(),
            },
            Revocation::Subject {
                sub: "view-u2".into(),
                issued_before: now,
            },
        ] {
            assert!(view.apply(&event(revocation)));
        }
        assert_eq!(view.verdict(&claims("view-j2", "x", "y", now)), Some(true));
        assert_eq!(view.verdict(&claims("x", "view-s2", "y", now)), Some(true));
        assert_eq!(
            view.verdict(&claims("x", "y", "view-u2", now - 1)),
            Some(true)
        );
        assert_eq!(
            view.verdict(&claims("x", "y", "view-u2", now)),
            Some(false),
            "issued in the second the subject was revoked from: not before it"
        );
        // A token exchanged from the revoked one names it as an ancestor.
        let mut derived = claims("view-j3", "x", "y", now);
        derived.derived_from =
            guard::Derivation::from_parent("view-j2", &Default::default()).expect("one ancestor");
        assert_eq!(view.verdict(&derived), Some(true));
    }

    #[test]
    fn a_revocation_written_here_goes_to_the_log_until_the_copy_has_it() {
        let view = View::default();
        whole(&view);
        let now = guard::unix_now();
        note_local_write("view-j4");
        note_local_write("view-u4");
        assert_eq!(view.verdict(&claims("view-j4", "x", "y", now)), None);
        assert_eq!(view.verdict(&claims("x", "y", "view-u4", now)), None);
        let mut derived = claims("view-j5", "x", "y", now);
        derived.derived_from =
            guard::Derivation::from_parent("view-j4", &Default::default()).expect("one ancestor");
        assert_eq!(
            view.verdict(&derived),
            None,
            "nor any token derived from it"
        );
        assert_eq!(view.verdict(&claims("view-j6", "x", "y", now)), Some(false));
    }

    #[test]
    fn expired_revocations_are_dropped_and_a_full_copy_gives_up() {
        let view = View::default();
        whole(&view);
        let mut old = event(Revocation::Token {
            jti: "view-j7".into(),
        });
        old.expires_at = guard::unix_now() - EXPIRY_MARGIN - 1;
        assert!(view.apply(&old));
        view.caught_up(unix_millis());
        assert!(view.0.read().unwrap().jtis.is_empty());

        for i in 0..=CAPACITY {
            let e = event(Revocation::Token {
                jti: format!("view-full-{i}"),
            });
            if !view.apply(&e) {
                assert_eq!(i, CAPACITY, "gives up only past its capacity");
                let c = claims("view-full-0", "x", "y", guard::unix_now());
                assert_eq!(view.verdict(&c), None, "and then says nothing");
                return;
            }
        }
        panic!("the copy never filled up");
    }
}
