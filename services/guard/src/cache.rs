//! Verified tokens, so a hot token is not RSA-verified on every hop.
//!
//! Bounded in size (TinyLFU eviction), and each entry expires at the token's
//! `exp` — a cached verdict never outlives the token. Revocations drop
//! matching entries, and a hit whose signing key has left the JWKS is
//! validated afresh.
//!
//! The key is cheap to compute on every request: a 64-bit SipHash, under this
//! cache's own random key, of the audience and the token's length and last 64
//! bytes (its signature, which tells apart any two tokens the issuer signed).
//! The key only finds the entry: a hit counts only when the entry's token and
//! audience equal the presented ones byte for byte, so no other token — forged
//! to collide or not — is ever taken for a cached one, and guards sharing the
//! cache through `Guard::for_audience` never see each other's verdicts. A
//! collision only costs a full validation. (A SHA-256 of the whole token, as
//! before, cost about a fifth of a cached validation's CPU time.)

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::claims::unix_now;
use crate::principal::Verified;
use crate::revocation::Revocation;

pub(crate) type TokenKey = u64;

/// How much of the token's end goes into the key: more than any signature's
/// last 64 bytes need to differ between two tokens.
const KEYED_BYTES: usize = 64;

/// A verdict and the audience it was reached for.
struct Entry {
    audience: Box<str>,
    verified: Arc<Verified>,
}

pub(crate) struct VerifiedCache {
    cache: Cache<TokenKey, Arc<Entry>>,
    hasher: RandomState,
}

/// Each entry lives until its token's `exp`.
struct UntilExpiry;

impl Expiry<TokenKey, Arc<Entry>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &TokenKey,
        value: &Arc<Entry>,
        _: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.verified.claims.exp.saturating_sub(unix_now()).max(0) as u64,
        ))
    }
}

impl VerifiedCache {
    pub(crate) fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExpiry)
            .support_invalidation_closures()
            .build();
        Self {
            cache,
            hasher: RandomState::new(),
        }
    }

    /// The key of `token` validated for `audience` (see the module's doc).
    pub(crate) fn key(&self, audience: &str, token: &str) -> TokenKey {
        let bytes = token.as_bytes();
        let mut h = self.hasher.build_hasher();
        audience.hash(&mut h);
        h.write_usize(bytes.len());
        h.write(&bytes[bytes.len().saturating_sub(KEYED_BYTES)..]);
        h.finish()
    }

    /// The verdict on exactly `token` for exactly `audience`, if cached and
    /// not expired (checked to the second, whatever the cache's own timer
    /// granularity). `key` is [`key`](Self::key)`(audience, token)`.
    pub(crate) fn get(&self, key: TokenKey, audience: &str, token: &str) -> Option<Arc<Verified>> {
        let entry = self.cache.get(&key)?;
        let v = &entry.verified;
        // The token is a secret: compared in constant time.
        let same_token =
            aws_lc_rs::constant_time::verify_slices_are_equal(v.token.as_bytes(), token.as_bytes())
                .is_ok();
        (same_token && *entry.audience == *audience && v.claims.exp > unix_now()).then(|| v.clone())
    }

    pub(crate) fn insert(&self, key: TokenKey, audience: &str, verified: Arc<Verified>) {
        if verified.claims.exp > unix_now() {
            let audience = audience.into();
            self.cache
                .insert(key, Arc::new(Entry { audience, verified }));
        }
    }

    /// Drops the entry under `key` (whichever token it holds: at worst a
    /// colliding token is validated afresh next time).
    pub(crate) fn forget(&self, key: TokenKey) {
        self.cache.invalidate(&key);
    }

    pub(crate) fn forget_matching(&self, revocation: Revocation) {
        // Only fails when invalidation closures are disabled, which they are not.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| revocation.matches(&e.verified.claims));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::AccessClaims;

    fn verified(token: &str, exp: i64) -> Arc<Verified> {
        Arc::new(Verified {
            claims: AccessClaims {
                iss: "i".into(),
                sub: "s".into(),
                aud: vec!["order".into(), "payment".into()],
                client_id: "c".into(),
                scope: String::new(),
                roles: vec![],
                exp,
                iat: 0,
                nbf: 0,
                jti: token.into(),
                sid: None,
                auth_time: None,
                acr: None,
                amr: vec![],
                act: None,
                cnf: None,
                derived_from: Default::default(),
            },
            token: Arc::from(token),
            kid: Box::from("k"),
        })
    }

    #[test]
    fn a_hit_needs_the_same_token_and_audience_even_under_the_same_key() {
        let cache = VerifiedCache::new(100);
        let exp = unix_now() + 300;
        let token = "header.payload.signature-of-the-first-token";
        let key = cache.key("order", token);
        cache.insert(key, "order", verified(token, exp));
        assert!(cache.get(key, "order", token).is_some());
        // The same key presented with another token or audience (a collision,
        // forged or not): no hit.
        let forged = "header.forged-payload.signature-of-the-first-token";
        assert!(cache.get(key, "order", forged).is_none());
        assert!(cache.get(key, "payment", token).is_none());
        assert!(cache.get(key, "order", &token[1..]).is_none());
        // Keys differ with the audience, the length and the signature.
        assert_ne!(cache.key("payment", token), key);
        assert_ne!(cache.key("order", forged), key);
        assert_ne!(
            cache.key("order", "header.payload.signature-of-the-other-token"),
            key
        );
        // Another cache, another hash key.
        assert_ne!(VerifiedCache::new(1).key("order", token), key);
        cache.forget(key);
        assert!(cache.get(key, "order", token).is_none());
    }

    #[test]
    fn expired_tokens_are_neither_kept_nor_answered() {
        let cache = VerifiedCache::new(100);
        let token = "a.b.c";
        let key = cache.key("order", token);
        cache.insert(key, "order", verified(token, unix_now() - 1));
        assert!(cache.get(key, "order", token).is_none());
    }
}
