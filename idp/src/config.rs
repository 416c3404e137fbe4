//! The IdP's settings: [`Args`], the command line and environment as clap
//! reads them (`idp --help` lists every variable with its default; the admin
//! commands share them), and [`Config`], what they resolve to once the derived
//! defaults are applied (the metrics port, the CPU count) and the checks clap
//! cannot express are passed (the issuer's shape, the trusted proxies).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use platform::ConfigError;
use platform::client_ip::TrustedProxies;
use platform::db::Database;
use secrecy::SecretString;

use crate::keys::Alg;

/// Whole seconds, at most a year (`IDP_*_SECS`).
const YEAR_SECS: u64 = 366 * 24 * 3600;

/// The IdP's variables (`IDP_*`, except `idp seed`'s own).
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// The issuer: exact `iss` of every token and base of every endpoint URL.
    #[arg(
        long = "idp-issuer",
        env = "IDP_ISSUER",
        default_value = "http://localhost:9000"
    )]
    pub issuer: String,
    /// Listen address.
    #[arg(long = "idp-bind", env = "IDP_BIND", default_value = "127.0.0.1:9000")]
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `off` disables it [default: 127.0.0.1
    /// on the port of IDP_BIND + 1000].
    #[arg(long = "idp-metrics-bind", env = "IDP_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Its database (created and migrated at start-up).
    #[arg(
        long = "idp-database-url",
        env = "IDP_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/baton_idp"
    )]
    pub database_url: String,
    /// Pool size.
    #[arg(long = "idp-database-max-connections", env = "IDP_DATABASE_MAX_CONNECTIONS",
          default_value = "16", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
    /// 32 bytes, base64: encrypts the signing keys at rest [default: a
    /// development key in IDP_DATA_DIR, with a loud warning].
    #[arg(long = "idp-key-encryption-key", env = "IDP_KEY_ENCRYPTION_KEY", value_parser = platform::config::secret)]
    pub key_encryption_key: Option<SecretString>,
    /// Where the development key-encryption key is kept.
    #[arg(
        long = "idp-data-dir",
        env = "IDP_DATA_DIR",
        default_value = ".data/idp"
    )]
    pub data_dir: PathBuf,
    /// `RS256`, `ES256` or `EdDSA` for new keys (RS256 is kept too, for ID tokens).
    #[arg(long = "idp-signing-alg", env = "IDP_SIGNING_ALG", default_value = "RS256",
          value_parser = parse_alg)]
    pub signing_alg: Alg,
    /// Access-token life, in seconds.
    #[arg(long = "idp-access-token-ttl-secs", env = "IDP_ACCESS_TOKEN_TTL_SECS",
          default_value = "300", value_parser = clap::value_parser!(u64).range(10..=YEAR_SECS))]
    pub access_token_ttl_secs: u64,
    /// ID-token life, in seconds.
    #[arg(long = "idp-id-token-ttl-secs", env = "IDP_ID_TOKEN_TTL_SECS",
          default_value = "300", value_parser = clap::value_parser!(u64).range(10..=YEAR_SECS))]
    pub id_token_ttl_secs: u64,
    /// Refresh-token idle life, in seconds (never beyond its SSO session).
    #[arg(long = "idp-refresh-token-ttl-secs", env = "IDP_REFRESH_TOKEN_TTL_SECS",
          default_value = "28800", value_parser = clap::value_parser!(u64).range(60..=YEAR_SECS))]
    pub refresh_token_ttl_secs: u64,
    /// Absolute life of an SSO session, in seconds.
    #[arg(long = "idp-session-ttl-secs", env = "IDP_SESSION_TTL_SECS",
          default_value = "43200", value_parser = clap::value_parser!(u64).range(60..=YEAR_SECS))]
    pub session_ttl_secs: u64,
    /// `Cache-Control: max-age` of `/jwks.json`, in seconds.
    #[arg(long = "idp-jwks-max-age-secs", env = "IDP_JWKS_MAX_AGE_SECS",
          default_value = "300", value_parser = clap::value_parser!(u64).range(0..=YEAR_SECS))]
    pub jwks_max_age_secs: u64,
    /// How long `idp keys rotate` publishes a key before it signs, in seconds.
    #[arg(long = "idp-key-publish-secs", env = "IDP_KEY_PUBLISH_SECS",
          default_value = "600", value_parser = clap::value_parser!(u64).range(0..=YEAR_SECS))]
    pub key_publish_secs: u64,
    /// How often a running IdP re-reads its keys, in seconds.
    #[arg(long = "idp-key-reload-secs", env = "IDP_KEY_RELOAD_SECS",
          default_value = "10", value_parser = clap::value_parser!(u64).range(1..=YEAR_SECS))]
    pub key_reload_secs: u64,
    /// How often expired sessions, refresh-token families, revocations and
    /// idle throttle counters are deleted, in seconds.
    #[arg(long = "idp-housekeeping-secs", env = "IDP_HOUSEKEEPING_SECS",
          default_value = "600", value_parser = clap::value_parser!(u64).range(1..=YEAR_SECS))]
    pub housekeeping_secs: u64,
    /// Threads of each of the two CPU pools (passwords; signing) [default: CPU count].
    #[arg(long = "idp-blocking-threads", env = "IDP_BLOCKING_THREADS",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub blocking_threads: Option<u64>,
    /// Comma-separated IPs and CIDR networks of reverse proxies whose
    /// `X-Forwarded-For` is believed when throttling sign-in attempts.
    #[arg(
        long = "idp-trusted-proxies",
        env = "IDP_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: String,
    /// Revocation streams one client may hold open on one replica.
    #[arg(long = "idp-revocation-streams-per-client", env = "IDP_REVOCATION_STREAMS_PER_CLIENT",
          default_value = "16", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub revocation_streams_per_client: u64,
    /// Attempts to deliver one logout token before it is given up.
    #[arg(long = "idp-backchannel-logout-attempts", env = "IDP_BACKCHANNEL_LOGOUT_ATTEMPTS",
          default_value = "8", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub backchannel_logout_attempts: u32,
    /// Delay before the first retry, in milliseconds, doubling at each
    /// further one; also how often each replica reads the outbox.
    #[arg(long = "idp-backchannel-logout-retry-ms", env = "IDP_BACKCHANNEL_LOGOUT_RETRY_MS",
          default_value = "1000", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub backchannel_logout_retry_ms: u64,
    /// Bound on each delivery, in milliseconds.
    #[arg(long = "idp-backchannel-logout-timeout-ms", env = "IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS",
          default_value = "5000", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub backchannel_logout_timeout_ms: u64,
}

