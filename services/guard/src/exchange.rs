//! Per-hop tokens: the caller's access token traded at the IdP (RFC 8693 token
//! exchange) for one whose `aud` is the next service alone, with a narrowed
//! `scope` and this service named in `act`. A token that leaks at one hop is
//! then good at that one service only.
//!
//! ```ignore
//! let exchanger = Exchanger::from_config(&guard_config)?; // the service's own client
//! let token = exchanger.token(&Subject::of(&principal), "inventory", "inventory:write").await?;
//! inventory.post("reservations", RelayContext::bearer(token, *principal.trace()))...
//! ```
//!
//! One exchanged token is kept per (subject key, audience, scope) until `margin`
//! before it expires; the subject key is the subject token's `jti`. It is not
//! handed out once the subject token (or one it was derived from) is revoked:
//! the caller is refused instead ([`Subject::caller`]). The IdP
//! never lets an exchanged token outlive its subject, so a subject close to
//! its end is re-exchanged (and refused by the IdP once it has ended or been
//! revoked). Exchanges are **single-flight per key**: however many requests
//! need the same token at once, one of them asks the IdP and the others wait
//! for its answer. A failed exchange is not kept. The cache is bounded and
//! swept as it grows (see [`cache`]); a hit takes one short lock and
//! allocates nothing.
//!
//! The IdP decides who may exchange toward which audience and scope (the
//! client's registered resources and scopes); this module only asks.

mod cache;

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tracing::Instrument;
use url::Url;

use crate::claims::unix_now;
use crate::config::ClientCredentials;
use crate::relay::RelayError;
use crate::{GuardConfig, Principal};
pub use cache::SWEEP_FLOOR;
use cache::{Cache, Cached, Key, Lookup};
use platform::trace::{TRACEPARENT, TraceContext};

/// The RFC 8693 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of access tokens, given and requested.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// An exchanged token is exchanged again this long before it expires, so it
/// never reaches the next service expired.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(30);
/// Exchanged tokens kept at most (see [`Exchanger::with_capacity`]).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How a relayed call gets its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// A token exchanged for the next service alone (the default).
    #[default]
    Exchange,
    /// The caller's own token, unchanged: no IdP round trip, but it is good
    /// at every service in its `aud`.
    Plain,
}

impl std::str::FromStr for RelayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "exchange" => Ok(Self::Exchange),
            "plain" => Ok(Self::Plain),
            _ => Err("expected exchange or plain".into()),
        }
    }
}

/// The token to exchange and the key its exchanged tokens are kept under.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Identifies the subject token (its `jti`, or a session id).
    pub key: &'a str,
    /// The subject token itself. Never logged.
    pub token: &'a str,
    /// The validated caller whose token this is, if it is one: once that
    /// token or one it was derived from is revoked, its exchanged tokens are
    /// no longer handed out, cached or not.
    pub caller: Option<&'a Principal>,
}

impl<'a> Subject<'a> {
    /// The caller's validated token, keyed by its `jti`.
    pub fn of(principal: &'a Principal) -> Self {
        Self {
            key: principal.jti(),
            token: principal.token(),
            caller: Some(principal),
        }
    }
}

/// Why no exchanged token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The IdP refused the subject token (expired, revoked, not for this client).
    #[error("the IdP refused to exchange the token: {0}")]
    Refused(String),
    /// The IdP refused what was asked (audience or scope not allowed to this client).
    #[error("the IdP refused the exchange's target: {0}")]
    NotAllowed(String),
    /// The IdP could not be asked, or answered with a server error.
    #[error("the IdP is unavailable: {0}")]
    Unavailable(String),
}

impl From<ExchangeError> for RelayError {
    /// A refused subject answers 401 (the caller's token is no longer good);
    /// a refused target 403; an unreachable IdP 503.
    fn from(e: ExchangeError) -> Self {
        let service: Arc<str> = "idp".into();
        match e {
            ExchangeError::Refused(d) => RelayError::Unauthorized {
                service,
                description: Some(d),
            },
            ExchangeError::NotAllowed(d) => RelayError::Forbidden {
                service,
                description: Some(d),
            },
            ExchangeError::Unavailable(_) => RelayError::Unavailable {
                service,
                retry_after: None,
            },
        }
    }
}

/// Exchanges tokens with this service's own client credentials, caching
/// them. Cheap to clone; make one per process.
#[derive(Clone)]
pub struct Exchanger {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    credentials: ClientCredentials,
    margin: Duration,
    cache: Cache,
    exchanges: AtomicU64,
}

impl std::fmt::Debug for Exchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanger")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("client_id", &self.inner.credentials.id)
            .finish_non_exhaustive()
    }
}

