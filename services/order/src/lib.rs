//! order: places orders by reserving stock at inventory and charging at
//! payment, each call with a token for that service alone, exchanged from the
//! caller's (or, with `ORDER_RELAY=plain`, the caller's own token).
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /orders` (optional `Idempotency-Key`) | role `customer` |
//! | `GET /orders[?limit=n]` | any valid token: own orders; `support`/`admin`: all |
//! | `GET /orders/{id}` | the owner, `support` or `admin` (others: 404) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |
//!
//! An order still pending after `ORDER_PENDING_TTL_SECS` (a crash mid-order)
//! is marked failed by [`expiry::sweep`].

pub mod checkout;
pub mod downstream;
pub mod error;
pub mod expiry;
pub mod http;
pub mod store;

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use guard::config::{seconds, var};
use guard::relay::RelayClient;
use guard::resource_server::resource_server;
use guard::{Exchanger, Guard, GuardConfig, RelayMode};
use platform::ConfigError;
use platform::server::Running;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use url::Url;

pub use downstream::Downstream;
pub use error::AppError;

/// This service's resource name: the audience its tokens must name.
pub const SERVICE: &str = "order";

/// The order database's migrations: guard's (`migrations/guard`: the audit
/// and idempotency tables) then order's own (`migrations/order`), as one migrator.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/order"))
});

/// Settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORDER_BIND`, default `127.0.0.1:8081`.
    pub bind: SocketAddr,
    /// `ORDER_METRICS_BIND`, default `127.0.0.1:9081` (the port + 1000;
    /// `off`: none): where `GET /metrics` listens ([`platform::metrics`]).
    pub metrics_bind: Option<SocketAddr>,
    /// `ORDER_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/baton_order`.
    pub database_url: String,
    /// `ORDER_DATABASE_MAX_CONNECTIONS`, default 10.
    pub database_max_connections: u32,
    /// `ORDER_PENDING_TTL_SECS`, default 300 (at least 60): an order still
    /// pending after this long was left by a crash and is marked failed (see [`expiry`]).
    pub pending_ttl: Duration,
    /// `ORDER_INVENTORY_URL`, default `http://127.0.0.1:8083`.
    pub inventory_url: Url,
    /// `ORDER_PAYMENT_URL`, default `http://127.0.0.1:8082`.
    pub payment_url: Url,
    /// `ORDER_RELAY_TIMEOUT_MS`, default 2000: the limit on each call to
    /// inventory or payment (connecting: 1 s). An order makes at most three
    /// calls in a row, so it answers within the gateway's 8 s.
    pub relay_timeout: Duration,
    /// `ORDER_RELAY`, default `exchange`: the token sent to inventory and
    /// payment is exchanged at the IdP for one naming that service alone
    /// (as `GUARD_CLIENT_ID`); `plain` relays the caller's own token.
    pub relay: RelayMode,
    /// The `GUARD_*` variables, audience `order`.
    pub guard: GuardConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = |s: &str| Url::parse(s).expect("a valid default URL");
        let bind = var("ORDER_BIND", SocketAddr::from(([127, 0, 0, 1], 8081)))?;
        let config = Self {
            bind,
            metrics_bind: platform::metrics::bind_from_env("ORDER_METRICS_BIND", bind)?,
            database_url: var(
                "ORDER_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/baton_order".to_owned(),
            )?,
            database_max_connections: var("ORDER_DATABASE_MAX_CONNECTIONS", 10)?,
            pending_ttl: seconds(
                "ORDER_PENDING_TTL_SECS",
                expiry::DEFAULT_TTL,
                expiry::MIN_TTL,
            )?,
            inventory_url: var("ORDER_INVENTORY_URL", url("http://127.0.0.1:8083"))?,
            payment_url: var("ORDER_PAYMENT_URL", url("http://127.0.0.1:8082"))?,
            relay_timeout: Duration::from_millis(var("ORDER_RELAY_TIMEOUT_MS", 2000)?),
            relay: var("ORDER_RELAY", RelayMode::Exchange)?,
            guard: GuardConfig::from_env(SERVICE)?,
        };
        config.check_pending_ttl()?;
        Ok(config)
    }

    /// An order in flight (at most three relay calls) must never look stale.
    fn check_pending_ttl(&self) -> Result<(), ConfigError> {
        if self.pending_ttl <= self.relay_timeout * 3 {
            return Err(ConfigError {
                var: "ORDER_PENDING_TTL_SECS",
                reason: "must exceed three ORDER_RELAY_TIMEOUT_MS (an order's longest run)".into(),
            });
        }
        Ok(())
    }
}

/// What every handler can reach (each field as its own `State`).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub guard: Guard,
    pub downstream: Downstream,
}

impl AppState {
    /// `relay` calls inventory and payment at these base URLs, with tokens
    /// from `exchanger` (`None`: the caller's own token).
    pub fn new(
        pool: PgPool,
        guard: Guard,
        relay: &RelayClient,
        inventory: Url,
        payment: Url,
        exchanger: Option<Exchanger>,
    ) -> Self {
        Self {
            pool,
            guard,
            downstream: Downstream {
                inventory: relay.upstream("inventory", inventory),
                payment: relay.upstream("payment", payment),
                exchanger,
            },
        }
    }
}

/// The whole HTTP interface.
pub fn router(state: AppState) -> Router {
    let api = http::orders::router();
    resource_server::<_, AppError>(api, state)
}

/// Serves the order API on `listener` in the background.
pub fn spawn(listener: TcpListener, state: AppState) -> std::io::Result<Running> {
    Running::start(listener, router(state))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_pending_ttl_an_order_in_flight_could_outlive_is_refused() {
        let mut config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8081)),
            metrics_bind: None,
            database_url: String::new(),
            database_max_connections: 1,
            pending_ttl: Duration::from_secs(60),
            inventory_url: Url::parse("http://127.0.0.1:8083").unwrap(),
            payment_url: Url::parse("http://127.0.0.1:8082").unwrap(),
            relay_timeout: Duration::from_secs(2),
            relay: RelayMode::Exchange,
            guard: GuardConfig::new("http://localhost:9000", SERVICE),
        };
        assert!(config.check_pending_ttl().is_ok());
        config.relay_timeout = Duration::from_secs(20);
        assert_eq!(
            config.check_pending_ttl().unwrap_err().var,
            "ORDER_PENDING_TTL_SECS"
        );
    }
}
