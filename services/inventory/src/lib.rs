//! inventory: items, stock and reservations.
//!
//! | endpoint | who |
//! |---|---|
//! | `GET /items[?stock_below=n]` | any valid token |
//! | `PUT /items/{sku}` | role `admin` and scope `inventory:write` |
//! | `POST /reservations` (`Idempotency-Key` required) | role `customer`; the reservation belongs to the token's `sub` |
//! | `DELETE /reservations/{id}` (release) | the reservation's owner, or `admin` (others: 404) |
//! | `POST /reservations/{id}/commit` (sold: no release any more) | the reservation's owner, or `admin` (others: 404) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |
//!
//! A reservation still held after `INVENTORY_RESERVATION_TTL_SECS` (an order
//! that crashed half-way) is released by [`expiry::sweep`].

pub mod error;
pub mod expiry;
pub mod http;

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use guard::{Guard, GuardConfig};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

pub use error::AppError;
use guard::config::{seconds, var};
use guard::resource_server::resource_server;
use platform::ConfigError;
use platform::server::Running;

/// This service's resource name: the audience its tokens must name.
pub const SERVICE: &str = "inventory";

/// The inventory database's migrations: guard's (`migrations/guard`: the audit
/// and idempotency tables) then inventory's own (`migrations/inventory`), as one migrator.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/inventory"))
});

/// Settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `INVENTORY_BIND`, default `127.0.0.1:8083`.
    pub bind: SocketAddr,
    /// `INVENTORY_METRICS_BIND`, default `127.0.0.1:9083` (the port + 1000;
    /// `off`: none): where `GET /metrics` listens ([`platform::metrics`]).
    pub metrics_bind: Option<SocketAddr>,
    /// `INVENTORY_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/baton_inventory`.
    pub database_url: String,
    /// `INVENTORY_DATABASE_MAX_CONNECTIONS`, default 10.
    pub database_max_connections: u32,
    /// `INVENTORY_RESERVATION_TTL_SECS`, default 900 (at least 60): a
    /// reservation still held after this long is released (see [`expiry`]).
    pub reservation_ttl: Duration,
    /// The `GUARD_*` variables, audience `inventory`.
    pub guard: GuardConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let bind = var("INVENTORY_BIND", SocketAddr::from(([127, 0, 0, 1], 8083)))?;
        Ok(Self {
            bind,
            metrics_bind: platform::metrics::bind_from_env("INVENTORY_METRICS_BIND", bind)?,
            database_url: var(
                "INVENTORY_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/baton_inventory".to_owned(),
            )?,
            database_max_connections: var("INVENTORY_DATABASE_MAX_CONNECTIONS", 10)?,
            reservation_ttl: seconds(
                "INVENTORY_RESERVATION_TTL_SECS",
                expiry::DEFAULT_TTL,
                expiry::MIN_TTL,
            )?,
            guard: GuardConfig::from_env(SERVICE)?,
        })
    }
}

/// What every handler can reach (each field as its own `State`).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub guard: Guard,
}

/// The whole HTTP interface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(http::items::router())
        .merge(http::reservations::router());
    resource_server::<_, AppError>(api, state)
}

/// Serves the inventory API on `listener` in the background.
pub fn spawn(listener: TcpListener, state: AppState) -> std::io::Result<Running> {
    Running::start(listener, router(state))
}
