//! inventory's settings: [`Args`], the command line and environment as clap
//! reads them (`inventory --help` lists them), and [`Config`], what they
//! resolve to once the derived defaults are applied (tests build it directly).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use guard::{GuardArgs, GuardConfig};
use platform::ConfigError;
use platform::db::Database;

use crate::expiry;
use crate::startup::SERVICE;

/// inventory: the shop's stock and its reservations.
#[derive(Debug, Clone, Parser)]
#[command(name = "inventory", version)]
pub struct Args {
    /// Listen address.
    #[arg(
        long = "inventory-bind",
        env = "INVENTORY_BIND",
        default_value = "127.0.0.1:8083"
    )]
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `off` disables it [default: 127.0.0.1
    /// on the port of INVENTORY_BIND + 1000].
    #[arg(long = "inventory-metrics-bind", env = "INVENTORY_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Its database.
    #[arg(
        long = "inventory-database-url",
        env = "INVENTORY_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/baton_inventory"
    )]
    pub database_url: String,
    /// Pool size.
    #[arg(
        long = "inventory-database-max-connections",
        env = "INVENTORY_DATABASE_MAX_CONNECTIONS",
        default_value = "10",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub database_max_connections: u32,
    /// Seconds after which a reservation still held is released (at least 60).
    #[arg(
        long = "inventory-reservation-ttl-secs",
        env = "INVENTORY_RESERVATION_TTL_SECS",
        default_value_t = expiry::DEFAULT_TTL.as_secs(),
        value_parser = clap::value_parser!(u64).range(expiry::MIN_TTL.as_secs()..)
    )]
    pub reservation_ttl_secs: u64,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// inventory's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens ([`platform::metrics`]); `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub database: Database,
    /// A reservation still held after this long is released (see [`expiry`]).
    pub reservation_ttl: Duration,
    /// Token validation, audience `inventory`.
    pub guard: GuardConfig,
}

impl Args {
    /// Applies the derived defaults (the metrics port, guard's client).
    pub fn resolve(self) -> Result<Config, ConfigError> {
        Ok(Config {
            bind: self.bind,
            metrics_bind: platform::metrics::parse_bind(
                "INVENTORY_METRICS_BIND",
                self.metrics_bind.as_deref(),
                self.bind,
            )?,
            database: Database {
                url: self.database_url,
                max_connections: self.database_max_connections,
            },
            reservation_ttl: Duration::from_secs(self.reservation_ttl_secs),
            guard: self.guard.resolve(SERVICE)?,
        })
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
    fn defaults_are_the_documented_ones() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8083)));
        assert_eq!(
            config.metrics_bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 9083)))
        );
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.reservation_ttl, expiry::DEFAULT_TTL);
        assert_eq!(config.guard.audience(), "inventory");
    }

    #[test]
    fn a_reservation_ttl_below_a_minute_is_refused_naming_it() {
        let refused = config(&[("INVENTORY_RESERVATION_TTL_SECS", "59")]).unwrap_err();
        assert_eq!(refused.var, "INVENTORY_RESERVATION_TTL_SECS");
        let ttl = config(&[("INVENTORY_RESERVATION_TTL_SECS", "60")]).unwrap();
        assert_eq!(ttl.reservation_ttl, Duration::from_secs(60));
    }

    #[test]
    fn debug_does_not_print_the_client_secret() {
        let vars = [("GUARD_CLIENT_SECRET", "inventory-secret-4711")];
        let args = from_vars::<Args>(&vars).unwrap();
        let config = args.clone().resolve().unwrap();
        for debug in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!debug.contains("4711"), "{debug}");
        }
    }
}