/// The IdP's settings, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// `IDP_ISSUER` (default `http://localhost:9000`): the exact `iss` of every token and
    /// the base of every endpoint URL. No trailing slash.
    pub issuer: String,
    /// `IDP_BIND` (default `127.0.0.1:9000`).
    pub bind: SocketAddr,
    /// `IDP_METRICS_BIND` (default `127.0.0.1:10000`, the port + 1000; `off`:
    /// none): where `GET /metrics` listens (see `platform::metrics`).
    pub metrics_bind: Option<SocketAddr>,
    /// `IDP_DATABASE_URL`, `IDP_DATABASE_MAX_CONNECTIONS`.
    pub database: Database,
    /// `IDP_KEY_ENCRYPTION_KEY`: 32 bytes, base64. Unset: a development key kept in
    /// `IDP_DATA_DIR` (a loud warning is logged).
    pub key_encryption_key: Option<SecretString>,
    /// `IDP_DATA_DIR` (default `.data/idp`): where the development key is kept.
    pub data_dir: PathBuf,
    /// `IDP_SIGNING_ALG` (default `RS256`; `ES256`, `EdDSA`).
    pub signing_alg: Alg,
    /// `IDP_ACCESS_TOKEN_TTL_SECS` (default 300).
    pub access_token_ttl: Duration,
    /// `IDP_ID_TOKEN_TTL_SECS` (default 300).
    pub id_token_ttl: Duration,
    /// `IDP_REFRESH_TOKEN_TTL_SECS` (default 28800, 8 h): idle life of a refresh token;
    /// never beyond its SSO session.
    pub refresh_token_ttl: Duration,
    /// `IDP_SESSION_TTL_SECS` (default 43200, 12 h): absolute life of an SSO session.
    pub session_ttl: Duration,
    /// `IDP_JWKS_MAX_AGE_SECS` (default 300): `Cache-Control: max-age` of `/jwks.json`.
    pub jwks_max_age: Duration,
    /// `IDP_KEY_PUBLISH_SECS` (default 600): how long `idp keys rotate` publishes a new key
    /// before it signs. Keep it above the JWKS max-age so caches have seen the key.
    pub key_publish_lead: Duration,
    /// `IDP_KEY_RELOAD_SECS` (default 10): how often a running server re-reads the keys.
    pub key_reload_interval: Duration,
    /// `IDP_HOUSEKEEPING_SECS` (default 600): how often expired sessions, refresh-token
    /// families and revocations are purged.
    pub housekeeping_interval: Duration,
    /// `IDP_BLOCKING_THREADS` (default: CPU count): threads of each CPU pool (passwords, signing).
    pub blocking_threads: usize,
    /// `IDP_TRUSTED_PROXIES` (default none): comma-separated IP addresses and CIDR networks
    /// of reverse proxies whose `X-Forwarded-For` is believed when throttling by address.
    pub trusted_proxies: TrustedProxies,
    /// `IDP_REVOCATION_STREAMS_PER_CLIENT` (default 16): open revocation streams a
    /// client may hold at once on one replica.
    pub revocation_streams_per_client: usize,
    /// `IDP_BACKCHANNEL_LOGOUT_ATTEMPTS` (default 8): attempts to deliver one logout
    /// token (OpenID Connect Back-Channel Logout) before it is given up.
    pub backchannel_logout_attempts: u32,
    /// `IDP_BACKCHANNEL_LOGOUT_RETRY_MS` (default 1000): delay before the first retry,
    /// doubling at each further one (at most 5 minutes); also how often the outbox is read.
    pub backchannel_logout_retry: Duration,
    /// `IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS` (default 5000): bound on each delivery.
    pub backchannel_logout_timeout: Duration,
}

