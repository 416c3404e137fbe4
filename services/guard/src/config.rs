//! Settings: the validation settings of a [`Guard`](crate::Guard) — who issues
//! tokens, who we are, which algorithms we accept — built in code
//! ([`GuardConfig::new`] and the `with_*` methods) or from the `GUARD_*`
//! variables ([`GuardArgs`], a clap group every part flattens into its `Config`).
//!
//! Every validation rule is on by default; the knobs can only narrow what is
//! accepted (a shorter skew, fewer algorithms) or tune caching. There is no
//! switch that turns a check off.

use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use platform::ConfigError;
use secrecy::SecretString;
use url::Url;

mod args;

pub use args::GuardArgs;

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
/// Build it with [`GuardArgs::resolve`] in Baton's parts (or
/// [`GuardConfig::from_env`] in a service of your own) and [`GuardConfig::new`]
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
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: SecretString,
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
    /// for the table); `audience` is the service's own resource name. A value
    /// clap cannot use is an error naming its variable.
    pub fn from_env(audience: &str) -> Result<Self, ConfigError> {
        let only: args::GuardOnly =
            platform::config::from_env().map_err(|e| ConfigError::new("GUARD_*", e.to_string()))?;
        only.guard.resolve(audience)
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
            secret: secret.into(),
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

#[cfg(test)]
mod tests {
    use platform::config::{Refused, from_vars};

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<GuardConfig, Refused> {
        let only: args::GuardOnly = from_vars(vars)?;
        Ok(only.guard.resolve("order")?)
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
}
