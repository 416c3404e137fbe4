//! payment's settings, from the environment.

use std::net::SocketAddr;

use guard::GuardConfig;
use guard::config::var;
use platform::ConfigError;

use crate::Rules;
use crate::startup::SERVICE;

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
