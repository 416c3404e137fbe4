//! Settings: the validation settings of a [`Guard`](crate::Guard) — who issues
//! tokens, who we are, which algorithms we accept — and [`var`], which every
//! service uses to read its own typed settings from the environment.
//!
//! Every validation rule is on by default; the knobs can only narrow what is
//! accepted (a shorter skew, fewer algorithms) or tune caching. There is no
//! switch that turns a check off.

use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use platform::ConfigError;
use url::Url;

/// Default issuer when `GUARD_ISSUER` is not set.
pub const DEFAULT_ISSUER: &str = "http://localhost:9000";
/// Default algorithm allow-list when `GUARD_ALGORITHMS` is not set.
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// Largest accepted clock skew; a larger `GUARD_LEEWAY_SECS` is a configuration error.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Largest accepted token (RFC 8725 §3.8 advises bounding input), in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Settings of a [`Guard`](crate::Guard).
///
/// Build it with [`GuardConfig::from_env`] in services and [`GuardConfig::new`]
/// plus the `with_*` methods in tests.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) jwks_uri: Option<Url>,
    pub(crate) jwks_min_ttl: Duration,
    pub(crate) jwks_max_ttl: Duration,
    pub(crate) jwks_default_ttl: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) cache_capacity: u64,
    pub(crate) max_token_lifetime: Duration,
    pub(crate) revocation_capacity: usize,
    pub(crate) revocation_stream: Option<Url>,
    pub(crate) stream_credentials: Option<ClientCredentials>,
    pub(crate) revocation_max_staleness: Duration,
    pub(crate) stale_policy: StalePolicy,
    /// Where callers reach this service: the base of a DPoP proof's `htu`.
    pub(crate) public_url: Option<Url>,
    pub(crate) dpop_replay_capacity: usize,
}

/// This service's own client at the IdP, with which it subscribes to the
/// revocation stream (registered with the scope `revocations:read`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What a guard does with tokens while its revocation stream has not
/// confirmed it is up to date for longer than
/// `GUARD_REVOCATION_MAX_STALENESS_SECS` (and before the first confirmation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StalePolicy {
    /// Keep validating (the default): access tokens are short-lived, so an
    /// IdP outage costs at most one token lifetime of revocations, and signed
    /// in users keep working while the IdP is down.
    Serve,
    /// Refuse every token (401 `invalid_token`) and report not ready: no
    /// revoked token is ever accepted, at the price of an outage whenever the
    /// stream is out of reach. A token issued during the gap could have been
    /// revoked during it too, so refusing only older tokens would not be sound.
    Refuse,
}

impl FromStr for StalePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "serve" => Ok(Self::Serve),
            "refuse" => Ok(Self::Refuse),
            _ => Err("expected serve or refuse".into()),
        }
    }
}

