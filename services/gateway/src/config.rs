//! Gateway configuration: environment variables only, parsed once at start-up.
//!
//! | variable | default |
//! |---|---|
//! | `GATEWAY_BIND` | `127.0.0.1:8080` |
//! | `GATEWAY_METRICS_BIND` | `127.0.0.1:9080` (the port + 1000; `off`: none) |
//! | `GATEWAY_PUBLIC_URL` | `http://localhost:8080` (what the browser opens; https turns on `__Host-` + `Secure` cookies and HSTS) |
//! | `GATEWAY_DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/baton_gateway` |
//! | `GATEWAY_ISSUER` | `GUARD_ISSUER`, else `http://localhost:9000` |
//! | `GATEWAY_CLIENT_ID` | `gateway` |
//! | `GATEWAY_CLIENT_SECRET` | `gateway-dev-secret` (warns) |
//! | `GATEWAY_SCOPES` | `openid profile email offline_access orders:read orders:write payments:read payments:write payments:refund inventory:read inventory:write` |
//! | `GATEWAY_ROUTES` | `deploy/routes.toml` |
//! | `GATEWAY_SESSION_KEY` | a fixed development key (warns loudly; refused when the public URL is https); 32 bytes, base64 |
//! | `GATEWAY_SESSION_KEY_PREVIOUS` | empty; comma-separated earlier keys that still open sessions (rotation) |
//! | `GATEWAY_SESSION_IDLE_SECS` | `1800` |
//! | `GATEWAY_SESSION_MAX_SECS` | `43200` |
//! | `GATEWAY_REFRESH_BEFORE_SECS` | `30` |
//! | `GATEWAY_IDP_TIMEOUT_MS` | `5000` |
//! | `GATEWAY_TRUSTED_PROXIES` | empty (comma-separated IPs or CIDRs allowed to set `X-Forwarded-For`) |
//! | `GATEWAY_DB_MAX_CONNECTIONS` | `20` |
//!
//! Token validation (API clients' own tokens and the session's access token)
//! uses guard's variables: `GUARD_ALGORITHMS`, `GUARD_LEEWAY_SECS`,
//! `GUARD_JWKS_REFETCH_SECS`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use url::Url;

use platform::client_ip::TrustedProxies;
use platform::crypto::SealKey;

/// The development session key: public, so sessions sealed with it are not secret.
const DEV_SESSION_KEY: [u8; 32] = *b"baton-dev-session-key-NOT-SECRET";
const DEV_CLIENT_SECRET: &str = "gateway-dev-secret";
const DEFAULT_SCOPES: &str = "openid profile email offline_access orders:read orders:write \
     payments:read payments:write payments:refund inventory:read inventory:write";

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Everything the gateway reads from its environment.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// `GATEWAY_METRICS_BIND`: where `GET /metrics` listens (default the
    /// port + 1000 on 127.0.0.1, `off`: none; see [`platform::metrics`]).
    pub metrics_bind: Option<SocketAddr>,
    /// The origin the browser sees; redirect URIs and the CSRF origin check derive from it.
    pub public_url: Url,
    pub database_url: String,
    pub db_max_connections: u32,
    /// The trusted issuer, compared exactly (as a string) with `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
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
    guard_env: GuardEnv,
}

