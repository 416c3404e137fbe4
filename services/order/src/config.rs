//! order's settings, from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use guard::config::{seconds, var};
use guard::{GuardConfig, RelayMode};
use platform::ConfigError;
use url::Url;

use crate::expiry;
use crate::startup::SERVICE;

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

#[cfg(test)]
mod tests {
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
