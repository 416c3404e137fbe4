//! [`Guard`]: validates bearer tokens locally and turns them into [`Principal`]s.

use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use axum::Extension;
use http::request::Parts;
use http::{HeaderMap, Method, Uri, header};
use url::Url;

use crate::cache::{TokenKey, VerifiedCache};
use crate::config::{GuardConfig, MAX_TOKEN_BYTES, StalePolicy};
use crate::dpop::{self, ProofError, ReplayCache};
use crate::error::{AuthError, TokenError};
use crate::jwks::{Jwks, JwksStatus, VerifyKey};
use crate::principal::{Principal, Verified};
use crate::revocation::{Denylist, Revocation};
use crate::subscriber::{self, RevocationStatus};
use crate::validator::Validator;
use platform::trace::TraceContext;

/// Validates access tokens for one service (one audience).
///
/// Cheap to clone (an `Arc`); make one per process and put it in the state.
/// Creating it never waits for the IdP: keys are fetched in the background
/// and on demand, and retried. A process that checks several
/// audiences (the gateway) makes one and derives the others with
/// [`for_audience`](Self::for_audience): one key cache, one revocation stream.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

/// The `Arc`ed members are shared by the guards of [`Guard::for_audience`].
struct Inner {
    config: GuardConfig,
    jwks: Arc<Jwks>,
    validator: Validator,
    /// Keyed by audience and token (see [`Guard::cached`]).
    verified: Arc<VerifiedCache>,
    denylist: Arc<Denylist>,
    /// DPoP proofs seen (shared with the guards of [`Guard::for_audience`]).
    replay: Arc<ReplayCache>,
    started: Arc<Once>,
    /// Present when the revocation stream is configured.
    stream: Option<subscriber::Status>,
}

/// Why a [`Guard`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client that fetches the issuer's keys (bounded, no redirects)
    /// cannot be built, e.g. no TLS trust roots: never replaced by a default one.
    #[error("cannot build the HTTP client for the issuer's keys: {0}")]
    HttpClient(#[from] reqwest::Error),
}