/// Reads one environment variable.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where the validators' `GUARD_*` settings come from: every variable guard
/// knows (present and future) passes through, except the issuer, which is the
/// gateway's.
#[derive(Clone)]
struct GuardEnv {
    issuer: String,
    get: Arc<Lookup>,
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

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`, so tests need not touch the process environment.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let var =
            |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let mut dev_secrets = Vec::new();

        let public_url = parse_url(
            "GATEWAY_PUBLIC_URL",
            &var("GATEWAY_PUBLIC_URL", "http://localhost:8080"),
        )?;
        if public_url.path() != "/" || public_url.query().is_some() {
            return Err(ConfigError {
                var: "GATEWAY_PUBLIC_URL",
                reason: "must be an origin (scheme, host, port) without a path".into(),
            });
        }
        let issuer_default = get("GUARD_ISSUER").unwrap_or_else(|| "http://localhost:9000".into());
        let issuer = var("GATEWAY_ISSUER", &issuer_default)
            .trim()
            .trim_end_matches('/')
            .to_owned();
        parse_url("GATEWAY_ISSUER", &issuer)?;

        let client_secret = match get("GATEWAY_CLIENT_SECRET") {
            Some(s) => s,
            None => {
                dev_secrets.push("GATEWAY_CLIENT_SECRET");
                DEV_CLIENT_SECRET.to_owned()
            }
        };
        let key_bytes = |var: &'static str, b64: &str| -> Result<Vec<u8>, ConfigError> {
            let bytes = STANDARD.decode(b64.trim()).map_err(|e| ConfigError {
                var,
                reason: format!("not base64: {e}"),
            })?;
            if bytes.len() != 32 {
                return Err(ConfigError {
                    var,
                    reason: "must decode to exactly 32 bytes (openssl rand -base64 32)".into(),
                });
            }
            Ok(bytes)
        };
        let current = match get("GATEWAY_SESSION_KEY") {
            Some(b64) => key_bytes("GATEWAY_SESSION_KEY", &b64)?,
            None => {
                dev_secrets.push("GATEWAY_SESSION_KEY");
                DEV_SESSION_KEY.to_vec()
            }
        };
        let previous = get("GATEWAY_SESSION_KEY_PREVIOUS")
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
                    return Err(ConfigError {
                        var,
                        reason: "the public development key cannot be used when \
                                 GATEWAY_PUBLIC_URL is https (openssl rand -base64 32)"
                            .into(),
                    });
                }
            }
        }
        let session_key = SealKey::rotating(&current, &previous).ok_or(ConfigError {
            var: "GATEWAY_SESSION_KEY",
            reason: "must be 32 bytes".into(),
        })?;

        let bind = parse("GATEWAY_BIND", &var("GATEWAY_BIND", "127.0.0.1:8080"))?;
        let metrics_bind = platform::metrics::parse_bind(
            "GATEWAY_METRICS_BIND",
            get("GATEWAY_METRICS_BIND").as_deref(),
            bind,
        )
        .map_err(|e| ConfigError {
            var: e.var,
            reason: e.reason,
        })?;
        Ok(Self {
            bind,
            metrics_bind,
            public_url,
            database_url: var(
                "GATEWAY_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/baton_gateway",
            ),
            db_max_connections: parse(
                "GATEWAY_DB_MAX_CONNECTIONS",
                &var("GATEWAY_DB_MAX_CONNECTIONS", "20"),
            )?,
            issuer: issuer.clone(),
            client_id: var("GATEWAY_CLIENT_ID", "gateway"),
            client_secret,
            scopes: var("GATEWAY_SCOPES", DEFAULT_SCOPES),
            routes_path: PathBuf::from(var("GATEWAY_ROUTES", "deploy/routes.toml")),
            session_key,
            session_idle: secs(
                "GATEWAY_SESSION_IDLE_SECS",
                &var("GATEWAY_SESSION_IDLE_SECS", "1800"),
            )?,
            session_max: secs(
                "GATEWAY_SESSION_MAX_SECS",
                &var("GATEWAY_SESSION_MAX_SECS", "43200"),
            )?,
            refresh_before: secs(
                "GATEWAY_REFRESH_BEFORE_SECS",
                &var("GATEWAY_REFRESH_BEFORE_SECS", "30"),
            )?,
            idp_timeout: Duration::from_millis(parse(
                "GATEWAY_IDP_TIMEOUT_MS",
                &var("GATEWAY_IDP_TIMEOUT_MS", "5000"),
            )?),
            trusted_proxies: TrustedProxies::parse(&var("GATEWAY_TRUSTED_PROXIES", "")).map_err(
                |reason| ConfigError {
                    var: "GATEWAY_TRUSTED_PROXIES",
                    reason,
                },
            )?,
            dev_secrets,
            guard_env: GuardEnv {
                issuer,
                get: Arc::new(get),
            },
        })
        .and_then(|c| {
            // Refuse bad GUARD_* values now rather than at the first route.
            c.guard_config("gateway").map_err(|e| ConfigError {
                var: e.var,
                reason: e.reason,
            })?;
            Ok(c)
        })
    }

    /// Validator settings for tokens meant for `audience`. The gateway reads
    /// the revocation stream as its own OIDC client unless `GUARD_CLIENT_ID`
    /// and `GUARD_CLIENT_SECRET` say otherwise. API clients reach it at
    /// `GATEWAY_PUBLIC_URL`: their DPoP proofs name that URL (`htu`).
    pub fn guard_config(
        &self,
        audience: &str,
    ) -> Result<guard::GuardConfig, platform::ConfigError> {
        let env = &self.guard_env;
        guard::GuardConfig::from_lookup(audience, |name| match name {
            "GUARD_ISSUER" => Some(env.issuer.clone()),
            "GUARD_CLIENT_ID" => (env.get)(name).or_else(|| Some(self.client_id.clone())),
            "GUARD_CLIENT_SECRET" => (env.get)(name).or_else(|| Some(self.client_secret.clone())),
            "GUARD_PUBLIC_URL" => Some(self.public_url.to_string()),
            _ => (env.get)(name),
        })
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

fn parse<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| ConfigError {
        var,
        reason: format!("{value:?}: {e}"),
    })
}

fn secs(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse::<u64>(var, value).map(Duration::from_secs)
}

fn parse_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url: Url = parse(var, value)?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(ConfigError {
            var,
            reason: format!("{value:?} is not an http(s) URL"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
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
            assert_eq!(refused, Some("GATEWAY_SESSION_KEY"), "{vars:?}");
        }
        let previous = config(&[
            https,
            ("GATEWAY_SESSION_KEY", secret),
            ("GATEWAY_SESSION_KEY_PREVIOUS", &dev),
        ]);
        assert_eq!(
            previous.err().map(|e| e.var),
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
}
