//! `GET|POST /userinfo` (OIDC Core §5.3) with a Bearer access token, or a
//! DPoP-bound one as `Authorization: DPoP` with a proof (RFC 9449 §7).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use guard::{ACCESS_TOKEN_TYP, AccessClaims};

use crate::error::OAuthError;
use crate::http::authorization::Authorization;
use crate::state::AppState;
use crate::{dpop, realm, revocations, tokens};

pub fn router() -> Router<AppState> {
    Router::new().route("/userinfo", get(userinfo).post(userinfo))
}

/// The Bearer token of a request (RFC 6750 §2.1), if it has one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, OAuthError> {
    let auth = Authorization::of(headers)
        .map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?
        .ok_or(OAuthError::MissingToken)?;
    auth.token("bearer").ok_or(OAuthError::MissingToken)
}

/// Verifies one of our access tokens and checks that it is not revoked.
pub async fn verify_access(state: &AppState, token: &str) -> Result<AccessClaims, OAuthError> {
    let claims: AccessClaims = tokens::verify_own(state, token, ACCESS_TOKEN_TYP, false)
        .map_err(OAuthError::invalid_token)?;
    if revocations::is_revoked(&state.db, &claims).await? {
        return Err(OAuthError::invalid_token("token revoked"));
    }
    Ok(claims)
}

/// The token of `Authorization: DPoP <token>`, if that is the scheme.
fn dpop_token(headers: &HeaderMap) -> Option<&str> {
    Authorization::of(headers).ok()??.token("dpop")
}

async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let claims = match dpop_token(&headers) {
        None => {
            let claims = verify_access(&state, bearer(&headers)?).await?;
            if claims.cnf.is_some() {
                return Err(OAuthError::invalid_token(
                    "token is DPoP-bound: send it with the DPoP scheme and a proof",
                ));
            }
            claims
        }
        Some(token) => {
            let claims = verify_access(&state, token).await?;
            let refused = |e: OAuthError| OAuthError::invalid_token(e.to_string());
            let proof = dpop::proof(&state, &headers, method.as_str(), "/userinfo", Some(token))
                .await
                .map_err(|e| match e {
                    e @ (OAuthError::Server(_) | OAuthError::Unavailable(_)) => e,
                    e => refused(e),
                })?
                .ok_or_else(|| OAuthError::invalid_token("a DPoP proof is required"))?;
            if claims.jkt() != Some(proof.jkt.as_str()) {
                return Err(OAuthError::invalid_token(
                    "the DPoP proof's key is not the key the token is bound to",
                ));
            }
            claims
        }
    };
    super::cors::check_client(&state.cors, &headers, &claims.client_id)?;
    if !claims.scopes().any(|s| s == "openid") {
        return Err(OAuthError::InsufficientScope(
            "the openid scope is required".into(),
        ));
    }
    let user = match Uuid::parse_str(&claims.sub) {
        Ok(id) if claims.sid.is_some() => realm::user_by_id(&state.db, id).await?,
        _ => None,
    }
    .filter(|u| !u.disabled)
    .ok_or_else(|| OAuthError::invalid_token("the token does not belong to an active user"))?;

    let mut body = Map::new();
    body.insert("sub".into(), json!(user.id.to_string()));
    if claims.scopes().any(|s| s == "profile") {
        body.insert("name".into(), json!(user.name));
        body.insert("preferred_username".into(), json!(user.username));
    }
    if claims.scopes().any(|s| s == "email")
        && let Some(email) = &user.email
    {
        body.insert("email".into(), json!(email));
        body.insert("email_verified".into(), json!(user.email_verified));
    }
    let mut response = Json(Value::Object(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
