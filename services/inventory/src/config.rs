//! inventory's settings, from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use guard::GuardConfig;
use guard::config::{seconds, var};
use platform::ConfigError;

use crate::expiry;
use crate::startup::SERVICE;

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
