//! Revoked tokens: a denylist checked on every validation (also on cache hits).
//! A token is refused when its `jti`, any jti it was derived from
//! ([`Derivation`](crate::Derivation)), its `sid` or its subject is revoked.
//!
//! Revocations arrive through [`Guard::revoke`](crate::Guard::revoke) — from the
//! IdP's revocation stream subscriber, or directly in tests.
//!
//! **How long an entry is kept** is derived, not configured: the validator
//! refuses tokens that live longer than `GUARD_MAX_TOKEN_LIFETIME_SECS` or
//! that are issued in the future beyond the leeway, so a token issued before
//! a revocation arrived expires at most `max lifetime + leeway` after that,
//! and is accepted at most `leeway` longer. Every entry is kept exactly that
//! long from its arrival; then no token it could match is valid any more.
//!
//! **A full denylist never silently forgets.** It is bounded
//! (`GUARD_REVOCATION_CAPACITY`); past that, the entry that would expire
//! first is dropped and the denylist remembers when it had arrived: from
//! then on every token issued before that moment (plus the leeway) is
//! refused, because it might be the one that entry named. Tokens issued
//! later are unaffected, and the refusal ends by itself once those tokens
//! have expired. The overflow is logged and shown on `/readyz`.
//!
//! Hand-written rather than a cache crate (the verified-token cache uses
//! moka): a size-bounded cache evicts silently and by its own policy, which is
//! exactly what a denylist must not do. Entries all live equally long from
//! arrival, so arrival order is expiry order and a queue suffices.
use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::claims::AccessClaims;

/// What the IdP revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// One access token, by `jti`.
    Token { jti: String },
    /// Every token of an IdP session (logout), by `sid`.
    Session { sid: String },
    /// Every token of a subject issued before a time (seconds since the epoch):
    /// "revoke this user's sessions", password change.
    Subject { sub: String, issued_before: i64 },
}

impl Revocation {
    /// Whether a token with these claims is revoked by this entry: a token
    /// revocation also matches every token derived from that token.
    pub fn matches(&self, claims: &AccessClaims) -> bool {
        match self {
            Self::Token { jti } => {
                claims.jti == *jti || claims.derived_from.jtis().any(|a| a == jti)
            }
            Self::Session { sid } => claims.sid.as_deref() == Some(sid.as_str()),
            Self::Subject { sub, issued_before } => {
                claims.sub == *sub && claims.iat < *issued_before
            }
        }
    }
}

/// A key a revocation can name a token by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// Its `jti` or an ancestor's: a token revocation also ends every token
    /// derived from that token.
    Jti(&'a str),
    /// Its `sid`: a session revocation.
    Sid(&'a str),
    /// Its `sub`: a subject revocation, for tokens issued before its cut-off.
    Sub(&'a str),
}

impl<'a> Key<'a> {
    pub fn value(self) -> &'a str {
        match self {
            Self::Jti(v) | Self::Sid(v) | Self::Sub(v) => v,
        }
    }
}

/// Every key a revocation can name `claims` by: what each store of
/// revocations (this denylist, the IdP's copy of its log) looks up.
pub fn keys(claims: &AccessClaims) -> impl Iterator<Item = Key<'_>> {
    std::iter::once(Key::Jti(claims.jti.as_str()))
        .chain(claims.derived_from.jtis().map(Key::Jti))
        .chain(claims.sid.as_deref().map(Key::Sid))
        .chain(std::iter::once(Key::Sub(claims.sub.as_str())))
}

/// What the denylist holds, for `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenylistStatus {
    pub entries: usize,
    pub capacity: usize,
    /// After an overflow: tokens issued before this time (Unix seconds) are
    /// refused until they expire.
    pub overflow_refuses_issued_before: Option<i64>,
}

#[derive(Clone, Copy)]
enum Kind {
    Token,
    Session,
    Subject,
}

struct Entry {
    deadline: Instant,
    /// When it arrived (Unix seconds): what an overflow remembers.
    arrived: i64,
    /// Subject entries: tokens issued before this are revoked.
    issued_before: i64,
}

#[derive(Default)]
struct Lists {
    jtis: HashMap<String, Entry>,
    sids: HashMap<String, Entry>,
    subjects: HashMap<String, Entry>,
    /// Arrival order, which is expiry order. A key revoked again appears
    /// twice; only the occurrence matching its entry's deadline removes it.
    queue: VecDeque<(Instant, Kind, String)>,
    /// Set by an overflow: tokens with `iat` below it are refused.
    forgotten_before: Option<i64>,
}

