//! Per-route rate limiting: a token bucket per client address.
//!
//! Buckets live in a bounded cache and are forgotten once idle long enough to
//! be full again, so memory stays flat however many addresses call.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `rate_limit = { per_second = 20, burst = 40 }` in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client address.
    pub per_second: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub burst: u32,
}

/// A keyed token-bucket limiter.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        let per_second = f64::from(config.per_second.max(1));
        let burst = f64::from(config.burst.max(1));
        let refill = Duration::from_secs_f64(burst / per_second) + Duration::from_secs(1);
        Self {
            per_second,
            burst,
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(refill)
                .build(),
        }
    }

    /// Takes one token for `client`; `Err(wait)` when the bucket is empty,
    /// with the time until the next token (for `Retry-After`).
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let bucket = self.buckets.get_with(client, || {
            Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                updated: now,
            }))
        });
        let mut b = bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(RateLimitConfig {
            per_second: 1,
            burst: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check(b).is_ok());
    }
}
