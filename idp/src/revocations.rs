//! Revocations of self-contained access tokens — by `jti`, by `sid`, or by
//! subject ("issued before T") — as an append-only log in PostgreSQL, read
//! in commit order.
//!
//! # Why no committed revocation is ever skipped
//!
//! A reader keeps a position and asks for the rows after it. That is only
//! safe if a row can never become visible *behind* a position a reader has
//! already passed. Ids from a sequence do not have that property: an id is
//! drawn at INSERT, the row becomes visible at COMMIT, and two concurrent
//! transactions can commit in the opposite order of their ids. So rows are
//! not read by id but by `position`, which a deferred trigger assigns in the
//! committing transaction's last step (migration `…000008`), under one
//! transaction-scoped advisory lock. PostgreSQL makes a commit visible before
//! it releases the transaction's locks, so the transaction holding the lock
//! is visible before the next one can draw a number: a reader that sees
//! position `p` committed sees every position below `p`, and a row committed
//! later always has a higher position than anything visible before it. Every
//! reader here — the [`Hub`], a stream's backlog ([`page`]) — pages by
//! position, to the end of the log, and the stream's `Last-Event-ID` is a
//! position. A transaction that aborts leaves a gap in the numbers and never a
//! row that appears later.
//!
//! The same trigger sends the `NOTIFY` that wakes every replica's hub. A
//! token obtained by exchange (RFC 8693) needs no row of its own: it names
//! the tokens it was derived from (`derived_from`), and a revocation of any of
//! them ends it at every reader ([`is_revoked`], each service's guard). Deleting rows (housekeeping, [`purge`]) only ever removes revocations
//! whose tokens have all expired, and records how far it went, so a
//! subscriber resuming from before that point is sent a full snapshot
//! instead of a silent gap ([`Resume`]).
//!
//! The IdP itself consults the log in `/userinfo` and `/introspect`
//! ([`is_revoked`]); the token-exchange grant consults this process's copy of
//! it ([`view`]), falling back to the log; services learn it from the stream
//! (`http::revocations`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use guard::AccessClaims;
use guard::revocation::Revocation;

pub mod view;

/// The PostgreSQL channel that announces new revocations (sent by the trigger).
pub const CHANNEL: &str = "baton_idp_revocations";

/// Rows read per query; readers always page on to the end of the log.
pub const PAGE: i64 = 1000;

/// Records a revocation by `jti` or `sid` (`kind`), kept until `expires_at`
/// (when every token it concerns has expired). Revoking the same thing twice
/// records it once. A `jti` revocation also revokes every token exchanged
/// from that token, which names it in `derived_from`.
pub async fn record(
    db: &mut PgConnection,
    kind: &str,
    value: &str,
    reason: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    view::note_local_write(value);
    let inserted = sqlx::query!(
        "INSERT INTO revocations (kind, value, reason, expires_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM revocations WHERE kind = $1 AND value = $2)",
        kind,
        value,
        reason,
        expires_at,
    )
    .execute(&mut *db)
    .await?
    .rows_affected();
    if inserted == 1 {
        tracing::info!(kind, value, reason, "token revoked");
    }
    Ok(())
}

/// Revokes every token of `sub` issued before now (password change, admin action).
pub async fn record_subject(
    db: &mut PgConnection,
    sub: &str,
    reason: &str,
    longest_token_life: Duration,
) -> sqlx::Result<()> {
    let now = OffsetDateTime::now_utc();
    view::note_local_write(sub);
    sqlx::query!(
        "INSERT INTO revocations (kind, value, reason, issued_before, expires_at)
         VALUES ('sub', $1, $2, $3, $4)",
        sub,
        reason,
        now,
        now + longest_token_life,
    )
    .execute(&mut *db)
    .await?;
    tracing::info!(sub, reason, "every token of a subject revoked");
    Ok(())
}

