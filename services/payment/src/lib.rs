//! payment: charges and refunds.
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /charges` (`Idempotency-Key` required) | role `customer`, for the token's own `sub` only |
//! | `GET /charges[?limit=n]` | any valid token: own charges; `support`/`admin`: all |
//! | `POST /charges/{id}/refund` | `support` (refunded total up to the limit) or `admin` (any amount) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |

pub mod error;
pub mod http;

use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::FromRef;
use guard::config::var;
use guard::resource_server::resource_server;
use guard::{Guard, GuardConfig};
use platform::ConfigError;
use platform::server::Running;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use error::AppError;

/// This service's resource name: the audience its tokens must name.
pub const SERVICE: &str = "payment";

/// The payment database's migrations: guard's (`migrations/guard`: the audit
/// and idempotency tables) then payment's own (`migrations/payment`), as one migrator.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/payment"))
});

/// Settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PAYMENT_BIND`, default `127.0.0.1:8082`.
    pub bind: SocketAddr,
    /// `PAYMENT_METRICS_BIND`, default `127.0.0.1:9082` (the port + 1000;
    /// `off`: none): where `GET /metrics` listens ([`platform::metrics`]).
    pub metrics_bind: Option<SocketAddr>,
    /// `PAYMENT_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/baton_payment`.
    pub database_url: String,
    /// `PAYMENT_DATABASE_MAX_CONNECTIONS`, default 10.
    pub database_max_connections: u32,
    pub rules: Rules,
    /// The `GUARD_*` variables, audience `payment`.
    pub guard: GuardConfig,
}

/// The business rules of the payment processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `PAYMENT_SUPPORT_REFUND_LIMIT_CENTS`, default 10000: the most a `support`
    /// user may refund of one charge in total; `admin` has no limit.
    pub support_refund_limit_cents: i64,
    /// `PAYMENT_DECLINE_ABOVE_CENTS`, default 50000: charges above this amount
    /// are declined (402), the demo's honest way to see a failing payment.
    pub decline_above_cents: i64,
}

impl Rules {
    /// Why the processor declines a charge of `amount_cents`, if it does.
    pub fn decline_reason(&self, amount_cents: i64) -> Option<String> {
        (amount_cents > self.decline_above_cents).then(|| {
            format!(
                "amount above the card limit of {} cents",
                self.decline_above_cents
            )
        })
    }

    /// Whether `support` may refund `amount_cents` more of a charge of which
    /// `refunded_cents` were already refunded (the limit is per charge, in
    /// total, so splitting a refund does not get round it).
    pub fn support_may_refund(&self, refunded_cents: i64, amount_cents: i64) -> bool {
        refunded_cents.saturating_add(amount_cents) <= self.support_refund_limit_cents
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            support_refund_limit_cents: 10_000,
            decline_above_cents: 50_000,
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Rules::default();
        let bind = var("PAYMENT_BIND", SocketAddr::from(([127, 0, 0, 1], 8082)))?;
        Ok(Self {
            bind,
            metrics_bind: platform::metrics::bind_from_env("PAYMENT_METRICS_BIND", bind)?,
            database_url: var(
                "PAYMENT_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/baton_payment".to_owned(),
            )?,
            database_max_connections: var("PAYMENT_DATABASE_MAX_CONNECTIONS", 10)?,
            rules: Rules {
                support_refund_limit_cents: var(
                    "PAYMENT_SUPPORT_REFUND_LIMIT_CENTS",
                    defaults.support_refund_limit_cents,
                )?,
                decline_above_cents: var(
                    "PAYMENT_DECLINE_ABOVE_CENTS",
                    defaults.decline_above_cents,
                )?,
            },
            guard: GuardConfig::from_env(SERVICE)?,
        })
    }
}

/// What every handler can reach (each field as its own `State`).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub guard: Guard,
    pub rules: Rules,
}

/// The whole HTTP interface.
pub fn router(state: AppState) -> Router {
    let api = http::charges::router();
    resource_server::<_, AppError>(api, state)
}

/// Serves the payment API on `listener` in the background.
pub fn spawn(listener: TcpListener, state: AppState) -> std::io::Result<Running> {
    Running::start(listener, router(state))
}

#[cfg(test)]
mod tests {
    use super::Rules;

    #[test]
    fn charges_above_the_threshold_are_declined_and_the_threshold_itself_is_not() {
        let rules = Rules::default();
        assert_eq!(rules.decline_reason(50_000), None);
        let reason = rules.decline_reason(50_001).unwrap();
        assert!(reason.contains("50000"), "{reason}");
    }

    #[test]
    fn the_support_limit_counts_what_was_already_refunded() {
        let rules = Rules::default();
        assert!(rules.support_may_refund(0, 10_000));
        assert!(!rules.support_may_refund(0, 10_001));
        assert!(rules.support_may_refund(6_000, 4_000));
        assert!(!rules.support_may_refund(6_000, 4_001));
        assert!(!rules.support_may_refund(i64::MAX, 1));
    }
}
