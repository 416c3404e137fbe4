//! What guard adds to platform's health and metrics: the readiness checks of
//! a [`Guard`] (`jwks`, `revocations`), the gauges of its revocation stream,
//! and the series guard itself records (token refusals, JWKS fetches, the
//! verified-token cache), described once per process.
//!
//! ```ignore
//! use guard::monitoring::{GuardChecks, GuardGauges};
//! let health = platform::health::Readiness::new().database(pool.clone()).jwks(&guard);
//! let exporter = platform::metrics::Exporter::new().pool(&pool).guard(&guard);
//! ```

use metrics::{counter, describe_counter, describe_gauge, gauge};
use platform::health::{CheckResult, Readiness};
use platform::metrics::Exporter;
use serde_json::Value;

use crate::Guard;
use crate::config::StalePolicy;

/// A guard's checks behind `/readyz`.
pub trait GuardChecks {
    /// The guard has signing keys (check `jwks`, with the [`JwksStatus`](crate::JwksStatus)
    /// as detail). Stale keys (IdP unreachable) still count as ready: tokens
    /// can be validated. Also reports the revocation stream, when configured
    /// (see [`revocations`](GuardChecks::revocations)).
    fn jwks(self, guard: &Guard) -> Self;

    /// The revocation stream's state (check `revocations`), when the guard
    /// subscribes to one. Not ready until the IdP has confirmed once that
    /// every live revocation has been applied (so a restarted service refuses
    /// every revoked token before it takes traffic); later, a stale stream
    /// keeps it ready under the `serve` policy (shown as `stale: true`) and
    /// makes it not ready under `refuse`.
    fn revocations(self, guard: &Guard) -> Self;
}

impl GuardChecks for Readiness {
    fn jwks(self, guard: &Guard) -> Self {
        let this = self.revocations(guard);
        let guard = guard.clone();
        this.check("jwks", move || {
            let status = guard.status();
            async move {
                CheckResult {
                    ready: status.ready,
                    detail: serde_json::to_value(&status).unwrap_or(Value::Null),
                }
            }
        })
    }

    fn revocations(self, guard: &Guard) -> Self {
        if guard.revocation_status().is_none() {
            return self;
        }
        let guard = guard.clone();
        self.check("revocations", move || {
            let status = guard.revocation_status();
            let ready = status.as_ref().is_some_and(|s| {
                s.caught_up && !(s.stale && s.stale_policy == Some(StalePolicy::Refuse))
            });
            async move {
                CheckResult {
                    ready,
                    detail: serde_json::to_value(&status).unwrap_or(Value::Null),
                }
            }
        })
    }
}

/// A guard's gauges on `GET /metrics`.
pub trait GuardGauges {
    /// The revocation stream of `guard`, when it subscribes to one: whether it
    /// is connected, the seconds since the IdP last confirmed it up to date
    /// (the lag an operator alerts on), and the revocations applied.
    fn guard(self, guard: &Guard) -> Self;
}

impl GuardGauges for Exporter {
    fn guard(self, guard: &Guard) -> Self {
        describe();
        let guard = guard.clone();
        self.sample(move || {
            let Some(status) = guard.revocation_status() else {
                return;
            };
            gauge!("guard_revocation_stream_connected").set(u8::from(status.connected));
            gauge!("guard_revocation_seconds_since_confirmed")
                .set(status.seconds_since_caught_up.map_or(-1.0, |s| s as f64));
            counter!("guard_revocation_events_applied_total").absolute(status.events_applied);
        })
    }
}

/// Describes the series guard records (their `# HELP` lines): from
/// [`Guard::try_new`], and again when an exporter samples a guard (the
/// recorder may have been installed in between; describing twice is harmless).
pub(crate) fn describe() {
    describe_counter!(
        "guard_token_refusals_total",
        "Access tokens refused, per reason"
    );
    describe_counter!(
        "guard_jwks_fetches_total",
        "JWKS fetches, per outcome (ok, error)"
    );
    describe_counter!(
        "guard_verified_cache_hits_total",
        "Tokens answered from the verified-token cache"
    );
    describe_counter!(
        "guard_verified_cache_misses_total",
        "Tokens verified in full (not in the cache)"
    );
    describe_counter!(
        "guard_revocation_events_applied_total",
        "Revocations applied from the IdP's stream"
    );
    describe_gauge!(
        "guard_revocation_seconds_since_confirmed",
        metrics::Unit::Seconds,
        "Seconds since the IdP last confirmed this process had every revocation (-1: never)"
    );
    describe_gauge!(
        "guard_revocation_stream_connected",
        "1 while the revocation stream is connected"
    );
}

/// Handles made once per process for the series guard records on every
/// request; statics, so the hot path neither builds labels nor looks them up.
pub(crate) mod series {
    use std::sync::LazyLock;

    use metrics::{Counter, counter};

    pub(crate) static CACHE_HITS: LazyLock<Counter> =
        LazyLock::new(|| counter!("guard_verified_cache_hits_total"));
    pub(crate) static CACHE_MISSES: LazyLock<Counter> =
        LazyLock::new(|| counter!("guard_verified_cache_misses_total"));
}
