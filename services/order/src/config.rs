//! order's settings: [`Args`], the command line and environment as clap
//! reads them (`order --help` lists them), and [`Config`], what they resolve
//! to once the derived defaults are applied and checked (tests build it directly).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use guard::{GuardArgs, GuardConfig, RelayMode};
use platform::ConfigError;
use platform::db::Database;
use url::Url;

use crate::expiry;
use crate::startup::SERVICE;

/// order: the shop's orders, which reserve stock at inventory and charge at payment.
#[derive(Debug, Clone, Parser)]
#[command(name = "order", version)]
pub struct Args {
    /// Listen address.
    #[arg(
        long = "order-bind",
        env = "ORDER_BIND",
        default_value = "127.0.0.1:8081"
    )]
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `off` disables it [default: 127.0.0.1
    /// on the port of ORDER_BIND + 1000].
    #[arg(long = "order-metrics-bind", env = "ORDER_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Its database.
    #[arg(
        long = "order-database-url",
        env = "ORDER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/baton_order"
    )]
    pub database_url: String,
    /// Pool size.
    #[arg(
        long = "order-database-max-connections",
        env = "ORDER_DATABASE_MAX_CONNECTIONS",
        default_value = "10",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub database_max_connections: u32,
    /// inventory.
    #[arg(
        long = "order-inventory-url",
        env = "ORDER_INVENTORY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub inventory_url: Url,
    /// payment.
    #[arg(
        long = "order-payment-url",
        env = "ORDER_PAYMENT_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub payment_url: Url,
    /// Limit on each call to inventory or payment, in milliseconds (connecting: 1 s).
    #[arg(
        long = "order-relay-timeout-ms",
        env = "ORDER_RELAY_TIMEOUT_MS",
        default_value = "2000"
    )]
    pub relay_timeout_ms: u64,
    /// `exchange`: each call to inventory or payment carries a token
    /// exchanged at the IdP for that service alone; `plain`: the caller's own token.
    #[arg(long = "order-relay", env = "ORDER_RELAY", default_value = "exchange")]
    pub relay: RelayMode,
    /// Seconds after which an order still pending was left by a crash and is
    /// marked failed (at least 60, and more than three ORDER_RELAY_TIMEOUT_MS).
    #[arg(
        long = "order-pending-ttl-secs",
        env = "ORDER_PENDING_TTL_SECS",
        default_value_t = expiry::DEFAULT_TTL.as_secs(),
        value_parser = clap::value_parser!(u64).range(expiry::MIN_TTL.as_secs()..)
    )]
    pub pending_ttl_secs: u64,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// order's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens ([`platform::metrics`]); `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub database: Database,
    /// An order still pending after this long was left by a crash and is
    /// marked failed (see [`expiry`]).
    pub pending_ttl: Duration,
    pub inventory_url: Url,
    pub payment_url: Url,
    /// The limit on each call to inventory or payment (connecting: 1 s). An
    /// order makes at most three calls in a row, so it answers within the
    /// gateway's 8 s.
    pub relay_timeout: Duration,
    /// The token sent to inventory and payment: exchanged at the IdP for one
    /// naming that service alone (as `GUARD_CLIENT_ID`), or the caller's own.
    pub relay: RelayMode,
    /// Token validation, audience `order`.
    pub guard: GuardConfig,
}

impl Args {
    /// Applies the derived defaults (the metrics port, guard's client) and
    /// checks what clap cannot (the pending TTL against the relay timeout).
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let config = Config {
            bind: self.bind,
            metrics_bind: platform::metrics::parse_bind(
                "ORDER_METRICS_BIND",
                self.metrics_bind.as_deref(),
                self.bind,
            )?,
            database: Database {
                url: self.database_url,
                max_connections: self.database_max_connections,
            },
            pending_ttl: Duration::from_secs(self.pending_ttl_secs),
            inventory_url: self.inventory_url,
            payment_url: self.payment_url,
            relay_timeout: Duration::from_millis(self.relay_timeout_ms),
            relay: self.relay,
            guard: self.guard.resolve(SERVICE)?,
        };
        config.check_pending_ttl()?;
        Ok(config)
    }
}

impl Config {
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
    use platform::config::{Refused, from_vars};

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Refused> {
        Ok(from_vars::<Args>(vars)?.resolve()?)
    }

    #[test]
    fn a_pending_ttl_an_order_in_flight_could_outlive_is_refused() {
        let ttl = ("ORDER_PENDING_TTL_SECS", "60");
        assert!(config(&[ttl, ("ORDER_RELAY_TIMEOUT_MS", "2000")]).is_ok());
        let refused = config(&[ttl, ("ORDER_RELAY_TIMEOUT_MS", "20000")]).unwrap_err();
        assert_eq!(refused.var, "ORDER_PENDING_TTL_SECS");
        let short = config(&[("ORDER_PENDING_TTL_SECS", "59")]).unwrap_err();
        assert_eq!(short.var, "ORDER_PENDING_TTL_SECS");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8081)));
        assert_eq!(
            config.metrics_bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 9081)))
        );
        assert_eq!(config.pending_ttl, expiry::DEFAULT_TTL);
        assert_eq!(config.relay_timeout, Duration::from_secs(2));
        assert_eq!(config.relay, RelayMode::Exchange);
        assert_eq!(config.inventory_url.as_str(), "http://127.0.0.1:8083/");
        assert_eq!(config.guard.audience(), "order");
    }

    #[test]
    fn debug_does_not_print_the_client_secret() {
        let vars = [("GUARD_CLIENT_SECRET", "order-secret-4711")];
        let args = from_vars::<Args>(&vars).unwrap();
        let config = args.clone().resolve().unwrap();
        for debug in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!debug.contains("4711"), "{debug}");
        }
    }
}
