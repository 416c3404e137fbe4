//! payment's settings: [`Args`], the command line and environment as clap
//! reads them (`payment --help` lists them), and [`Config`], what they
//! resolve to once the derived defaults are applied (tests build it directly).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use guard::{GuardArgs, GuardConfig};
use platform::ConfigError;
use platform::db::Database;

use crate::Rules;
use crate::startup::SERVICE;

/// payment: charges and refunds of the shop's orders.
#[derive(Debug, Clone, Parser)]
#[command(name = "payment", version)]
pub struct Args {
    /// Listen address.
    #[arg(
        long = "payment-bind",
        env = "PAYMENT_BIND",
        default_value = "127.0.0.1:8082"
    )]
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `off` disables it [default: 127.0.0.1
    /// on the port of PAYMENT_BIND + 1000].
    #[arg(long = "payment-metrics-bind", env = "PAYMENT_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Its database.
    #[arg(
        long = "payment-database-url",
        env = "PAYMENT_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/baton_payment"
    )]
    pub database_url: String,
    /// Pool size.
    #[arg(
        long = "payment-database-max-connections",
        env = "PAYMENT_DATABASE_MAX_CONNECTIONS",
        default_value = "10",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub database_max_connections: u32,
    /// The most `support` may refund of one charge in total, in cents (admin: no limit).
    #[arg(
        long = "payment-support-refund-limit-cents",
        env = "PAYMENT_SUPPORT_REFUND_LIMIT_CENTS",
        default_value = "10000"
    )]
    pub support_refund_limit_cents: i64,
    /// Charges above this many cents are declined (402).
    #[arg(
        long = "payment-decline-above-cents",
        env = "PAYMENT_DECLINE_ABOVE_CENTS",
        default_value = "50000"
    )]
    pub decline_above_cents: i64,
    /// A refund that takes a charge's refunded total above this many cents
    /// needs a recent second factor (RFC 9470 step-up; any role).
    #[arg(
        long = "payment-step-up-above-cents",
        env = "PAYMENT_STEP_UP_ABOVE_CENTS",
        default_value = "20000"
    )]
    pub step_up_above_cents: i64,
    /// How recent that second factor must be, in seconds (`max_age`).
    #[arg(
        long = "payment-step-up-max-age-secs",
        env = "PAYMENT_STEP_UP_MAX_AGE_SECS",
        default_value = "300",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub step_up_max_age_secs: u64,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// payment's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens ([`platform::metrics`]); `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub database: Database,
    pub rules: Rules,
    /// Token validation, audience `payment`.
    pub guard: GuardConfig,
}

impl Args {
    /// Applies the derived defaults (the metrics port, guard's client).
    pub fn resolve(self) -> Result<Config, ConfigError> {
        Ok(Config {
            bind: self.bind,
            metrics_bind: platform::metrics::parse_bind(
                "PAYMENT_METRICS_BIND",
                self.metrics_bind.as_deref(),
                self.bind,
            )?,
            database: Database {
                url: self.database_url,
                max_connections: self.database_max_connections,
            },
            rules: Rules {
                support_refund_limit_cents: self.support_refund_limit_cents,
                decline_above_cents: self.decline_above_cents,
                step_up_above_cents: self.step_up_above_cents,
                step_up_max_age: Duration::from_secs(self.step_up_max_age_secs),
            },
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
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8082)));
        assert_eq!(
            config.metrics_bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 9082)))
        );
        assert_eq!(config.rules, Rules::default());
        assert_eq!(config.guard.audience(), "payment");
    }

    #[test]
    fn a_service_variable_that_does_not_parse_is_an_error_naming_it() {
        let refused = config(&[("PAYMENT_DECLINE_ABOVE_CENTS", "lots")]).unwrap_err();
        assert_eq!(refused.var, "PAYMENT_DECLINE_ABOVE_CENTS");
        assert!(refused.message.contains("'lots'"), "{}", refused.message);
    }

    #[test]
    fn debug_does_not_print_the_client_secret() {
        let vars = [("GUARD_CLIENT_SECRET", "payment-secret-4711")];
        let args = from_vars::<Args>(&vars).unwrap();
        let config = args.clone().resolve().unwrap();
        for debug in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!debug.contains("4711"), "{debug}");
        }
    }
}
