//! Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6),
//! verified with a [`Guard`]'s key cache, for a relying party (the gateway)
//! that receives them at its back-channel logout URI.
//!
//! ```ignore
//! let verifier = guard.logout_token_verifier("gateway"); // shares the guard's JWKS cache
//! let claims = verifier.verify(&logout_token).await?;
//! // then: refuse a `jti` seen before, and end the sessions of `claims.sid` / `claims.sub`
//! ```
//!
//! The rules, in order (§2.6 steps 1–9; step 10, a replayed `jti`, needs the
//! receiver's own store):
//!
//! 1. at most 8 KiB, a compact JWS, and the access-token header rules
//!    ([`crate::validator`]): `alg` from the guard's allow-list (never
//!    `none`, never HS*), a `kid`, no `crit`, no `jku`/`x5u`/`jwk`/`x5c`;
//! 2. `typ` is `logout+jwt` (or `application/logout+jwt`): explicit typing
//!    (RFC 8725 §3.11), so neither an ID token nor an access token from the
//!    same issuer and keys passes as a logout token;
//! 3. the `kid`'s key from the guard's JWKS cache (unknown → one rate-limited
//!    refetch), published for that algorithm; the signature;
//! 4. `iss` exactly the guard's issuer, `aud` contains the client id, `exp`
//!    with the guard's leeway, `iat` required and not in the future;
//! 5. `sub`, `sid` or both; a `jti`;
//! 6. `events` holds the member `http://schemas.openid.net/event/backchannel-logout`
//!    whose value is a JSON object;
//! 7. no `nonce` (it would let a logout token pass for an ID token elsewhere).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{GuardConfig, MAX_TOKEN_BYTES};
use crate::error::TokenError;
use crate::validate::Guard;
use crate::validator::{OneOrMany, Validator, present};

/// The member of `events` that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a logout token was refused. The `Display` text names the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutTokenError {
    /// A rule shared with access tokens (signature, `iss`, `aud`, `exp`, header…).
    #[error("{0}")]
    Token(TokenError),
    #[error("token type is not a logout token (typ must be logout+jwt)")]
    WrongType,
    #[error("the events claim has no back-channel logout event")]
    MissingEvent,
    #[error("a logout token must not carry a nonce")]
    NoncePresent,
    #[error("a logout token names a sub, a sid or both")]
    NoSubject,
    /// No signing keys could be loaded (the IdP has not answered): the token
    /// may be fine, retry later.
    #[error("signing keys are not available yet")]
    KeysUnavailable,
}

crate::error::verifier_error_conversions!(LogoutTokenError);

/// The claims of a verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user whose sessions end (all of them when `sid` is absent).
    pub sub: Option<String>,
    /// The IdP session that ended.
    pub sid: Option<String>,
}

#[derive(Deserialize)]
struct RawLogoutClaims {
    iss: Option<String>,
    aud: Option<OneOrMany>,
    iat: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    events: Option<Map<String, Value>>,
    nonce: Option<Value>,
}

/// Verifies the issuer's logout tokens for one client; cheap to clone. Made
/// by [`Guard::logout_token_verifier`]: same issuer, algorithm allow-list,
/// leeway and key cache as the guard.
#[derive(Clone)]
pub struct LogoutTokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    guard: Guard,
    validator: Validator,
}

impl LogoutTokenVerifier {
    pub(crate) fn new(guard: Guard, config: &GuardConfig, client_id: &str) -> Self {
        let validator = Validator::with_audience(config, client_id, &["exp", "iss", "aud"]);
        Self {
            inner: Arc::new(Inner { guard, validator }),
        }
    }

    /// Verifies `token` (rules 1–7 above).
    pub async fn verify(&self, token: &str) -> Result<LogoutClaims, LogoutTokenError> {
        let result = self.check(token).await;
        if let Err(e) = &result {
            // The reason only: never the token.
            tracing::debug!(reason = %e, "logout token refused");
        }
        result
    }

    async fn check(&self, token: &str) -> Result<LogoutClaims, LogoutTokenError> {
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(MAX_TOKEN_BYTES).into());
        }
        let header = inner
            .validator
            .check_header_typed(token, is_logout_token_typ)?;
        let key = inner.guard.signing_key(&header.kid).await?;
        let raw: RawLogoutClaims = inner.validator.decode(token, header.alg, &key)?;
        let iat = inner.validator.issued_at(raw.iat)?;
        let has_event = raw
            .events
            .as_ref()
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(Value::is_object);
        if !has_event {
            return Err(LogoutTokenError::MissingEvent);
        }
        if raw.nonce.is_some() {
            return Err(LogoutTokenError::NoncePresent);
        }
        let (sub, sid) = (non_empty(raw.sub), non_empty(raw.sid));
        if sub.is_none() && sid.is_none() {
            return Err(LogoutTokenError::NoSubject);
        }
        Ok(LogoutClaims {
            iss: present(raw.iss, "iss")?,
            aud: raw
                .aud
                .map(OneOrMany::into_vec)
                .ok_or(TokenError::MissingClaim("aud"))?,
            iat,
            exp: raw.exp.ok_or(TokenError::MissingClaim("exp"))?,
            jti: present(raw.jti, "jti")?,
            sub,
            sid,
        })
    }
}

impl std::fmt::Debug for LogoutTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutTokenVerifier")
            .field("issuer", &self.inner.guard.config().issuer)
            .finish_non_exhaustive()
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// `logout+jwt`, or its media type `application/logout+jwt` (case-insensitive).
fn is_logout_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("logout+jwt") || typ.eq_ignore_ascii_case("application/logout+jwt")
}

/// Here rather than in `validate`, so that the guard does not depend on its
/// verifiers (the verifiers depend on the guard).
impl Guard {
    /// A verifier of the issuer's back-channel logout tokens for the client
    /// `client_id`, sharing this guard's key cache (see [`crate::logout_token`]).
    pub fn logout_token_verifier(&self, client_id: &str) -> LogoutTokenVerifier {
        LogoutTokenVerifier::new(self.clone(), self.config(), client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_logout_types_pass() {
        for typ in ["logout+jwt", "LOGOUT+JWT", "application/logout+jwt"] {
            assert!(is_logout_token_typ(typ), "{typ:?}");
        }
        for typ in ["", "JWT", "at+jwt", "application/jwt", "secevent+jwt"] {
            assert!(!is_logout_token_typ(typ), "{typ:?}");
        }
    }
}
