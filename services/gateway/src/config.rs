//! The gateway's settings: [`Args`], the command line and environment as
//! clap reads them (`gateway --help` lists every variable with its default),
//! and [`Config`], what they resolve to once the derived defaults are applied
//! (`GATEWAY_ISSUER` falls back to `GUARD_ISSUER`) and the checks clap cannot
//! express are passed (the session keys, an origin without a path).
//!
//! Token validation (API clients' own tokens and the session's access token)
//! uses guard's variables ([`GuardArgs`]): the issuer is the gateway's, and
//! its client is the revocation stream's unless `GUARD_CLIENT_ID` says otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use guard::GuardArgs;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use platform::ConfigError;
use platform::client_ip::TrustedProxies;
use platform::crypto::SealKey;
use platform::db::Database;

/// The development session key: public, so sessions sealed with it are not secret.
const DEV_SESSION_KEY: [u8; 32] = *b"baton-dev-session-key-NOT-SECRET";
const DEV_CLIENT_SECRET: &str = "gateway-dev-secret";
const DEFAULT_SCOPES: &str = "openid profile email offline_access orders:read orders:write \
     payments:read payments:write payments:refund inventory:read inventory:write";

/// gateway: signs people in at the IdP, keeps their sessions and relays
/// their requests to the shop's services with their access token.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version)]
pub struct Args {
    /// Listen address.
    #[arg(
        long = "gateway-bind",
        env = "GATEWAY_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,
    /// Where `GET /metrics` listens; `off` disables it [default: 127.0.0.1
    /// on the port of GATEWAY_BIND + 1000].
    #[arg(long = "gateway-metrics-bind", env = "GATEWAY_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// The origin the browser sees; https turns on `__Host-` + `Secure` cookies and HSTS.
    #[arg(
        long = "gateway-public-url",
        env = "GATEWAY_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// Its database (sessions).
    #[arg(
        long = "gateway-database-url",
        env = "GATEWAY_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/baton_gateway"
    )]
    pub database_url: String,
    /// Pool size.
    #[arg(
        long = "gateway-db-max-connections",
        env = "GATEWAY_DB_MAX_CONNECTIONS",
        default_value = "20",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub db_max_connections: u32,
    /// The IdP it signs people in with [default: GUARD_ISSUER].
    #[arg(long = "gateway-issuer", env = "GATEWAY_ISSUER")]
    pub issuer: Option<String>,
    /// Its client id at the IdP.
    #[arg(
        long = "gateway-client-id",
        env = "GATEWAY_CLIENT_ID",
        default_value = "gateway"
    )]
    pub client_id: String,
    /// Its client secret [default: `gateway-dev-secret`, with a warning].
    #[arg(long = "gateway-client-secret", env = "GATEWAY_CLIENT_SECRET", value_parser = platform::config::secret)]
    pub client_secret: Option<SecretString>,
    /// Scopes it asks for at sign-in.
    #[arg(long = "gateway-scopes", env = "GATEWAY_SCOPES", default_value = DEFAULT_SCOPES)]
    pub scopes: String,
    /// The route table.
    #[arg(
        long = "gateway-routes",
        env = "GATEWAY_ROUTES",
        default_value = "deploy/routes.toml"
    )]
    pub routes: PathBuf,
    /// 32 bytes, base64: encrypts the session's tokens at rest [default: a
    /// fixed development key, with a loud warning; refused when
    /// GATEWAY_PUBLIC_URL is https].
    #[arg(long = "gateway-session-key", env = "GATEWAY_SESSION_KEY", value_parser = platform::config::secret)]
    pub session_key: Option<SecretString>,
    /// Comma-separated earlier session keys that still open sessions (key rotation).
    #[arg(long = "gateway-session-key-previous", env = "GATEWAY_SESSION_KEY_PREVIOUS", value_parser = platform::config::secret)]
    pub session_key_previous: Option<SecretString>,
    /// Session idle timeout, in seconds.
    #[arg(
        long = "gateway-session-idle-secs",
        env = "GATEWAY_SESSION_IDLE_SECS",
        default_value = "1800"
    )]
    pub session_idle_secs: u64,
    /// Session absolute timeout, in seconds.
    #[arg(
        long = "gateway-session-max-secs",
        env = "GATEWAY_SESSION_MAX_SECS",
        default_value = "43200"
    )]
    pub session_max_secs: u64,
    /// Refresh the access token when it expires within this many seconds.
    #[arg(
        long = "gateway-refresh-before-secs",
        env = "GATEWAY_REFRESH_BEFORE_SECS",
        default_value = "30"
    )]
    pub refresh_before_secs: u64,
    /// Bound on every call to the IdP, in milliseconds.
    #[arg(
        long = "gateway-idp-timeout-ms",
        env = "GATEWAY_IDP_TIMEOUT_MS",
        default_value = "5000"
    )]
    pub idp_timeout_ms: u64,
    /// Comma-separated IPs/CIDRs allowed to set `X-Forwarded-For` (rate
    /// limits use the peer address otherwise).
    #[arg(
        long = "gateway-trusted-proxies",
        env = "GATEWAY_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: String,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// The gateway's settings, resolved.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// `GATEWAY_METRICS_BIND`: where `GET /metrics` listens (default the
    /// port + 1000 on 127.0.0.1, `off`: none; see [`platform::metrics`]).
    pub metrics_bind: Option<SocketAddr>,
    /// The origin the browser sees; redirect URIs and the CSRF origin check derive from it.
    pub public_url: Url,
    pub database: Database,
    /// The trusted issuer, compared exactly (as a string) with `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: String,
    pub routes_path: PathBuf,
    pub session_key: SealKey,
    pub session_idle: Duration,
    pub session_max: Duration,
    /// Refresh the access token when it expires within this margin.
    pub refresh_before: Duration,
    /// Bound on every call to the IdP (discovery, token, revoke).
    pub idp_timeout: Duration,
    pub trusted_proxies: TrustedProxies,
    /// The secrets left at their development defaults; `main` warns loudly.
    pub dev_secrets: Vec<&'static str>,
    /// `GUARD_*` settings for the validators (issuer forced to `issuer`).
    guard: GuardArgs,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url.as_str())
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("routes_path", &self.routes_path)
            .finish_non_exhaustive()
    }
}