impl Guard {
    /// A guard for `config`, as [`Guard::try_new`].
    ///
    /// # Panics
    /// When its HTTP client cannot be built (as `reqwest::Client::new`);
    /// services start with [`Guard::try_new`] and report the error.
    pub fn new(config: GuardConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A guard for `config`. Inside a Tokio runtime the first key fetch starts
    /// at once; otherwise at the first validation. Fails only when its HTTP
    /// client cannot be built.
    pub fn try_new(config: GuardConfig) -> Result<Self, BuildError> {
        crate::monitoring::describe();
        let guard = Self {
            inner: Arc::new(Inner {
                jwks: Arc::new(Jwks::new(&config)?),
                validator: Validator::new(&config),
                verified: Arc::new(VerifiedCache::new(config.cache_capacity)),
                denylist: Arc::new(Denylist::new(
                    config.max_token_lifetime,
                    config.leeway,
                    config.revocation_capacity,
                )),
                replay: Arc::new(ReplayCache::new(config.dpop_replay_capacity, config.leeway)),
                stream: config.revocation_stream.as_ref().map(|url| {
                    Arc::new(Mutex::new(RevocationStatus {
                        url: url.to_string(),
                        ..Default::default()
                    }))
                }),
                config,
                started: Arc::new(Once::new()),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            guard.start();
        }
        Ok(guard)
    }

    /// A guard for another audience sharing this one's key cache, revocation
    /// denylist and stream subscription, and verified-token cache — whose
    /// entries are keyed by audience, so a token validated for one audience
    /// is never taken from the cache for another. Every other setting is this
    /// guard's.
    pub fn for_audience(&self, audience: &str) -> Guard {
        let inner = &*self.inner;
        let mut config = inner.config.clone();
        config.audience = audience.to_owned();
        Guard {
            inner: Arc::new(Inner {
                jwks: inner.jwks.clone(),
                validator: Validator::new(&config),
                verified: inner.verified.clone(),
                denylist: inner.denylist.clone(),
                replay: inner.replay.clone(),
                stream: inner.stream.clone(),
                config,
                started: inner.started.clone(),
            }),
        }
    }

    /// The published key `kid` (refetched, rate-limited, when unknown).
    pub(crate) async fn signing_key(&self, kid: &str) -> Result<Arc<VerifyKey>, AuthError> {
        self.start();
        self.inner.jwks.key(kid).await
    }

    /// The verified-token cache's key of `token` for this guard's audience,
    /// and the verdict cached under it for exactly this token, if any.
    fn cached(&self, token: &str) -> (TokenKey, Option<Arc<Verified>>) {
        let (verified, audience) = (&self.inner.verified, &*self.inner.config.audience);
        let key = verified.key(audience, token);
        (key, verified.get(key, audience, token))
    }

    /// Starts the background key refresher (once).
    fn start(&self) {
        self.inner.started.call_once(|| {
            tokio::spawn(Jwks::keep_fresh(Arc::downgrade(&self.inner.jwks)));
            if let (Some(url), Some(status)) =
                (&self.inner.config.revocation_stream, &self.inner.stream)
            {
                // Holds the guards' denylist and cache weakly: the subscriber
                // stops when every guard sharing them is dropped.
                let denylist: Weak<Denylist> = Arc::downgrade(&self.inner.denylist);
                let verified: Weak<VerifiedCache> = Arc::downgrade(&self.inner.verified);
                let apply = move |revocation| match (denylist.upgrade(), verified.upgrade()) {
                    (Some(denylist), Some(verified)) => {
                        revoke(&denylist, &verified, revocation);
                        true
                    }
                    _ => false,
                };
                tokio::spawn(subscriber::run(
                    url.clone(),
                    self.inner.config.stream_credentials.clone(),
                    status.clone(),
                    apply,
                ));
                tokio::spawn(subscriber::watch_staleness(
                    Arc::downgrade(status),
                    self.inner.config.revocation_max_staleness,
                ));
            }
        });
    }

    /// The settings this guard enforces.
    pub fn config(&self) -> &GuardConfig {
        &self.inner.config
    }

    /// Validates `token` (the bare JWT, without `Bearer `) and returns its
    /// principal, with a new trace context. A DPoP-bound token is refused:
    /// without the request there is no proof (use [`authenticate`](Self::authenticate)).
    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        self.validate_in(token, TraceContext::new(), None).await
    }

    /// Reads the access token of a request (only the `Authorization` header:
    /// never a query parameter, never `X-User-*` headers), validates it, and
    /// returns the principal with the request's trace context: the
    /// [`TraceContext`] already in the request's extensions when `request` has
    /// them (its `Parts`) and one was put there (by
    /// [`trace::attach`](platform::trace::attach) or an extractor), else its
    /// `traceparent`, else a new trace.
    ///
    /// `Authorization: Bearer` carries unbound tokens only; a DPoP-bound token
    /// (`cnf.jkt`) must come as `Authorization: DPoP` with a `DPoP` proof of
    /// this request signed by that key (RFC 9449 §7, see [`crate::dpop`]).
    pub async fn authenticate(
        &self,
        request: &(impl Incoming + Sync),
    ) -> Result<Principal, AuthError> {
        let headers = request.headers();
        let (scheme, token) = access_token(headers).inspect_err(count_refusal)?;
        let trace = request
            .trace()
            .unwrap_or_else(|| TraceContext::from_headers(headers));
        let dpop = (scheme == Scheme::Dpop).then_some(request);
        self.validate_in(token, trace, dpop.map(|r| r as &(dyn Incoming + Sync)))
            .await
    }

    async fn validate_in(
        &self,
        token: &str,
        trace: TraceContext,
        dpop: Option<&(dyn Incoming + Sync)>,
    ) -> Result<Principal, AuthError> {
        let result = match self.check(token, trace).await {
            Ok(principal) => self
                .check_binding(&principal, token, dpop)
                .map(|()| principal),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            count_refusal(e);
            // The reason only: never the token.
            tracing::debug!(reason = %e, trace_id = %trace.trace_id(), "access token refused");
        }
        result
    }

    /// RFC 9449 §7: a bound token needs the DPoP scheme and a valid proof of
    /// its key for this request; the DPoP scheme needs a bound token.
    #[cfg_attr(
        feature = "bench-insecure-no-auth",
        allow(unreachable_code, unused_variables)
    )]
    fn check_binding(
        &self,
        principal: &Principal,
        token: &str,
        dpop: Option<&(dyn Incoming + Sync)>,
    ) -> Result<(), AuthError> {
        #[cfg(feature = "bench-insecure-no-auth")]
        return Ok(());
        let (jkt, request) = match (principal.claims().jkt(), dpop) {
            (None, None) => return Ok(()),
            (Some(_), None) => return Err(TokenError::BoundTokenAsBearer.into()),
            (None, Some(_)) => return Err(TokenError::NotBound.into()),
            (Some(jkt), Some(request)) => (jkt, request),
        };
        let proof = dpop::header(request.headers())?.ok_or(ProofError::Missing)?;
        let (method, uri) = request.target().ok_or(ProofError::Url)?;
        let url = self.public_url(request.headers(), uri)?;
        let proof = dpop::verify(
            proof,
            &dpop::Expected {
                method: method.as_str(),
                url: &url,
                access_token: Some(token),
                leeway_secs: self.inner.config.leeway.as_secs() as i64,
            },
        )?;
        if proof.jkt != jkt {
            return Err(ProofError::WrongKey.into());
        }
        Ok(self.inner.replay.first_use(&proof)?)
    }

