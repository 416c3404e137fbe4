//! `POST /backchannel-logout`: the receiving end of OpenID Connect
//! Back-Channel Logout 1.0. The IdP posts a logout token (form field
//! `logout_token`, §2.5) when an SSO session ends — the person signed out
//! through another application, at the IdP, or an administrator ended it —
//! and the gateway ends every session of its own that belongs to that IdP
//! session (`sid`; or every session of `sub` when the token names no `sid`),
//! so the next request with the old cookie is signed out.
//!
//! The IdP calls this server to server: no cookie, no CSRF token. What makes
//! it safe is the token (guard's [`LogoutTokenVerifier`](guard::LogoutTokenVerifier):
//! the IdP's signature, `typ`, `iss`, `aud` = this client, `iat`/`exp`, the
//! logout event, no `nonce`, `sub`/`sid`) and its `jti`, accepted once
//! (§2.6 step 10; remembered in PostgreSQL so that every replica sees it).
//! Answers (§2.8): 200 once the sessions are ended, 400 `invalid_request` for
//! a token that is not valid, 503 while the IdP's keys or the session store
//! are out of reach (the IdP retries).

use axum::Router;
use axum::extract::rejection::RawFormRejection;
use axum::extract::{RawForm, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};

use crate::AppState;
use crate::error::GatewayError;

/// Where the IdP posts logout tokens (registered as the gateway's `backchannel_logout_uri`).
pub const BACKCHANNEL_LOGOUT_PATH: &str = "/backchannel-logout";

pub fn router() -> Router<AppState> {
    Router::new().route(BACKCHANNEL_LOGOUT_PATH, post(backchannel_logout))
}

async fn backchannel_logout(
    State(app): State<AppState>,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, GatewayError> {
    let invalid = |why: &str| GatewayError::LogoutToken(why.to_owned());
    let Ok(RawForm(body)) = form else {
        return Err(invalid(
            "the body must be application/x-www-form-urlencoded",
        ));
    };
    let mut tokens = url::form_urlencoded::parse(&body)
        .filter(|(name, _)| name == "logout_token")
        .map(|(_, value)| value);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return Err(invalid("send exactly one logout_token"));
    };
    let claims = app
        .logout_tokens
        .verify(&token)
        .await
        .map_err(|e| match e {
            guard::LogoutTokenError::KeysUnavailable => GatewayError::IdpUnavailable,
            e => GatewayError::LogoutToken(e.to_string()),
        })?;
    if !app
        .sessions
        .first_use_of_logout_token(&claims.jti, claims.exp)
        .await?
    {
        return Err(invalid("the logout token was used before"));
    }
    let ended = app
        .sessions
        .end_for_idp(claims.sid.as_deref(), claims.sub.as_deref())
        .await?;
    tracing::info!(
        sid = claims.sid.as_deref().unwrap_or("-"),
        jti = %claims.jti,
        ended,
        "back-channel logout: sessions ended"
    );
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
