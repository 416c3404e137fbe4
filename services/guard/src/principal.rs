//! The authenticated caller of a request.

use std::sync::Arc;

use crate::authentication::AuthenticationRequirement;
use crate::claims::{AccessClaims, Actor};
use crate::error::AuthError;
use crate::requirements::Requirement;
use crate::revocation::Denylist;
use platform::trace::TraceContext;

/// Who is calling: the validated claims of the bearer token, the token itself
/// (to relay it) and the request's trace context.
///
/// Cheap to clone (an `Arc` and a few bytes), `Send + 'static`: pass it to
/// spawned tasks to keep acting for the same caller.
///
/// As an axum extractor (`extract`) it validates the `Authorization: Bearer`
/// token with the [`Guard`](crate::Guard) from the state (`Guard: FromRef<S>`) and refuses the request with
/// [`AuthError`] otherwise. Identity headers such as `X-User-Id` are never read.
#[derive(Clone)]
pub struct Principal {
    verified: Arc<Verified>,
    /// The denylist of the guard that validated it, to ask again later.
    denylist: Option<Arc<Denylist>>,
    trace: TraceContext,
}

/// A verified token: what the verified-token cache stores.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: AccessClaims,
    pub(crate) token: Arc<str>,
    /// The key that verified it: a cached verdict ends when the key leaves the JWKS.
    pub(crate) kid: Box<str>,
}

impl Principal {
    pub(crate) fn new(
        verified: Arc<Verified>,
        denylist: Option<Arc<Denylist>>,
        trace: TraceContext,
    ) -> Self {
        Self {
            verified,
            denylist,
            trace,
        }
    }

    /// Whether the token has been revoked since it was validated — its own
    /// `jti`, a token it was derived from, its session or its subject — by
    /// the revocations this service has received. What is derived from the
    /// token later (an exchanged token, [`Subject`](crate::Subject)) asks this
    /// before each use.
    pub fn is_revoked(&self) -> bool {
        self.denylist
            .as_ref()
            .is_some_and(|d| d.is_revoked(&self.verified.claims))
    }

    /// The user id (a UUID), or the client id for `client_credentials` tokens.
    pub fn sub(&self) -> &str {
        &self.verified.claims.sub
    }

    /// The OAuth client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.verified.claims.client_id
    }

    /// The `roles` claim.
    pub fn roles(&self) -> &[String] {
        &self.verified.claims.roles
    }

    /// The scopes of the `scope` claim.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.verified.claims.scopes()
    }

    /// The IdP session (absent for `client_credentials`).
    pub fn sid(&self) -> Option<&str> {
        self.verified.claims.sid.as_deref()
    }

    /// The token id; log this rather than the token.
    pub fn jti(&self) -> &str {
        &self.verified.claims.jti
    }

    /// The acting party of an exchanged token (RFC 8693).
    pub fn act(&self) -> Option<&Actor> {
        self.verified.claims.act.as_ref()
    }

    /// Who acted on the user's behalf, outermost (the latest hop) first:
    /// `["order", "gateway"]` for a token order exchanged from one the
    /// gateway exchanged; empty for a token used as issued.
    pub fn actors(&self) -> Vec<&str> {
        let mut actors = Vec::new();
        let mut next = self.act();
        while let Some(actor) = next {
            actors.push(actor.sub.as_str());
            next = actor.act.as_deref();
        }
        actors
    }

    /// Whether the token is DPoP-bound (`cnf.jkt`): then this request came
    /// with a valid proof of the bound key (a bound token is never accepted
    /// without one), and the token cannot be relayed as it is.
    pub fn dpop_bound(&self) -> bool {
        self.verified.claims.cnf.is_some()
    }

    /// The resources the token is meant for (`aud`).
    pub fn aud(&self) -> &[String] {
        &self.verified.claims.aud
    }

    /// Expiry, seconds since the epoch.
    pub fn exp(&self) -> i64 {
        self.verified.claims.exp
    }

    /// All validated claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.verified.claims
    }

    /// The raw bearer token, to relay it. Never log it.
    pub fn token(&self) -> &Arc<str> {
        &self.verified.token
    }

    /// The trace context of the request this principal came with.
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// The same principal within another trace.
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = trace;
        self
    }

    /// Whether the `roles` claim contains `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// Whether the `scope` claim contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// 403 unless the caller has `role`.
    pub fn require_role(&self, role: &str) -> Result<(), AuthError> {
        if self.has_role(role) {
            return Ok(());
        }
        Err(AuthError::Forbidden(Requirement::role(role.to_owned())))
    }

    /// 403 unless the caller has `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            return Ok(());
        }
        Err(AuthError::Forbidden(Requirement::scope(scope.to_owned())))
    }

    /// 403 unless the caller has at least one of `roles`.
    pub fn require_any_role(&self, roles: &[&str]) -> Result<(), AuthError> {
        if roles.iter().any(|r| self.has_role(r)) {
            return Ok(());
        }
        let any = roles.iter().map(|r| Requirement::role((*r).to_owned()));
        Err(AuthError::Forbidden(Requirement::any_of(any)))
    }

    /// 403 unless the caller meets `requirement`.
    pub fn require(&self, requirement: &Requirement) -> Result<(), AuthError> {
        requirement.check(self)
    }

    /// How strongly the user authenticated (`acr`, e.g. [`crate::claims::acr::SECOND_FACTOR`]).
    pub fn acr(&self) -> Option<&str> {
        self.verified.claims.acr.as_deref()
    }

    /// The methods the user authenticated with (`amr`, RFC 8176).
    pub fn amr(&self) -> &[String] {
        &self.verified.claims.amr
    }

    /// When the user authenticated (`auth_time`, seconds since the epoch).
    pub fn auth_time(&self) -> Option<i64> {
        self.verified.claims.auth_time
    }

    /// 401 with the RFC 9470 challenge unless the user authenticated as
    /// strongly and as recently as `requirement` says (step-up).
    pub fn require_authentication(
        &self,
        requirement: &AuthenticationRequirement,
    ) -> Result<(), AuthError> {
        Ok(requirement.check(&self.verified.claims, crate::unix_now())?)
    }
}

impl std::fmt::Debug for Principal {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.verified.claims;
        f.debug_struct("Principal")
            .field("sub", &c.sub)
            .field("client_id", &c.client_id)
            .field("roles", &c.roles)
            .field("scope", &c.scope)
            .field("jti", &c.jti)
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}