    /// The URL the request was sent to, as the caller names it in `htu`:
    /// `GUARD_PUBLIC_URL` (else `http://` + `Host`) followed by the path.
    fn public_url(&self, headers: &HeaderMap, uri: &Uri) -> Result<Url, ProofError> {
        let base = match &self.inner.config.public_url {
            Some(base) => base.as_str().trim_end_matches('/').to_owned(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| uri.authority().map(|a| a.as_str()))
                    .ok_or(ProofError::Url)?;
                format!("http://{host}")
            }
        };
        Url::parse(&format!("{base}{}", uri.path())).map_err(|_| ProofError::Url)
    }

    #[cfg_attr(feature = "bench-insecure-no-auth", allow(unreachable_code))]
    async fn check(&self, token: &str, trace: TraceContext) -> Result<Principal, AuthError> {
        #[cfg(feature = "bench-insecure-no-auth")]
        return crate::insecure::principal(token, trace);
        self.start();
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(MAX_TOKEN_BYTES).into());
        }
        if self.refuses_for_staleness() {
            return Err(TokenError::RevocationsStale.into());
        }
        let (key, hit) = self.cached(token);
        if hit.is_some() {
            crate::monitoring::series::CACHE_HITS.increment(1);
        } else {
            crate::monitoring::series::CACHE_MISSES.increment(1);
        }
        if let Some(verified) = hit {
            if inner.denylist.is_revoked(&verified.claims) {
                inner.verified.forget(key);
                return Err(TokenError::Revoked.into());
            }
            if inner.jwks.trusts(&verified.kid) {
                return Ok(Principal::new(
                    verified,
                    Some(inner.denylist.clone()),
                    trace,
                ));
            }
            // Its key was withdrawn from the JWKS: judge the token afresh.
            inner.verified.forget(key);
        }
        let header = inner.validator.check_header(token)?;
        let signing_key = inner.jwks.key(&header.kid).await?;
        let claims = inner.validator.verify(token, header.alg, &signing_key)?;
        if inner.denylist.is_revoked(&claims) {
            return Err(TokenError::Revoked.into());
        }
        let verified = Arc::new(Verified {
            claims,
            token: Arc::from(token),
            kid: header.kid.into_boxed_str(),
        });
        inner
            .verified
            .insert(key, &inner.config.audience, verified.clone());
        Ok(Principal::new(
            verified,
            Some(inner.denylist.clone()),
            trace,
        ))
    }

    /// The state of the key cache, for `/readyz`.
    pub fn status(&self) -> JwksStatus {
        self.inner.jwks.status()
    }

    /// The state of the revocation stream subscriber, when configured.
    pub fn revocation_status(&self) -> Option<RevocationStatus> {
        let config = &self.inner.config;
        self.inner.stream.as_ref().map(|s| {
            let mut status = s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .at_this_moment(config.revocation_max_staleness, config.stale_policy);
            status.denylist = self.inner.denylist.status();
            status
        })
    }

    /// Under [`StalePolicy::Refuse`]: whether the revocation stream has not
    /// confirmed, within the bound, that this guard has every revocation.
    fn refuses_for_staleness(&self) -> bool {
        let config = &self.inner.config;
        config.stale_policy == StalePolicy::Refuse
            && self.inner.stream.as_ref().is_some_and(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .caught_up_at
                    .is_none_or(|t| t.elapsed() > config.revocation_max_staleness)
            })
    }

    /// Waits until signing keys are loaded or `timeout` passes; returns whether
    /// keys are available. For start-up ordering and tests — validation does
    /// not need it.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.start();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.status().ready {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fetches the JWKS now (also used by the revocation subscriber when the
    /// IdP announces a rotation). Errors are also reported by [`status`](Self::status).
    pub async fn refresh_keys(&self) -> Result<(), String> {
        self.inner
            .jwks
            .refresh()
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Drops `token` from the verified-token cache (it will be fully
    /// validated again next time). Use [`revoke`](Self::revoke) to refuse it.
    pub fn forget(&self, token: &str) {
        if let (key, Some(_)) = self.cached(token) {
            self.inner.verified.forget(key);
        }
    }

    /// Refuses every token matching `revocation` from now on, cached or not.
    pub fn revoke(&self, revocation: Revocation) {
        revoke(&self.inner.denylist, &self.inner.verified, revocation);
    }

    /// Whether `token` is in the verified-token cache (for tests and metrics).
    pub fn is_cached(&self, token: &str) -> bool {
        self.cached(token).1.is_some()
    }

    /// A layer that makes this guard available to the route guards
    /// ([`require_role`](crate::require_role), …): `router.layer(guard.layer())`.
    pub fn layer(&self) -> Extension<Guard> {
        Extension(self.clone())
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .finish_non_exhaustive()
    }
}

/// `guard_token_refusals_total{reason}`.
fn count_refusal(e: &AuthError) {
    metrics::counter!("guard_token_refusals_total", "reason" => e.reason()).increment(1);
}

fn revoke(denylist: &Denylist, verified: &VerifiedCache, revocation: Revocation) {
    denylist.add(&revocation);
    verified.forget_matching(revocation);
}

/// What [`Guard::authenticate`] reads of a request: its headers, the
/// [`TraceContext`] in its extensions when it has extensions, and its method
/// and URI when it has them (a DPoP proof names them; headers alone cannot
/// carry a DPoP-bound token).
pub trait Incoming {
    fn headers(&self) -> &HeaderMap;
    /// The trace context stored with the request, if any.
    fn trace(&self) -> Option<TraceContext> {
        None
    }
    /// The request's method and URI, if known.
    fn target(&self) -> Option<(&Method, &Uri)> {
        None
    }
}

impl Incoming for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }
}

