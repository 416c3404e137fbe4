//! `Principal` as an axum extractor: the request's caller, validated once
//! by the [`Guard`] in the state and kept in the request's extensions. Apart
//! from `principal` so the principal does not depend on the validator that
//! makes it (`validate` builds principals; this module asks it for one).

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use crate::Guard;
use crate::error::AuthError;
use crate::principal::Principal;

impl<S> FromRequestParts<S> for Principal
where
    Guard: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        of_request(parts, &Guard::from_ref(state)).await
    }
}

/// The request's principal: the one already validated for it, or `guard`'s
/// verdict on its bearer token, then kept in its extensions. The principal
/// carries the request's one trace context (see [`platform::trace::attach`]),
/// which is kept there too, for its log span and any `TraceContext` extractor.
pub(crate) async fn of_request(parts: &mut Parts, guard: &Guard) -> Result<Principal, AuthError> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(principal.clone());
    }
    platform::trace::of_request(&mut parts.extensions, &parts.headers);
    let principal = guard.authenticate(&*parts).await?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

/// `Option<Principal>`: `None` when no token was sent, the error when one was
/// sent and is invalid (an invalid token is never treated as anonymous).
impl<S> axum::extract::OptionalFromRequestParts<S> for Principal
where
    Guard: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, AuthError> {
        match <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(principal) => Ok(Some(principal)),
            Err(AuthError::MissingToken) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
