//! [`GuardArgs`]: the `GUARD_*` variables as a clap group, flattened into
//! the `Config` of every part that validates tokens (gateway, order,
//! payment, inventory), and [`GuardArgs::resolve`], which turns them into a
//! [`GuardConfig`] once the part's own defaults (audience, client, public
//! URL) are known.

use std::time::Duration;

use clap::{Args, Parser};
use jsonwebtoken::Algorithm;
use platform::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{DEFAULT_ISSUER, GuardConfig, MAX_LEEWAY, StalePolicy};

/// Token validation (`GUARD_*`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Token validation (guard)")]
pub struct GuardArgs {
    /// Expected `iss`; discovery at `<issuer>/.well-known/openid-configuration`.
    #[arg(id = "guard-issuer", long = "guard-issuer", env = "GUARD_ISSUER", default_value = DEFAULT_ISSUER, value_parser = url_text)]
    pub issuer: String,
    /// Accepted algorithms, comma-separated (asymmetric only).
    #[arg(
        id = "guard-algorithms",
        long = "guard-algorithms",
        env = "GUARD_ALGORITHMS",
        default_value = "RS256,ES256,EdDSA"
    )]
    pub algorithms: String,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds (at most 300).
    #[arg(id = "guard-leeway-secs", long = "guard-leeway-secs", env = "GUARD_LEEWAY_SECS", default_value = "30",
          value_parser = clap::value_parser!(u64).range(..=MAX_LEEWAY.as_secs()))]
    pub leeway_secs: u64,
    /// Minimum seconds between JWKS refetches caused by unknown `kid`s.
    #[arg(
        id = "guard-jwks-refetch-secs",
        long = "guard-jwks-refetch-secs",
        env = "GUARD_JWKS_REFETCH_SECS",
        default_value = "5"
    )]
    pub jwks_refetch_secs: u64,
    /// JWKS URL override [default: from discovery].
    #[arg(id = "guard-jwks-uri", long = "guard-jwks-uri", env = "GUARD_JWKS_URI")]
    pub jwks_uri: Option<Url>,
    /// Verified tokens kept in memory.
    #[arg(
        id = "guard-cache-capacity",
        long = "guard-cache-capacity",
        env = "GUARD_CACHE_CAPACITY",
        default_value = "10000"
    )]
    pub cache_capacity: u64,
    /// The IdP's revocation stream (server-sent events); `off` disables it
    /// [default: `<issuer>/revocations/stream`].
    #[arg(
        id = "guard-revocation-stream-url",
        long = "guard-revocation-stream-url",
        env = "GUARD_REVOCATION_STREAM_URL"
    )]
    pub revocation_stream_url: Option<String>,
    /// The client the service reads the revocation stream and exchanges
    /// tokens as [default: the service's audience; the gateway: its client].
    #[arg(
        id = "guard-client-id",
        long = "guard-client-id",
        env = "GUARD_CLIENT_ID"
    )]
    pub client_id: Option<String>,
    /// Its secret [default: `<client id>-dev-secret`, with a warning; the
    /// gateway: its client secret].
    #[arg(id = "guard-client-secret", long = "guard-client-secret", env = "GUARD_CLIENT_SECRET", value_parser = platform::config::secret)]
    pub client_secret: Option<SecretString>,
    /// Seconds the stream may go without confirming the service is up to
    /// date before it counts as stale.
    #[arg(
        id = "guard-revocation-max-staleness-secs",
        long = "guard-revocation-max-staleness-secs",
        env = "GUARD_REVOCATION_MAX_STALENESS_SECS",
        default_value = "30"
    )]
    pub revocation_max_staleness_secs: u64,
    /// `serve`: keep validating while stale; `refuse`: refuse every token
    /// and report not ready.
    #[arg(
        id = "guard-revocation-stale-policy",
        long = "guard-revocation-stale-policy",
        env = "GUARD_REVOCATION_STALE_POLICY",
        default_value = "serve"
    )]
    pub revocation_stale_policy: StalePolicy,
    /// Longest access-token life (`exp - iat`) accepted, in seconds.
    #[arg(
        id = "guard-max-token-lifetime-secs",
        long = "guard-max-token-lifetime-secs",
        env = "GUARD_MAX_TOKEN_LIFETIME_SECS",
        default_value = "3600"
    )]
    pub max_token_lifetime_secs: u64,
    /// Revocations remembered at once.
    #[arg(
        id = "guard-revocation-capacity",
        long = "guard-revocation-capacity",
        env = "GUARD_REVOCATION_CAPACITY",
        default_value = "1000000"
    )]
    pub revocation_capacity: usize,
    /// The URL callers reach the service at: a DPoP proof's `htu` is it
    /// followed by the path [default: `http://` + the request's `Host`].
    #[arg(
        id = "guard-public-url",
        long = "guard-public-url",
        env = "GUARD_PUBLIC_URL"
    )]
    pub public_url: Option<Url>,
    /// DPoP proofs remembered against replay at once.
    #[arg(
        id = "guard-dpop-replay-capacity",
        long = "guard-dpop-replay-capacity",
        env = "GUARD_DPOP_REPLAY_CAPACITY",
        default_value = "100000"
    )]
    pub dpop_replay_capacity: usize,
}