impl Exchanger {
    /// Exchanges at `endpoint` (the IdP's token endpoint) as `credentials`.
    pub fn new(endpoint: Url, credentials: ClientCredentials) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                credentials,
                margin: DEFAULT_MARGIN,
                cache: Cache::new(DEFAULT_CAPACITY),
                exchanges: AtomicU64::new(0),
            }),
        })
    }

    /// At the issuer's `/token`, as the guard's own client
    /// (`GUARD_CLIENT_ID`/`GUARD_CLIENT_SECRET`); `None` without credentials.
    pub fn from_config(config: &GuardConfig) -> Option<Result<Self, reqwest::Error>> {
        let credentials = config.client_credentials()?.clone();
        let endpoint = Url::parse(&format!("{}/token", config.issuer().trim_end_matches('/')));
        match endpoint {
            Ok(endpoint) => Some(Self::new(endpoint, credentials)),
            Err(_) => None,
        }
    }

    /// Renews tokens `margin` before they expire (default [`DEFAULT_MARGIN`]).
    /// Call before sharing the exchanger.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.margin = margin;
        }
        self
    }

    /// Keeps at most `capacity` tokens (default [`DEFAULT_CAPACITY`]).
    /// Call before sharing the exchanger.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.cache = Cache::new(capacity);
        }
        self
    }

    /// How many exchanged tokens (or exchanges under way) are kept now;
    /// never more than the capacity.
    pub fn cached(&self) -> usize {
        self.inner.cache.len()
    }

    /// The most tokens kept.
    pub fn capacity(&self) -> usize {
        self.inner.cache.capacity()
    }

    /// How many exchanges were made (cache misses that reached the IdP).
    pub fn exchanges(&self) -> u64 {
        self.inner.exchanges.load(Ordering::Relaxed)
    }

    /// A token for `audience` with `scope` on behalf of `subject`: the cached
    /// one while it has more than the margin to live, else a new exchange
    /// (one at a time per subject, audience and scope).
    pub async fn token(
        &self,
        subject: &Subject<'_>,
        audience: &str,
        scope: &str,
    ) -> Result<Arc<str>, ExchangeError> {
        if subject.caller.is_some_and(Principal::is_revoked) {
            return Err(ExchangeError::Refused(
                "the subject token has been revoked".into(),
            ));
        }
        let key = Key {
            subject: subject.key,
            audience,
            scope,
        };
        let cache = &self.inner.cache;
        let flight = match cache.lookup(&key, unix_now()) {
            Lookup::Fresh(token) => return Ok(token),
            Lookup::Miss(flight) => flight,
        };
        let _turn = flight.lock().await;
        if let Some(token) = cache.fresh(&key, unix_now()) {
            return Ok(token);
        }
        let fresh = self.exchange(subject.token, audience, scope).await?;
        let token = fresh.token.clone();
        cache.store(&key, fresh);
        Ok(token)
    }

    async fn exchange(
        &self,
        subject: &str,
        audience: &str,
        scope: &str,
    ) -> Result<Cached, ExchangeError> {
        self.inner.exchanges.fetch_add(1, Ordering::Relaxed);
        let mut form = vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("audience", audience),
        ];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let credentials = &self.inner.credentials;
        let span = tracing::info_span!("token_exchange", audience);
        let mut request = self.inner.http.post(self.inner.endpoint.clone());
        if let Some(trace) = span.in_scope(TraceContext::current) {
            request = request.header(TRACEPARENT, trace.header_value());
        }
        let response = crate::client_auth::basic_auth(
            request,
            &credentials.id,
            credentials.secret.expose_secret(),
        )
        .form(&form)
        .send()
        .instrument(span)
        .await
        .map_err(|e| ExchangeError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(ExchangeError::Unavailable(format!(
                "token endpoint: {status}"
            )));
        }
        if !status.is_success() {
            #[derive(Deserialize)]
            struct Refusal {
                error: Option<String>,
                error_description: Option<String>,
            }
            let refusal = response.json::<Refusal>().await.ok();
            let error = refusal.as_ref().and_then(|r| r.error.clone());
            let description = refusal
                .and_then(|r| r.error_description)
                .unwrap_or_else(|| status.to_string());
            tracing::warn!(audience, error = ?error, "token exchange refused");
            return Err(match error.as_deref() {
                Some("invalid_target" | "invalid_scope" | "unauthorized_client") => {
                    ExchangeError::NotAllowed(description)
                }
                _ => ExchangeError::Refused(description),
            });
        }
        #[derive(Deserialize)]
        struct Issued {
            access_token: String,
            expires_in: i64,
        }
        let issued: Issued = response
            .json()
            .await
            .map_err(|_| ExchangeError::Unavailable("token endpoint sent no token".into()))?;
        let margin = i64::try_from(self.inner.margin.as_secs()).unwrap_or(i64::MAX);
        Ok(Cached {
            token: issued.access_token.into(),
            renew_at: unix_now()
                .saturating_add(issued.expires_in)
                .saturating_sub(margin),
        })
    }
}
