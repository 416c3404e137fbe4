//! Verified tokens, so a hot token is not RSA-verified on every hop.
//!
//! Keyed by the SHA-256 of the audience and the token (the token itself is
//! never a key; guards sharing the cache through `Guard::for_audience` never
//! see each other's verdicts), bounded in size (TinyLFU eviction), and each
//! entry expires at the token's `exp` — a cached verdict never outlives the token. Revocations drop matching entries,
//! and a hit whose signing key has left the JWKS is validated afresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::jwks::unix_now;
use crate::principal::Verified;
use crate::revocation::Revocation;

pub(crate) type TokenHash = [u8; 32];

/// The key of `token` validated for `audience` (length-prefixed, so no two
/// pairs share a key): guards sharing one cache never see each other's verdicts.
pub(crate) fn hash_for(audience: &str, token: &str) -> TokenHash {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(&(audience.len() as u64).to_be_bytes());
    context.update(audience.as_bytes());
    context.update(token.as_bytes());
    let digest = context.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub(crate) struct VerifiedCache {
    cache: Cache<TokenHash, Arc<Verified>>,
}

/// Each entry lives until its token's `exp`.
struct UntilExpiry;

impl Expiry<TokenHash, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        value: &Arc<Verified>,
        _: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.claims.exp.saturating_sub(unix_now()).max(0) as u64,
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
        Self { cache }
    }

    /// The verified token, if cached and not expired (checked to the second,
    /// whatever the cache's own timer granularity).
    pub(crate) fn get(&self, key: &TokenHash) -> Option<Arc<Verified>> {
        self.cache.get(key).filter(|v| v.claims.exp > unix_now())
    }

    pub(crate) fn insert(&self, key: TokenHash, verified: Arc<Verified>) {
        if verified.claims.exp > unix_now() {
            self.cache.insert(key, verified);
        }
    }

    pub(crate) fn forget(&self, key: &TokenHash) {
        self.cache.invalidate(key);
    }

    pub(crate) fn forget_matching(&self, revocation: Revocation) {
        // Only fails when invalidation closures are disabled, which they are not.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, v| revocation.matches(&v.claims));
    }

    pub(crate) fn contains(&self, key: &TokenHash) -> bool {
        self.get(key).is_some()
    }
}