impl Args {
    /// Applies the derived defaults and the checks clap cannot express.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let mut dev_secrets = Vec::new();

        let public_url = parse_url("GATEWAY_PUBLIC_URL", &self.public_url)?;
        if public_url.path() != "/" || public_url.query().is_some() {
            return Err(ConfigError::new(
                "GATEWAY_PUBLIC_URL",
                "must be an origin (scheme, host, port) without a path",
            ));
        }
        let issuer = self
            .issuer
            .as_deref()
            .unwrap_or(&self.guard.issuer)
            .trim()
            .trim_end_matches('/')
            .to_owned();
        parse_url("GATEWAY_ISSUER", &issuer)?;

        let client_secret = self.client_secret.unwrap_or_else(|| {
            dev_secrets.push("GATEWAY_CLIENT_SECRET");
            DEV_CLIENT_SECRET.into()
        });
        let current = match &self.session_key {
            Some(b64) => key_bytes("GATEWAY_SESSION_KEY", b64.expose_secret())?,
            None => {
                dev_secrets.push("GATEWAY_SESSION_KEY");
                DEV_SESSION_KEY.to_vec()
            }
        };
        let previous = self
            .session_key_previous
            .as_ref()
            .map(|keys| keys.expose_secret().to_owned())
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| key_bytes("GATEWAY_SESSION_KEY_PREVIOUS", k))
            .collect::<Result<Vec<_>, _>>()?;
        // The development key is public: whoever knows it opens sealed sessions
        // and forges sign-in flow cookies. Fine on a laptop, never where people
        // sign in over https.
        if public_url.scheme() == "https" {
            let dev = |key: &Vec<u8>| *key == DEV_SESSION_KEY;
            for (var, used) in [
                ("GATEWAY_SESSION_KEY", dev(&current)),
                ("GATEWAY_SESSION_KEY_PREVIOUS", previous.iter().any(dev)),
            ] {
                if used {
                    return Err(ConfigError::new(
                        var,
                        "the public development key cannot be used when \
                         GATEWAY_PUBLIC_URL is https (openssl rand -base64 32)",
                    ));
                }
            }
        }
        let session_key = SealKey::rotating(&current, &previous)
            .ok_or(ConfigError::new("GATEWAY_SESSION_KEY", "must be 32 bytes"))?;

        let config = Config {
            bind: self.bind,
            metrics_bind: platform::metrics::parse_bind(
                "GATEWAY_METRICS_BIND",
                self.metrics_bind.as_deref(),
                self.bind,
            )?,
            public_url,
            database: Database {
                url: self.database_url,
                max_connections: self.db_max_connections,
            },
            issuer,
            client_id: self.client_id,
            client_secret,
            scopes: self.scopes,
            routes_path: self.routes,
            session_key,
            session_idle: Duration::from_secs(self.session_idle_secs),
            session_max: Duration::from_secs(self.session_max_secs),
            refresh_before: Duration::from_secs(self.refresh_before_secs),
            idp_timeout: Duration::from_millis(self.idp_timeout_ms),
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|reason| ConfigError::new("GATEWAY_TRUSTED_PROXIES", reason))?,
            dev_secrets,
            guard: self.guard,
        };
        // Refuse bad GUARD_* values now rather than at the first route.
        config.guard_config("gateway")?;
        Ok(config)
    }
}

