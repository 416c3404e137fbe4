//! Configuration: environment variables only, parsed once, each with a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::client_ip::TrustedProxies;

use crate::keys::Alg;

/// Everything the IdP reads from its environment.
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
    /// `IDP_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/baton_idp`).
    pub database_url: String,
    /// `IDP_DATABASE_MAX_CONNECTIONS` (default 16).
    pub database_max_connections: u32,
    /// `IDP_KEY_ENCRYPTION_KEY`: 32 bytes, base64. Unset: a development key kept in
    /// `IDP_DATA_DIR` (a loud warning is logged).
    pub key_encryption_key: Option<String>,
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

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// Life of an authorization code (RFC 9700 recommends well under a minute or two).
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Life of a login flow (the time a person has to fill in the login form).
pub const LOGIN_FLOW_TTL: Duration = Duration::from_secs(600);

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Defaults everywhere except the issuer; what tests and `idp::spawn` start from.
    pub fn with_issuer(issuer: &str) -> Result<Self, ConfigError> {
        let issuer = issuer.to_owned();
        Self::from_lookup(move |name| (name == "IDP_ISSUER").then(|| issuer.clone()))
    }

    fn from_lookup(get: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str, default: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let secs = |name: &'static str, default: u64, min: u64| -> Result<Duration, ConfigError> {
            let raw = var(name, &default.to_string());
            match raw.trim().parse::<u64>() {
                Ok(v) if v >= min && v <= 366 * 24 * 3600 => Ok(Duration::from_secs(v)),
                _ => Err(ConfigError {
                    name,
                    problem: format!(
                        "expected whole seconds between {min} and 31622400, got {raw:?}"
                    ),
                }),
            }
        };
        let issuer = parse_issuer(&var("IDP_ISSUER", "http://localhost:9000"))?;
        let bind_raw = var("IDP_BIND", "127.0.0.1:9000");
        let bind = bind_raw.parse().map_err(|_| ConfigError {
            name: "IDP_BIND",
            problem: format!("expected host:port, got {bind_raw:?}"),
        })?;
        let alg_raw = var("IDP_SIGNING_ALG", "RS256");
        let signing_alg = alg_raw.parse().map_err(|_| ConfigError {
            name: "IDP_SIGNING_ALG",
            problem: format!("expected RS256, ES256 or EdDSA, got {alg_raw:?}"),
        })?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let count =
            |name: &'static str, default: usize, max: usize| -> Result<usize, ConfigError> {
                let raw = var(name, &default.to_string());
                match raw.trim().parse::<usize>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError {
                        name,
                        problem: format!("expected 1..={max}, got {raw:?}"),
                    }),
                }
            };
        let blocking_threads = count("IDP_BLOCKING_THREADS", cpus, 256)?;
        let database_max_connections = count("IDP_DATABASE_MAX_CONNECTIONS", 16, 1000)? as u32;
        let revocation_streams_per_client = count("IDP_REVOCATION_STREAMS_PER_CLIENT", 16, 10_000)?;
        let backchannel_logout_attempts = count("IDP_BACKCHANNEL_LOGOUT_ATTEMPTS", 8, 100)? as u32;
        let millis = |name: &'static str, default: usize| -> Result<Duration, ConfigError> {
            count(name, default, 600_000).map(|ms| Duration::from_millis(ms as u64))
        };
        let backchannel_logout_retry = millis("IDP_BACKCHANNEL_LOGOUT_RETRY_MS", 1000)?;
        let backchannel_logout_timeout = millis("IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS", 5000)?;
        let trusted_proxies =
            TrustedProxies::parse(&var("IDP_TRUSTED_PROXIES", "")).map_err(|problem| {
                ConfigError {
                    name: "IDP_TRUSTED_PROXIES",
                    problem: format!(
                        "expected comma-separated IP addresses or CIDR networks: {problem}"
                    ),
                }
            })?;
        let metrics_bind = platform::metrics::parse_bind(
            "IDP_METRICS_BIND",
            get("IDP_METRICS_BIND").as_deref(),
            bind,
        )
        .map_err(|e| ConfigError {
            name: e.var,
            problem: e.reason,
        })?;
        Ok(Config {
            issuer,
            bind,
            metrics_bind,
            database_url: var(
                "IDP_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/baton_idp",
            ),
            database_max_connections,
            key_encryption_key: get("IDP_KEY_ENCRYPTION_KEY").filter(|v| !v.trim().is_empty()),
            data_dir: PathBuf::from(var("IDP_DATA_DIR", ".data/idp")),
            signing_alg,
            access_token_ttl: secs("IDP_ACCESS_TOKEN_TTL_SECS", 300, 10)?,
            id_token_ttl: secs("IDP_ID_TOKEN_TTL_SECS", 300, 10)?,
            refresh_token_ttl: secs("IDP_REFRESH_TOKEN_TTL_SECS", 28_800, 60)?,
            session_ttl: secs("IDP_SESSION_TTL_SECS", 43_200, 60)?,
            jwks_max_age: secs("IDP_JWKS_MAX_AGE_SECS", 300, 0)?,
            key_publish_lead: secs("IDP_KEY_PUBLISH_SECS", 600, 0)?,
            key_reload_interval: secs("IDP_KEY_RELOAD_SECS", 10, 1)?,
            housekeeping_interval: secs("IDP_HOUSEKEEPING_SECS", 600, 1)?,
            blocking_threads,
            trusted_proxies,
            revocation_streams_per_client,
            backchannel_logout_attempts,
            backchannel_logout_retry,
            backchannel_logout_timeout,
        })
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

fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let err = |problem: &str| ConfigError {
        name: "IDP_ISSUER",
        problem: format!("{problem}: {raw:?}"),
    };
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
    use super::*;

    fn lookup(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&'static str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.issuer, "http://localhost:9000");
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(
            c.database_url,
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
            let pairs: &'static [(&'static str, &'static str)] = pairs;
            assert_eq!(Config::from_lookup(lookup(pairs)).unwrap_err().name, name);
        }
    }

    #[test]
    fn trusted_proxies_accept_networks() {
        let c = Config::from_lookup(lookup(&[(
            "IDP_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7, fd00::/8",
        )]))
        .unwrap();
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
        let c = Config::from_lookup(lookup(&[("IDP_ISSUER", "https://id.example.com/")])).unwrap();
        assert_eq!(c.issuer, "https://id.example.com");
        assert!(c.secure_cookies());
        assert_eq!(c.url("/token"), "https://id.example.com/token");
    }
}
