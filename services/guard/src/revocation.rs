//! Revoked tokens: a denylist checked on every validation (also on cache hits).
//!
//! Revocations arrive through [`Guard::revoke`](crate::Guard::revoke) — from the
//! IdP's revocation stream subscriber, or directly in tests. Each is kept for
//! the configured retention (longer than any access token lives), after which
//! every token it could match has expired anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::sync::Cache;
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
    /// Whether a token with these claims is revoked by this entry.
    pub fn matches(&self, claims: &AccessClaims) -> bool {
        match self {
            Self::Token { jti } => claims.jti == *jti,
            Self::Session { sid } => claims.sid.as_deref() == Some(sid.as_str()),
            Self::Subject { sub, issued_before } => {
                claims.sub == *sub && claims.iat < *issued_before
            }
        }
    }
}

pub(crate) struct Denylist {
    /// Nothing was ever revoked: skip the lookups.
    empty: AtomicBool,
    jtis: Cache<String, ()>,
    sids: Cache<String, ()>,
    subjects: Cache<String, i64>,
}

impl Denylist {
    pub(crate) fn new(retention: Duration) -> Self {
        let cache = || {
            Cache::builder()
                .time_to_live(retention)
                .max_capacity(1_000_000)
                .build()
        };
        Self {
            empty: AtomicBool::new(true),
            jtis: cache(),
            sids: cache(),
            subjects: Cache::builder()
                .time_to_live(retention)
                .max_capacity(1_000_000)
                .build(),
        }
    }

    pub(crate) fn add(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Token { jti } => self.jtis.insert(jti.clone(), ()),
            Revocation::Session { sid } => self.sids.insert(sid.clone(), ()),
            Revocation::Subject { sub, issued_before } => {
                let before = self
                    .subjects
                    .get(sub)
                    .map_or(*issued_before, |t| t.max(*issued_before));
                self.subjects.insert(sub.clone(), before);
            }
        }
        self.empty.store(false, Ordering::Release);
    }

    pub(crate) fn is_revoked(&self, claims: &AccessClaims) -> bool {
        if self.empty.load(Ordering::Acquire) {
            return false;
        }
        self.jtis.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| self.sids.contains_key(sid))
            || self
                .subjects
                .get(&claims.sub)
                .is_some_and(|before| claims.iat < before)
    }
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
            act: None,
        }
    }

    #[test]
    fn each_kind_of_revocation_matches_only_its_tokens() {
        let list = Denylist::new(Duration::from_secs(60));
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
}