impl Config {
    /// Validator settings for tokens meant for `audience`. The gateway reads
    /// the revocation stream as its own OIDC client unless `GUARD_CLIENT_ID`
    /// and `GUARD_CLIENT_SECRET` say otherwise. API clients reach it at
    /// `GATEWAY_PUBLIC_URL`: their DPoP proofs name that URL (`htu`).
    pub fn guard_config(&self, audience: &str) -> Result<guard::GuardConfig, ConfigError> {
        let mut guard = self.guard.clone();
        guard.issuer.clone_from(&self.issuer);
        guard.public_url = Some(self.public_url.clone());
        guard.resolve_as(audience, Some((&self.client_id, &self.client_secret)))
    }

    /// `true` when the browser reaches the gateway over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The serialized origin of the public URL, e.g. `http://localhost:8080`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// The public host and port as browsers use it (for `X-Forwarded-Host`).
    pub fn public_host(&self) -> String {
        let host = self.public_url.host_str().unwrap_or("localhost");
        match self.public_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The registered redirect URI of the gateway client.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_origin())
    }
}

/// A session key: base64 of exactly 32 bytes.
fn key_bytes(var: &'static str, b64: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| ConfigError::new(var, format!("not base64: {e}")))?;
    if bytes.len() != 32 {
        return Err(ConfigError::new(
            var,
            "must decode to exactly 32 bytes (openssl rand -base64 32)",
        ));
    }
    Ok(bytes)
}