impl Lists {
    fn map(&mut self, kind: Kind) -> &mut HashMap<String, Entry> {
        match kind {
            Kind::Token => &mut self.jtis,
            Kind::Session => &mut self.sids,
            Kind::Subject => &mut self.subjects,
        }
    }

    fn len(&self) -> usize {
        self.jtis.len() + self.sids.len() + self.subjects.len()
    }

    /// Removes the oldest queued entry; answers its arrival time if it was live.
    fn pop_oldest(&mut self) -> Option<Option<i64>> {
        let (deadline, kind, key) = self.queue.pop_front()?;
        let map = self.map(kind);
        if map.get(&key).is_some_and(|e| e.deadline == deadline) {
            return Some(map.remove(&key).map(|e| e.arrived));
        }
        Some(None)
    }
}

pub(crate) struct Denylist {
    /// Nothing was ever revoked: skip the lookups.
    empty: AtomicBool,
    retention: Duration,
    leeway: i64,
    capacity: usize,
    lists: RwLock<Lists>,
}

impl Denylist {
    /// Entries kept for `max_token_life + 2 × leeway` from arrival; at most `capacity`.
    pub(crate) fn new(max_token_life: Duration, leeway: Duration, capacity: usize) -> Self {
        Self {
            empty: AtomicBool::new(true),
            retention: max_token_life + 2 * leeway,
            leeway: leeway.as_secs() as i64,
            capacity: capacity.max(1),
            lists: RwLock::new(Lists::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Lists> {
        self.lists.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add(&self, revocation: &Revocation) {
        let now = Instant::now();
        let arrived = unix_now();
        let (kind, key, issued_before) = match revocation {
            Revocation::Token { jti } => (Kind::Token, jti, 0),
            Revocation::Session { sid } => (Kind::Session, sid, 0),
            Revocation::Subject { sub, issued_before } => (Kind::Subject, sub, *issued_before),
        };
        let deadline = now + self.retention;
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        // Expired entries go first; they can no longer match a valid token.
        while lists.queue.front().is_some_and(|(d, _, _)| *d <= now) {
            lists.pop_oldest();
        }
        let map = lists.map(kind);
        // A later, earlier-dated subject revocation never shortens the window.
        let issued_before = map
            .get(key.as_str())
            .map_or(issued_before, |e| e.issued_before.max(issued_before));
        map.insert(
            key.clone(),
            Entry {
                deadline,
                arrived,
                issued_before,
            },
        );
        lists.queue.push_back((deadline, kind, key.clone()));
        while lists.len() > self.capacity {
            if let Some(Some(arrived)) = lists.pop_oldest() {
                let before = arrived + self.leeway + 1;
                if lists.forgotten_before.is_none_or(|b| b < before) {
                    lists.forgotten_before = Some(before);
                    tracing::error!(
                        capacity = self.capacity,
                        refused_if_issued_before = before,
                        "revocation denylist is full: refusing every token issued before its oldest forgotten entry"
                    );
                }
            }
        }
        self.empty.store(false, Ordering::Release);
    }

    pub(crate) fn is_revoked(&self, claims: &AccessClaims) -> bool {
        if self.empty.load(Ordering::Acquire) {
            return false;
        }
        let lists = self.read();
        keys(claims).any(|key| match key {
            Key::Jti(jti) => lists.jtis.contains_key(jti),
            Key::Sid(sid) => lists.sids.contains_key(sid),
            Key::Sub(sub) => lists
                .subjects
                .get(sub)
                .is_some_and(|e| claims.iat < e.issued_before),
        }) || lists.forgotten_before.is_some_and(|b| claims.iat < b)
    }

    pub(crate) fn status(&self) -> DenylistStatus {
        let lists = self.read();
        DenylistStatus {
            entries: lists.len(),
            capacity: self.capacity,
            overflow_refuses_issued_before: lists.forgotten_before,
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sid: Option<&str>, sub: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: vec!["order".into()],
            client_id: "c".into(),
            scope: String::new(),
            roles: vec![],
            exp: iat + 300,
            iat,
            nbf: iat,
            jti: jti.into(),
            sid: sid.map(Into::into),
            auth_time: None,
            acr: None,
            amr: vec![],
            act: None,
            cnf: None,
            derived_from: Default::default(),
        }
    }

    #[test]
    fn revoking_a_root_revokes_every_token_derived_from_it() {
        let list = Denylist::new(Duration::from_secs(60), Duration::ZERO, 100);
        let root = claims("root", None, "alice", 100);
        let first = derived(&root, "first");
        let second = derived(&first, "second");
        let unrelated = derived(&claims("other", None, "alice", 100), "third");
        list.add(&Revocation::Token { jti: "x".into() });
        assert!(!list.is_revoked(&second));
        let revocation = Revocation::Token { jti: "root".into() };
        list.add(&revocation);
        for token in [&root, &first, &second] {
            assert!(list.is_revoked(token) && revocation.matches(token));
        }
        assert!(!list.is_revoked(&unrelated) && !revocation.matches(&unrelated));
        list.add(&Revocation::Token {
            jti: "third".into(),
        });
        assert!(list.is_revoked(&unrelated));
    }

    fn derived(parent: &AccessClaims, jti: &str) -> AccessClaims {
        AccessClaims {
            jti: jti.into(),
            derived_from: crate::Derivation::from_parent(&parent.jti, &parent.derived_from)
                .unwrap(),
            ..parent.clone()
        }
    }

    #[test]
    fn each_kind_of_revocation_matches_only_its_tokens() {
        let list = Denylist::new(Duration::from_secs(60), Duration::ZERO, 100);
        let a = claims("j1", Some("s1"), "alice", 100);
        let b = claims("j2", Some("s2"), "bob", 100);
        assert!(!list.is_revoked(&a));

        list.add(&Revocation::Token { jti: "j1".into() });
        assert!(list.is_revoked(&a) && !list.is_revoked(&b));

        let b_other_session = claims("j3", Some("s3"), "bob", 100);
        list.add(&Revocation::Session { sid: "s2".into() });
        assert!(list.is_revoked(&b) && !list.is_revoked(&b_other_session));

        let newer = claims("j4", None, "bob", 200);
        list.add(&Revocation::Subject {
            sub: "bob".into(),
            issued_before: 150,
        });
        assert!(list.is_revoked(&b_other_session), "issued before 150");
        assert!(!list.is_revoked(&newer), "issued after the revocation");
        // A later, earlier-dated revocation never shortens the window.
        list.add(&Revocation::Subject {
            sub: "bob".into(),
            issued_before: 50,
        });
        assert!(list.is_revoked(&b_other_session));
    }

    #[test]
    fn revocations_serialize_with_a_kind_tag() {
        let r = Revocation::Subject {
            sub: "u".into(),
            issued_before: 5,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "subject", "sub": "u", "issued_before": 5})
        );
        assert_eq!(serde_json::from_value::<Revocation>(json).unwrap(), r);
    }

    fn token(jti: &str, iat: i64) -> AccessClaims {
        claims(jti, None, "u", iat)
    }

    #[test]
    fn an_entry_is_kept_for_the_longest_token_life_then_dropped() {
        // No lifetime, no leeway: an entry can match nothing once added.
        let list = Denylist::new(Duration::ZERO, Duration::ZERO, 10);
        list.add(&Revocation::Token { jti: "a".into() });
        list.add(&Revocation::Token { jti: "b".into() });
        assert!(
            !list.is_revoked(&token("a", 0)),
            "expired entries are swept"
        );
        assert_eq!(list.status().entries, 1);

        let list = Denylist::new(Duration::from_secs(300), Duration::from_secs(30), 10);
        list.add(&Revocation::Token { jti: "a".into() });
        list.add(&Revocation::Token { jti: "b".into() });
        assert!(list.is_revoked(&token("a", 0)) && list.is_revoked(&token("b", 0)));
    }

    #[test]
    fn a_full_denylist_refuses_what_it_forgot_instead_of_forgetting_silently() {
        let list = Denylist::new(Duration::from_secs(300), Duration::from_secs(30), 2);
        let now = unix_now();
        for jti in ["a", "b", "c"] {
            list.add(&Revocation::Token { jti: jti.into() });
        }
        let status = list.status();
        assert_eq!(status.entries, 2);
        let before = status
            .overflow_refuses_issued_before
            .expect("overflow recorded");
        assert!(
            before > now + 30,
            "covers tokens issued up to the leeway after it arrived"
        );
        // "a" was dropped, yet a token it could name (issued before it arrived) is refused.
        assert!(list.is_revoked(&token("a", now - 10)));
        assert!(list.is_revoked(&token("unrelated-old", now - 10)));
        // A token issued after that point is not affected.
        assert!(!list.is_revoked(&token("fresh", before)));
        assert!(list.is_revoked(&token("c", before)));
    }
}