/// Life of an authorization code (RFC 9700 recommends well under a minute or two).
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Life of a login flow (the time a person has to fill in the login form).
pub const LOGIN_FLOW_TTL: Duration = Duration::from_secs(600);

impl Args {
    /// Applies the derived defaults and the checks clap cannot express.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let secs = Duration::from_secs;
        let millis = Duration::from_millis;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Config {
            issuer: parse_issuer(&self.issuer)?,
            bind: self.bind,
            metrics_bind: platform::metrics::parse_bind(
                "IDP_METRICS_BIND",
                self.metrics_bind.as_deref(),
                self.bind,
            )?,
            database: Database {
                url: self.database_url,
                max_connections: self.database_max_connections,
            },
            key_encryption_key: self.key_encryption_key,
            data_dir: self.data_dir,
            signing_alg: self.signing_alg,
            access_token_ttl: secs(self.access_token_ttl_secs),
            id_token_ttl: secs(self.id_token_ttl_secs),
            refresh_token_ttl: secs(self.refresh_token_ttl_secs),
            session_ttl: secs(self.session_ttl_secs),
            jwks_max_age: secs(self.jwks_max_age_secs),
            key_publish_lead: secs(self.key_publish_secs),
            key_reload_interval: secs(self.key_reload_secs),
            housekeeping_interval: secs(self.housekeeping_secs),
            blocking_threads: self.blocking_threads.map_or(cpus, |n| n as usize),
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies).map_err(|problem| {
                ConfigError::new(
                    "IDP_TRUSTED_PROXIES",
                    format!("expected comma-separated IP addresses or CIDR networks: {problem}"),
                )
            })?,
            revocation_streams_per_client: self.revocation_streams_per_client as usize,
            backchannel_logout_attempts: self.backchannel_logout_attempts,
            backchannel_logout_retry: millis(self.backchannel_logout_retry_ms),
            backchannel_logout_timeout: millis(self.backchannel_logout_timeout_ms),
        })
    }
}

/// [`Args`] alone, for [`Config::with_issuer`].
#[derive(clap::Parser)]
#[command(name = "idp")]
struct IdpOnly {
    #[command(flatten)]
    idp: Args,
}

impl Config {
    /// Defaults everywhere except the issuer; what tests and `idp::spawn`
    /// start from (the process environment is not read).
    pub fn with_issuer(issuer: &str) -> Result<Self, ConfigError> {
        let only: IdpOnly = platform::config::from_vars(&[("IDP_ISSUER", issuer)])
            .map_err(|refused| ConfigError::new("IDP_ISSUER", refused.message))?;
        only.idp.resolve()
    }