impl GuardConfig {
    /// Defaults for tokens issued by `issuer` (compared exactly, as a string)
    /// and meant for `audience` (this service's resource name, e.g. `order`).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(30),
            jwks_refetch_interval: Duration::from_secs(5),
            jwks_uri: None,
            jwks_min_ttl: Duration::from_secs(30),
            jwks_max_ttl: Duration::from_secs(24 * 3600),
            jwks_default_ttl: Duration::from_secs(300),
            http_timeout: Duration::from_secs(3),
            cache_capacity: 10_000,
            max_token_lifetime: Duration::from_secs(3600),
            revocation_capacity: 1_000_000,
            revocation_stream: None,
            stream_credentials: None,
            revocation_max_staleness: Duration::from_secs(30),
            stale_policy: StalePolicy::Serve,
            public_url: None,
            dpop_replay_capacity: 100_000,
        }
    }

    /// Reads the `GUARD_*` environment variables (see the crate documentation
    /// for the table); `audience` is the service's own resource name.
    pub fn from_env(audience: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(audience, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable source (testable without
    /// touching the process environment).
    pub fn from_lookup(
        audience: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secs = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            get(name)
                .map(|v| {
                    v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                        ConfigError::new(name, format!("not a number of seconds: {v:?}"))
                    })
                })
                .transpose()
        };

        let issuer = get("GUARD_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        Url::parse(&issuer)
            .map_err(|e| ConfigError::new("GUARD_ISSUER", format!("not a URL: {e}")))?;
        let mut config = Self::new(issuer, audience);
        if let Some(list) = get("GUARD_ALGORITHMS") {
            config = config.with_algorithms(&parse_algorithms(&list)?)?;
        }
        if let Some(leeway) = secs("GUARD_LEEWAY_SECS")? {
            config = config.with_leeway(leeway)?;
        }
        if let Some(interval) = secs("GUARD_JWKS_REFETCH_SECS")? {
            config = config.with_jwks_refetch_interval(interval);
        }
        if let Some(uri) = get("GUARD_JWKS_URI") {
            let uri = Url::parse(&uri)
                .map_err(|e| ConfigError::new("GUARD_JWKS_URI", format!("not a URL: {e}")))?;
            config = config.with_jwks_uri(uri);
        }
        // On by default in services: the IdP's stream at `<issuer>/revocations/stream`.
        let stream = get("GUARD_REVOCATION_STREAM_URL").unwrap_or_else(|| {
            format!("{}/revocations/stream", config.issuer.trim_end_matches('/'))
        });
        if !stream.eq_ignore_ascii_case("off") {
            let url = Url::parse(&stream).map_err(|e| {
                ConfigError::new("GUARD_REVOCATION_STREAM_URL", format!("not a URL: {e}"))
            })?;
            config = config.with_revocation_stream(url);
        }
        // The service's own client at the IdP: by default named after its
        // audience, with the development secret `idp seed` gives it.
        let client_id = get("GUARD_CLIENT_ID").unwrap_or_else(|| audience.to_owned());
        let secret = get("GUARD_CLIENT_SECRET").unwrap_or_else(|| {
            tracing::warn!(
                client_id,
                "GUARD_CLIENT_SECRET is not set: using the development secret"
            );
            format!("{client_id}-dev-secret")
        });
        config = config.with_client_credentials(&client_id, &secret);
        if let Some(life) = secs("GUARD_MAX_TOKEN_LIFETIME_SECS")? {
            config = config.with_max_token_lifetime(life);
        }
        let bound =
            secs("GUARD_REVOCATION_MAX_STALENESS_SECS")?.unwrap_or(config.revocation_max_staleness);
        let policy = match get("GUARD_REVOCATION_STALE_POLICY") {
            Some(policy) => policy
                .parse()
                .map_err(|e: String| ConfigError::new("GUARD_REVOCATION_STALE_POLICY", e))?,
            None => config.stale_policy,
        };
        config = config.with_revocation_staleness(bound, policy);
        if let Some(capacity) = get("GUARD_REVOCATION_CAPACITY") {
            let capacity = capacity.parse().map_err(|_| {
                ConfigError::new(
                    "GUARD_REVOCATION_CAPACITY",
                    format!("not a number: {capacity:?}"),
                )
            })?;
            config = config.with_revocation_capacity(capacity);
        }
        if let Some(capacity) = get("GUARD_CACHE_CAPACITY") {
            let capacity = capacity.parse().map_err(|_| {
                ConfigError::new(
                    "GUARD_CACHE_CAPACITY",
                    format!("not a number: {capacity:?}"),
                )
            })?;
            config = config.with_cache_capacity(capacity);
        }
        if let Some(url) = get("GUARD_PUBLIC_URL") {
            let url = Url::parse(&url)
                .map_err(|e| ConfigError::new("GUARD_PUBLIC_URL", format!("not a URL: {e}")))?;
            config = config.with_public_url(url);
        }
        if let Some(capacity) = get("GUARD_DPOP_REPLAY_CAPACITY") {
            let capacity = capacity.parse().map_err(|_| {
                ConfigError::new(
                    "GUARD_DPOP_REPLAY_CAPACITY",
                    format!("not a number: {capacity:?}"),
                )
            })?;
            config = config.with_dpop_replay_capacity(capacity);
        }
        Ok(config)
    }

    /// The URL callers reach this service at (scheme, host, port and any path
    /// prefix a proxy strips): a DPoP proof's `htu` must be this followed by
    /// the request's path. Unset, it is `http://` + the request's `Host`
    /// header, right when callers reach the service directly over plain HTTP
    /// (set it behind TLS or a proxy: a `Host`-derived URL is the caller's word).
    pub fn with_public_url(mut self, url: Url) -> Self {
        self.public_url = Some(url);
        self
    }

    /// How many DPoP proofs are remembered at once against replay (see
    /// [`crate::dpop::ReplayCache`]); past it new proofs are refused.
    pub fn with_dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity = capacity;
        self
    }

    /// Restricts the accepted signature algorithms. Symmetric algorithms
    /// (HS*) are refused: a resource server never shares a secret with the IdP.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Result<Self, ConfigError> {
        if algorithms.is_empty() {
            return Err(ConfigError::new(
                "GUARD_ALGORITHMS",
                "at least one algorithm is needed",
            ));
        }
        if let Some(alg) = algorithms
            .iter()
            .find(|a| a.family() == AlgorithmFamily::Hmac)
        {
            return Err(ConfigError::new(
                "GUARD_ALGORITHMS",
                format!("{alg:?} is symmetric; only asymmetric algorithms are accepted"),
            ));
        }
        self.algorithms = algorithms.to_vec();
        self.algorithms.dedup();
        Ok(self)
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s, at most 5 min).
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Self, ConfigError> {
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::new("GUARD_LEEWAY_SECS", "at most 300 seconds"));
        }
        self.leeway = leeway;
        Ok(self)
    }

    /// Minimum time between two JWKS refetches caused by an unknown `kid` (default 5 s).
    pub fn with_jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// Uses this JWKS URL instead of the one named by the issuer's discovery document.
    pub fn with_jwks_uri(mut self, uri: Url) -> Self {
        self.jwks_uri = Some(uri);
        self
    }

    /// Bounds applied to the JWKS response's `Cache-Control: max-age`, and the
    /// lifetime used when the response has none (defaults 30 s, 24 h, 5 min).
    pub fn with_jwks_ttl(mut self, min: Duration, max: Duration, default: Duration) -> Self {
        self.jwks_min_ttl = min;
        self.jwks_max_ttl = max.max(min);
        self.jwks_default_ttl = default.clamp(min, self.jwks_max_ttl);
        self
    }

    /// Maximum number of verified tokens remembered (default 10 000).
    pub fn with_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The longest access-token lifetime (`exp - iat`) accepted (default
    /// 1 h; Baton's tokens live 5 min). Longer-lived tokens are refused; a
    /// revocation is remembered this long plus twice the leeway.
    pub fn with_max_token_lifetime(mut self, life: Duration) -> Self {
        self.max_token_lifetime = life;
        self
    }

    /// At most this many revocations remembered at once (default 1 000 000);
    /// see [`revocation`](crate::revocation) for what an overflow does.
    pub fn with_revocation_capacity(mut self, capacity: usize) -> Self {
        self.revocation_capacity = capacity;
        self
    }

    /// The client this service subscribes to the revocation stream as.
    pub fn with_client_credentials(mut self, id: &str, secret: &str) -> Self {
        self.stream_credentials = Some(ClientCredentials {
            id: id.to_owned(),
            secret: secret.to_owned(),
        });
        self
    }

    /// How long the revocation stream may go without confirming this guard
    /// is up to date before it counts as stale (default 30 s), and what is
    /// done with tokens then (default [`StalePolicy::Serve`]).
    pub fn with_revocation_staleness(mut self, bound: Duration, policy: StalePolicy) -> Self {
        self.revocation_max_staleness = bound;
        self.stale_policy = policy;
        self
    }

    /// Subscribes to the IdP's revocation stream at `url` (Server-Sent Events,
    /// see [`subscriber`](crate::subscriber)). [`from_env`](Self::from_env)
    /// turns it on (`<issuer>/revocations/stream`); [`new`](Self::new) leaves it off.
    pub fn with_revocation_stream(mut self, url: Url) -> Self {
        self.revocation_stream = Some(url);
        self
    }

    /// The expected `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// This service's own client at the IdP (`GUARD_CLIENT_ID`/`GUARD_CLIENT_SECRET`):
    /// the revocation stream and token exchange use it.
    pub fn client_credentials(&self) -> Option<&ClientCredentials> {
        self.stream_credentials.as_ref()
    }

    /// This service's resource name, required in `aud`.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The accepted signature algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The tolerated clock skew.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
}