/// Tokens carry whole seconds (`iat`), so a subject revocation at 10.7 s
/// covers every token with `iat` 10, also one signed at 10.9 s. Before
/// signing a new token for `sub`, wait out the second of its latest
/// revocation (at most a second, and only right after one), so that a sign-in
/// just after a password change is not refused by the validators.
pub async fn wait_out_subject_revocation(db: &PgPool, sub: &str) -> sqlx::Result<()> {
    let latest = sqlx::query_scalar!(
        "SELECT max(issued_before) FROM revocations WHERE kind = 'sub' AND value = $1",
        sub,
    )
    .fetch_one(db)
    .await?;
    if let Some(latest) = latest {
        let next_second = latest.unix_timestamp() + 1;
        let wait =
            (next_second as f64) - OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
    Ok(())
}

/// Whether an access token is revoked by any entry of the log: its `jti` or
/// the jti of a token it was exchanged from (`derived_from`), its session, or
/// its subject — a subject revocation at `T` covers every token with
/// `iat < T` (whole seconds below). One indexed read, no lock.
pub async fn is_revoked(db: impl PgExecutor<'_>, claims: &AccessClaims) -> sqlx::Result<bool> {
    // Borrowed: no copy of the jtis on the grant path.
    let jtis: Vec<&str> = std::iter::once(claims.jti.as_str())
        .chain(claims.derived_from.jtis())
        .collect();
    let revoked = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM revocations
         WHERE (kind = 'jti' AND value = ANY($1)) OR (kind = 'sid' AND value = $2)
            OR (kind = 'sub' AND value = $3 AND issued_before > to_timestamp($4))) AS "revoked!""#,
        &jtis as &[&str],
        claims.sid.as_deref(),
        &claims.sub,
        claims.iat as f64,
    )
    .fetch_one(db)
    .await?;
    Ok(revoked)
}

/// Deletes revocations whose tokens have all expired (an hour past, beyond
/// any validator's skew) and records the highest position deleted. Answers
/// how many rows went.
pub async fn purge(db: &PgPool) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query!(
        r#"WITH gone AS (DELETE FROM revocations WHERE expires_at < now() - interval '1 hour'
                       RETURNING position)
         SELECT count(*) AS "deleted!", max(position) AS highest FROM gone"#,
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(highest) = gone.highest {
        sqlx::query!(
            "UPDATE revocation_log SET purged_through = GREATEST(purged_through, $1)",
            highest,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(gone.deleted as u64)
}

/// One revocation as the stream sends it.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// Its position in the log (the SSE `id`).
    pub position: i64,
    /// `guard::Revocation` JSON plus `at` (Unix milliseconds of the revocation).
    pub data: String,
    /// What it revokes.
    pub revocation: Revocation,
    /// When every token it concerns has expired (Unix seconds).
    pub expires_at: i64,
}

struct Row {
    position: i64,
    kind: String,
    value: String,
    issued_before: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl From<Row> for StreamEvent {
    fn from(r: Row) -> Self {
        let at = (r.created_at.unix_timestamp_nanos() / 1_000_000) as i64;
        let revocation = match r.kind.as_str() {
            "jti" => Revocation::Token { jti: r.value },
            "sid" => Revocation::Session { sid: r.value },
            _ => Revocation::Subject {
                sub: r.value,
                // Whole seconds, rounded up: `iat < issued_before` then also
                // covers a token signed earlier in the revocation's second.
                issued_before: r.issued_before.map_or(0, ceil_seconds),
            },
        };
        // The stream's JSON is guard's own `Revocation` plus `at`.
        let mut data = json!(revocation);
        data["at"] = json!(at);
        StreamEvent {
            position: r.position,
            data: data.to_string(),
            revocation,
            expires_at: r.expires_at.unix_timestamp(),
        }
    }
}

fn ceil_seconds(t: OffsetDateTime) -> i64 {
    let whole = t.unix_timestamp();
    if t.nanosecond() > 0 { whole + 1 } else { whole }
}

/// Up to [`PAGE`] revocations after `position` that still matter, in log order.
pub async fn page(db: &PgPool, after: i64) -> sqlx::Result<Vec<StreamEvent>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT position AS "position!", kind, value, issued_before, created_at, expires_at
           FROM revocations
           WHERE position > $1 AND expires_at > now() ORDER BY position LIMIT $2"#,
        after,
        PAGE,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(StreamEvent::from).collect())
}

/// Where a subscriber starts reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Right after this position: nothing it may need is gone.
    After(i64),
    /// From the start: a first connection, or one whose position this log
    /// cannot vouch for (`snapshot` names why), which therefore gets every
    /// revocation that still matters.
    Snapshot { reason: Option<&'static str> },
}