/// The `GUARD_*` variables alone, for [`GuardConfig::from_env`].
#[derive(Debug, Parser)]
#[command(name = "guard")]
pub(super) struct GuardOnly {
    #[command(flatten)]
    pub(super) guard: GuardArgs,
}

impl GuardArgs {
    /// The settings for tokens meant for `audience` (the service's resource
    /// name, also its client id unless `GUARD_CLIENT_ID` says otherwise).
    pub fn resolve(&self, audience: &str) -> Result<GuardConfig, ConfigError> {
        self.resolve_as(audience, None)
    }

    /// [`resolve`](Self::resolve) for a part that is already an OIDC client
    /// (the gateway): `client` is the id and secret used when `GUARD_CLIENT_ID`
    /// and `GUARD_CLIENT_SECRET` are unset.
    pub fn resolve_as(
        &self,
        audience: &str,
        client: Option<(&str, &SecretString)>,
    ) -> Result<GuardConfig, ConfigError> {
        let mut config = GuardConfig::new(&self.issuer, audience)
            .with_algorithms(&parse_algorithms(&self.algorithms)?)?
            .with_leeway(Duration::from_secs(self.leeway_secs))?
            .with_jwks_refetch_interval(Duration::from_secs(self.jwks_refetch_secs))
            .with_cache_capacity(self.cache_capacity)
            .with_max_token_lifetime(Duration::from_secs(self.max_token_lifetime_secs))
            .with_revocation_staleness(
                Duration::from_secs(self.revocation_max_staleness_secs),
                self.revocation_stale_policy,
            )
            .with_revocation_capacity(self.revocation_capacity)
            .with_dpop_replay_capacity(self.dpop_replay_capacity);
        if let Some(uri) = &self.jwks_uri {
            config = config.with_jwks_uri(uri.clone());
        }
        if let Some(url) = &self.public_url {
            config = config.with_public_url(url.clone());
        }
        // On by default in services: the IdP's stream at `<issuer>/revocations/stream`.
        let stream = self
            .revocation_stream_url
            .clone()
            .unwrap_or_else(|| format!("{}/revocations/stream", self.issuer.trim_end_matches('/')));
        if !stream.eq_ignore_ascii_case("off") {
            let url = Url::parse(&stream).map_err(|e| {
                ConfigError::new("GUARD_REVOCATION_STREAM_URL", format!("not a URL: {e}"))
            })?;
            config = config.with_revocation_stream(url);
        }
        let (default_id, default_secret) = match client {
            Some((id, secret)) => (id.to_owned(), Some(secret)),
            None => (audience.to_owned(), None),
        };
        let client_id = self.client_id.clone().unwrap_or(default_id);
        let secret = match (self.client_secret.as_ref(), default_secret) {
            (Some(secret), _) | (None, Some(secret)) => secret.expose_secret().to_owned(),
            (None, None) => {
                // The development secret `idp seed` gives the service's client.
                tracing::warn!(
                    client_id,
                    "GUARD_CLIENT_SECRET is not set: using the development secret"
                );
                format!("{client_id}-dev-secret")
            }
        };
        Ok(config.with_client_credentials(&client_id, &secret))
    }
}

/// A URL kept as written (the issuer is compared as a string).
fn url_text(text: &str) -> Result<String, url::ParseError> {
    Url::parse(text).map(|_| text.to_owned())
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