    /// `true` when the issuer is served over TLS: cookies get `Secure` and `__Host-`.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The longest a token signed now can stay valid: how long a retired key stays published.
    pub fn longest_token_life(&self) -> Duration {
        self.access_token_ttl.max(self.id_token_ttl) + Duration::from_secs(60)
    }

    /// The algorithms the IdP keeps a signing key for: `IDP_SIGNING_ALG`
    /// (every token by default) and RS256, which OIDC Core §15.1 requires for
    /// ID tokens whatever else is configured (clients choose with
    /// `id_token_signed_response_alg`).
    pub fn id_token_algs(&self) -> Vec<Alg> {
        crate::keys::signing_algs(self.signing_alg)
    }

    /// An endpoint URL under the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// The value parser of a signing algorithm (`IDP_SIGNING_ALG`, `--alg`, `--id-token-alg`).
pub fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse()
        .map_err(|()| format!("expected RS256, ES256 or EdDSA, got {s:?}"))
}

fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let err = |problem: &str| ConfigError::new("IDP_ISSUER", format!("{problem}: {raw:?}"));
    let url = url::Url::parse(raw).map_err(|_| err("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err("must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(err("must not have a query, fragment or credentials"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use platform::config::{Refused, from_vars};
    use secrecy::ExposeSecret;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Refused> {
        let only: IdpOnly = from_vars(vars)?;
        Ok(only.idp.resolve()?)
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = config(&[]).unwrap();
        assert_eq!(c.issuer, "http://localhost:9000");
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(
            c.database.url,
            "postgres://postgres@127.0.0.1:5432/baton_idp"
        );
        assert_eq!(c.signing_alg, Alg::RS256);
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        assert!(c.key_encryption_key.is_none());
        assert!(!c.secure_cookies());
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        for (pairs, name) in [
            (&[("IDP_ISSUER", "ftp://x")][..], "IDP_ISSUER"),
            (&[("IDP_ISSUER", "https://x/?a=b")][..], "IDP_ISSUER"),
            (&[("IDP_SIGNING_ALG", "HS256")][..], "IDP_SIGNING_ALG"),
            (
                &[("IDP_ACCESS_TOKEN_TTL_SECS", "-1")][..],
                "IDP_ACCESS_TOKEN_TTL_SECS",
            ),
            (&[("IDP_BIND", "nowhere")][..], "IDP_BIND"),
            (
                &[("IDP_BACKCHANNEL_LOGOUT_RETRY_MS", "0")][..],
                "IDP_BACKCHANNEL_LOGOUT_RETRY_MS",
            ),
            (
                &[("IDP_TRUSTED_PROXIES", "10.0.0.1, proxy")][..],
                "IDP_TRUSTED_PROXIES",
            ),
        ] {
            assert_eq!(config(pairs).unwrap_err().var, name);
        }
    }

    #[test]
    fn trusted_proxies_accept_networks() {
        let c = config(&[("IDP_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7, fd00::/8")]).unwrap();
        let mut xff = axum::http::HeaderMap::new();
        xff.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            c.trusted_proxies.client_ip(ip("10.20.30.40"), &xff),
            ip("198.51.100.7")
        );
        assert_eq!(
            c.trusted_proxies.client_ip(ip("11.0.0.1"), &xff),
            ip("11.0.0.1")
        );
    }

    #[test]
    fn https_issuer_means_secure_cookies_and_no_trailing_slash() {
        let c = config(&[("IDP_ISSUER", "https://id.example.com/")]).unwrap();
        assert_eq!(c.issuer, "https://id.example.com");
        assert!(c.secure_cookies());
        assert_eq!(c.url("/token"), "https://id.example.com/token");
    }

    #[test]
    fn debug_does_not_print_the_key_encryption_key() {
        let key = "c2VjcmV0LWtleS00NzExLTAxMjM0NTY3ODlhYmNkZWY=";
        let c = config(&[("IDP_KEY_ENCRYPTION_KEY", key)]).unwrap();
        assert_eq!(
            c.key_encryption_key.as_ref().map(|k| k.expose_secret()),
            Some(key)
        );
        assert!(!format!("{c:?}").contains(key), "{c:?}");
    }
}