/// Where a subscriber that last saw `last_seen` (`Last-Event-ID`) resumes.
pub async fn resume(db: &PgPool, last_seen: Option<i64>) -> sqlx::Result<Resume> {
    let Some(last_seen) = last_seen else {
        return Ok(Resume::Snapshot { reason: None });
    };
    let log = sqlx::query!(
        r#"SELECT purged_through,
                  (SELECT last_value FROM revocation_positions) AS "issued!"
           FROM revocation_log"#,
    )
    .fetch_one(db)
    .await?;
    let (purged_through, issued) = (log.purged_through, log.issued);
    Ok(if last_seen < purged_through {
        Resume::Snapshot {
            reason: Some("the log was purged past the last event seen"),
        }
    } else if last_seen > issued {
        Resume::Snapshot {
            reason: Some("the last event seen is not from this log"),
        }
    } else {
        Resume::After(last_seen)
    })
}

/// What the hub broadcasts: events, then a checkpoint once it has read to
/// the end of the log.
#[derive(Debug, Clone)]
pub enum HubItem {
    Event(Arc<StreamEvent>),
    /// Every revocation committed before `at` (Unix milliseconds) is at or
    /// below `position` and has been broadcast.
    CaughtUp {
        position: i64,
        at: i64,
    },
}

/// Fans new revocations out to every open stream of this process: one
/// `LISTEN` connection and one reader, however many subscribers.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<HubItem>,
}

/// How often the hub reads the log even without a notification: a
/// notification lost during a reconnect is then only late, never lost, and
/// subscribers get a checkpoint at least this often.
pub const POLL: Duration = Duration::from_secs(2);

impl Hub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(4 * PAGE as usize).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubItem> {
        self.tx.subscribe()
    }

    /// Runs until `stopping` turns true.
    pub async fn run(self, db: PgPool, mut stopping: watch::Receiver<bool>) {
        let mut last: i64 = loop {
            match sqlx::query_scalar!(
                r#"SELECT COALESCE(max(position), 0) AS "last!" FROM revocations"#
            )
            .fetch_one(&db)
            .await
            {
                Ok(position) => break position,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation hub cannot read the log yet");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        _ = stopping.changed() => return,
                    }
                }
            }
        };
        let mut listener: Option<PgListener> = None;
        let mut tick = tokio::time::interval(POLL);
        loop {
            if *stopping.borrow() {
                return;
            }
            if listener.is_none() {
                listener = listen(&db).await;
            }
            tokio::select! {
                received = async {
                    match listener.as_mut() {
                        Some(l) => l.try_recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = received {
                        tracing::warn!(error = %e, "revocation LISTEN connection lost; polling until it is back");
                        listener = None;
                    }
                }
                _ = tick.tick() => {}
                _ = stopping.changed() => return,
            }
            match self.read_to_end(&db, &mut last).await {
                // No subscriber is fine: nobody to tell.
                Ok(at) => drop(self.tx.send(HubItem::CaughtUp { position: last, at })),
                Err(e) => tracing::warn!(error = %e, "revocation hub cannot read the log"),
            }
        }
    }

    /// Broadcasts every row after `last`, page by page; answers the time
    /// (Unix milliseconds) taken before the read that found the end.
    async fn read_to_end(&self, db: &PgPool, last: &mut i64) -> sqlx::Result<i64> {
        loop {
            let at = unix_millis();
            let events = page(db, *last).await?;
            let full = events.len() as i64 == PAGE;
            for e in events {
                *last = e.position;
                let _ = self.tx.send(HubItem::Event(Arc::new(e)));
            }
            if !full {
                return Ok(at);
            }
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// Now, in Unix milliseconds.
pub fn unix_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(db).await.ok()?;
    l.listen(CHANNEL).await.ok()?;
    Some(l)
}
/// Open revocation streams per client in this process, for the per-client
/// cap (`IDP_REVOCATION_STREAMS_PER_CLIENT`); cheap to clone.
#[derive(Clone, Default)]
pub struct StreamCounts(Arc<Mutex<HashMap<String, usize>>>);

/// One open stream, counted until dropped.
pub struct StreamSlot {
    counts: StreamCounts,
    client: String,
}

impl StreamCounts {
    /// A slot for one more stream of `client`, unless it has `limit` open.
    pub fn open(&self, client: &str, limit: usize) -> Option<StreamSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(client.to_owned()).or_default();
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(StreamSlot {
            counts: self.clone(),
            client: client.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.client);
            }
        }
    }
}