impl Incoming for Parts {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn trace(&self) -> Option<TraceContext> {
        self.extensions.get().copied()
    }
    fn target(&self) -> Option<(&Method, &Uri)> {
        Some((&self.method, &self.uri))
    }
}

/// The authentication scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The scheme and token of the single `Authorization: Bearer|DPoP <token>` header.
fn access_token(headers: &HeaderMap) -> Result<(Scheme, &str), AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        // Another scheme (Basic, …) carries no access token (RFC 6750 §3.1).
        return Err(AuthError::MissingToken);
    };
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("empty access token"));
    }
    Ok((scheme, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h.insert("x-user-id", HeaderValue::from_static("admin"));
        h
    }

    #[test]
    fn the_access_token_is_read_from_the_authorization_header_only() {
        assert_eq!(
            access_token(&headers(&["Bearer abc"])),
            Ok((Scheme::Bearer, "abc"))
        );
        assert_eq!(
            access_token(&headers(&["bearer  abc "])),
            Ok((Scheme::Bearer, "abc"))
        );
        assert_eq!(
            access_token(&headers(&["DPoP abc"])),
            Ok((Scheme::Dpop, "abc"))
        );
        assert_eq!(access_token(&headers(&[])), Err(AuthError::MissingToken));
        assert_eq!(
            access_token(&headers(&["Basic dTpw"])),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            access_token(&headers(&["Bearer"])),
            Err(AuthError::InvalidRequest("empty access token"))
        );
        assert_eq!(
            access_token(&headers(&["Bearer a", "Bearer b"])),
            Err(AuthError::InvalidRequest(
                "more than one Authorization header"
            ))
        );
    }
}