fn parse_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url: Url = value
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(var, format!("{value:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(ConfigError::new(
            var,
            format!("{value:?} is not an http(s) URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use platform::config::{Refused, from_vars};

    fn config(vars: &[(&str, &str)]) -> Result<Config, Refused> {
        Ok(from_vars::<Args>(vars)?.resolve()?)
    }

    #[test]
    fn defaults_are_the_documented_ones_and_flag_dev_secrets() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_origin(), "http://localhost:8080");
        assert_eq!(c.redirect_uri(), "http://localhost:8080/auth/callback");
        assert_eq!(c.issuer, "http://localhost:9000");
        assert_eq!(
            c.guard_config("order").unwrap().issuer(),
            "http://localhost:9000"
        );
        assert_eq!(c.client_id, "gateway");
        assert_eq!(c.refresh_before, Duration::from_secs(30));
        assert!(!c.secure_cookies());
        assert_eq!(
            c.dev_secrets,
            vec!["GATEWAY_CLIENT_SECRET", "GATEWAY_SESSION_KEY"]
        );
    }

    #[test]
    fn guard_issuer_is_the_fallback_and_https_turns_on_secure_cookies() {
        let c = config(&[
            ("GUARD_ISSUER", "https://id.example.com"),
            ("GATEWAY_PUBLIC_URL", "https://shop.example.com"),
            ("GATEWAY_CLIENT_SECRET", "s"),
            (
                "GATEWAY_SESSION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ])
        .unwrap();
        assert_eq!(c.issuer, "https://id.example.com");
        assert!(c.secure_cookies());
        assert!(c.dev_secrets.is_empty());
    }

    #[test]
    fn an_https_gateway_refuses_the_public_development_key() {
        let https = ("GATEWAY_PUBLIC_URL", "https://shop.example.com");
        let dev = STANDARD.encode(DEV_SESSION_KEY);
        let secret = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        for vars in [
            vec![https],
            vec![https, ("GATEWAY_SESSION_KEY", dev.as_str())],
        ] {
            let refused = config(&vars).err().map(|e| e.var);
            assert_eq!(refused.as_deref(), Some("GATEWAY_SESSION_KEY"), "{vars:?}");
        }
        let previous = config(&[
            https,
            ("GATEWAY_SESSION_KEY", secret),
            ("GATEWAY_SESSION_KEY_PREVIOUS", &dev),
        ]);
        assert_eq!(
            previous.err().map(|e| e.var).as_deref(),
            Some("GATEWAY_SESSION_KEY_PREVIOUS")
        );
        // Over plain http (a laptop) the development key still starts, flagged.
        let local = config(&[("GATEWAY_PUBLIC_URL", "http://localhost:8080")]).unwrap();
        assert!(local.dev_secrets.contains(&"GATEWAY_SESSION_KEY"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let previous = config(&[("GATEWAY_SESSION_KEY_PREVIOUS", "c2hvcnQ=")]);
        assert_eq!(previous.unwrap_err().var, "GATEWAY_SESSION_KEY_PREVIOUS");
        assert_eq!(
            config(&[("GATEWAY_SESSION_KEY", "c2hvcnQ=")])
                .unwrap_err()
                .var,
            "GATEWAY_SESSION_KEY"
        );
        assert_eq!(
            config(&[("GATEWAY_PUBLIC_URL", "http://x/app")])
                .unwrap_err()
                .var,
            "GATEWAY_PUBLIC_URL"
        );
        assert_eq!(
            config(&[("GATEWAY_BIND", "nope")]).unwrap_err().var,
            "GATEWAY_BIND"
        );
        assert_eq!(
            config(&[("GATEWAY_ISSUER", "ftp://x")]).unwrap_err().var,
            "GATEWAY_ISSUER"
        );
        assert_eq!(
            config(&[("GUARD_ALGORITHMS", "HS256")]).unwrap_err().var,
            "GUARD_ALGORITHMS"
        );
        assert_eq!(
            config(&[("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/99")])
                .unwrap_err()
                .var,
            "GATEWAY_TRUSTED_PROXIES"
        );
    }

    #[test]
    fn debug_does_not_print_the_secrets() {
        let key = "c2VjcmV0LWtleS00NzExLTAxMjM0NTY3ODlhYmNkZWY=";
        let vars = [
            ("GATEWAY_CLIENT_SECRET", "client-secret-4711"),
            ("GATEWAY_SESSION_KEY", key),
            ("GATEWAY_SESSION_KEY_PREVIOUS", key),
            ("GUARD_CLIENT_SECRET", "guard-secret-4711"),
        ];
        let args = from_vars::<Args>(&vars).unwrap();
        let config = args.clone().resolve().unwrap();
        for debug in [format!("{args:?}"), format!("{config:?}")] {
            assert!(!debug.contains("4711") && !debug.contains(key), "{debug}");
        }
    }
}