fn parse_algorithms(list: &str) -> Result<Vec<Algorithm>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            name.parse::<Algorithm>().map_err(|_| {
                ConfigError::new("GUARD_ALGORITHMS", format!("unknown algorithm {name:?}"))
            })
        })
        .collect()
}

/// The value of the environment variable `name` parsed as `T`, or `default`
/// when it is unset or blank. A value that does not parse is an error naming
/// the variable (the process refuses to start rather than guess).
pub fn var<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_var(name, std::env::var(name).ok(), default)
}

/// The environment variable `name`, a number of seconds, as a duration:
/// `default` when unset or blank; below `min` is an error naming the variable.
pub fn seconds(
    name: &'static str,
    default: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    at_least(name, var(name, default.as_secs())?, min)
}

fn at_least(name: &'static str, seconds: u64, min: Duration) -> Result<Duration, ConfigError> {
    let duration = Duration::from_secs(seconds);
    if duration < min {
        return Err(ConfigError::new(
            name,
            format!("at least {} seconds", min.as_secs()),
        ));
    }
    Ok(duration)
}

fn parse_var<T>(name: &'static str, value: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => value
            .parse()
            .map_err(|e: T::Err| ConfigError::new(name, format!("cannot parse {value:?}: {e}"))),
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<GuardConfig, ConfigError> {
        GuardConfig::from_lookup("order", |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = from(&[]).unwrap();
        assert_eq!(config.issuer(), "http://localhost:9000");
        assert_eq!(config.audience(), "order");
        assert_eq!(config.algorithms(), &DEFAULT_ALGORITHMS);
        assert_eq!(config.leeway(), Duration::from_secs(30));
        assert_eq!(config.jwks_refetch_interval, Duration::from_secs(5));
        assert!(config.jwks_uri.is_none() && config.public_url.is_none());
        assert_eq!(config.dpop_replay_capacity, 100_000);
        assert_eq!(
            config.revocation_stream.as_ref().map(Url::as_str),
            Some("http://localhost:9000/revocations/stream")
        );
        let off = from(&[("GUARD_REVOCATION_STREAM_URL", "off")]).unwrap();
        assert!(off.revocation_stream.is_none());
        assert!(
            GuardConfig::new("http://idp", "order")
                .revocation_stream
                .is_none()
        );
    }

    #[test]
    fn variables_override_the_defaults() {
        let config = from(&[
            ("GUARD_ISSUER", "https://idp.example"),
            ("GUARD_ALGORITHMS", " ES256 , EdDSA "),
            ("GUARD_LEEWAY_SECS", "10"),
            ("GUARD_JWKS_REFETCH_SECS", "60"),
            ("GUARD_JWKS_URI", "https://idp.example/keys"),
            ("GUARD_CACHE_CAPACITY", "5"),
            ("GUARD_PUBLIC_URL", "https://shop.example/orders-api"),
            ("GUARD_DPOP_REPLAY_CAPACITY", "7"),
            (
                "GUARD_REVOCATION_STREAM_URL",
                "https://idp.example/revocations/stream",
            ),
        ])
        .unwrap();
        assert_eq!(config.issuer(), "https://idp.example");
        assert_eq!(
            config.public_url.as_ref().map(Url::as_str),
            Some("https://shop.example/orders-api")
        );
        assert_eq!(config.dpop_replay_capacity, 7);
        assert_eq!(config.algorithms(), &[Algorithm::ES256, Algorithm::EdDSA]);
        assert_eq!(config.leeway(), Duration::from_secs(10));
        assert_eq!(config.jwks_refetch_interval, Duration::from_secs(60));
        assert_eq!(
            config.jwks_uri.as_ref().map(Url::as_str),
            Some("https://idp.example/keys")
        );
        assert_eq!(config.cache_capacity, 5);
        assert_eq!(
            config.revocation_stream.as_ref().map(Url::as_str),
            Some("https://idp.example/revocations/stream")
        );
    }

    #[test]
    fn symmetric_unknown_or_empty_algorithm_lists_are_refused() {
        for list in ["HS256", "RS256,HS512", "none", "RS256,foo", ","] {
            let err = from(&[("GUARD_ALGORITHMS", list)]).unwrap_err();
            assert_eq!(err.var, "GUARD_ALGORITHMS", "{list}");
        }
    }

    #[test]
    fn bad_numbers_and_urls_are_refused_with_the_variable_named() {
        assert_eq!(
            from(&[("GUARD_LEEWAY_SECS", "ten")]).unwrap_err().var,
            "GUARD_LEEWAY_SECS"
        );
        assert_eq!(
            from(&[("GUARD_LEEWAY_SECS", "3600")]).unwrap_err().var,
            "GUARD_LEEWAY_SECS"
        );
        assert_eq!(
            from(&[("GUARD_JWKS_REFETCH_SECS", "-1")]).unwrap_err().var,
            "GUARD_JWKS_REFETCH_SECS"
        );
        assert_eq!(
            from(&[("GUARD_ISSUER", "not a url")]).unwrap_err().var,
            "GUARD_ISSUER"
        );
        assert_eq!(
            from(&[("GUARD_JWKS_URI", "::")]).unwrap_err().var,
            "GUARD_JWKS_URI"
        );
    }

    #[test]
    fn a_service_variable_unset_or_blank_means_the_default_and_a_value_is_parsed_trimmed() {
        assert_eq!(parse_var("X_LIMIT", None, 7).unwrap(), 7);
        assert_eq!(parse_var("X_LIMIT", Some("  ".into()), 7).unwrap(), 7);
        assert_eq!(parse_var("X_LIMIT", Some(" 42 ".into()), 7).unwrap(), 42);
        let bind: SocketAddr = parse_var(
            "X_BIND",
            Some("0.0.0.0:8083".into()),
            ([127, 0, 0, 1], 1).into(),
        )
        .unwrap();
        assert_eq!(bind.port(), 8083);
    }

    #[test]
    fn a_service_variable_that_does_not_parse_is_an_error_naming_it() {
        let error =
            parse_var("PAYMENT_DECLINE_ABOVE_CENTS", Some("lots".into()), 1_i64).unwrap_err();
        assert_eq!(error.var, "PAYMENT_DECLINE_ABOVE_CENTS");
        assert!(error.reason.contains("\"lots\""), "{}", error.reason);
    }

    #[test]
    fn a_duration_below_its_minimum_is_refused() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            at_least("X_TTL_SECS", 900, minute),
            Ok(Duration::from_secs(900))
        );
        assert_eq!(at_least("X_TTL_SECS", 60, minute), Ok(minute));
        assert_eq!(
            at_least("X_TTL_SECS", 59, minute).unwrap_err().var,
            "X_TTL_SECS"
        );
    }
}
