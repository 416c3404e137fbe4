//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use time::OffsetDateTime;

use guard::{ACCESS_TOKEN_TYP, AccessClaims};

use crate::error::OAuthError;
use crate::grants;
use crate::http::client_auth::{AuthenticatedClient, ClientForm, ClientRequest, Method};
use crate::http::userinfo::verify_access;
use crate::state::AppState;
use crate::tokens::{self, MAX_TOKEN_LEN};
use crate::{realm, revocations, sessions};

/// `/revoke`, which browser-based clients may call (CORS applies, see [`super::cors`]).
pub fn router() -> Router<AppState> {
    Router::new().route("/revoke", post(revoke))
}

/// `/introspect`, for resource servers only (no CORS).
pub fn introspection_router() -> Router<AppState> {
    Router::new().route("/introspect", post(introspect))
}

/// A JWT has two dots; our refresh tokens are 43 base64url characters.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Revokes a refresh token (its whole family, with the access tokens issued
/// from it) or an access token (by `jti`). Unknown, invalid, expired or
/// foreign tokens get the same 200: the answer reveals nothing.
async fn revoke(
    State(state): State<AppState>,
    ClientForm(
        AuthenticatedClient { client, .. },
        ClientRequest {
            headers, params, ..
        },
    ): ClientForm,
) -> Result<Response, OAuthError> {
    super::cors::check_client(&state.cors, &headers, &client.id)?;
    let token = params.require("token")?;
    if token.len() <= MAX_TOKEN_LEN {
        if looks_like_jwt(token) {
            if let Ok(claims) =
                tokens::verify_own::<AccessClaims>(&state, token, ACCESS_TOKEN_TYP, false)
                && (claims.client_id == client.id
                    // The client that obtained it by exchange (RFC 8693).
                    || claims.act.as_ref().is_some_and(|a| a.sub == client.id))
            {
                let exp = OffsetDateTime::from_unix_timestamp(claims.exp)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc());
                let mut conn = state.db.acquire().await?;
                revocations::record(&mut conn, "jti", &claims.jti, "revoked by client", exp)
                    .await?;
            }
        } else if let Some(found) = grants::find_refresh(&state.db, token).await?
            && found.client_id == client.id
        {
            grants::revoke_family(&state.db, found.family_id, "revoked by client").await?;
        }
    }
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Introspection is for confidential clients. RFC 7662 §4: a token is
/// described only to the clients entitled to it — an access token to its own
/// client or to a resource server named in its `aud`, a refresh token to the
/// client it was issued to; everyone else learns `{"active": false}`, exactly
/// as for an unknown token.
async fn introspect(
    State(state): State<AppState>,
    ClientForm(AuthenticatedClient { client, method }, ClientRequest { params, .. }): ClientForm,
) -> Result<Response, OAuthError> {
    if method == Method::None {
        return Err(OAuthError::invalid_client(
            "introspection requires client authentication",
        ));
    }
    let token = params.require("token")?;
    let body = if token.len() > MAX_TOKEN_LEN {
        inactive()
    } else if looks_like_jwt(token) {
        match verify_access(&state, token).await {
            Ok(c) if c.client_id == client.id || c.aud.contains(&client.id) => json!({
                "active": true,
                "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
                "cnf": c.cnf,
                "scope": c.scope,
                "client_id": c.client_id,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "nbf": c.nbf,
                "jti": c.jti,
                "sid": c.sid,
                "auth_time": c.auth_time,
                "roles": c.roles,
            }),
            // Someone else's token: as if unknown.
            Ok(_) => inactive(),
            Err(e @ (OAuthError::Server(_) | OAuthError::Unavailable(_))) => return Err(e),
            Err(_) => inactive(),
        }
    } else {
        match grants::find_refresh(&state.db, token).await? {
            Some(r)
                if r.client_id == client.id
                    && r.rotated_at.is_none()
                    && r.revoked_at.is_none()
                    && r.expires_at > OffsetDateTime::now_utc()
                    && sessions::live_until(&state.db, r.session_id)
                        .await?
                        .is_some() =>
            {
                let username = realm::user_by_id(&state.db, r.user_id)
                    .await?
                    .map(|u| u.username);
                json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": r.scope,
                    "client_id": r.client_id,
                    "sub": r.user_id.to_string(),
                    "username": username,
                    "iss": state.config.issuer,
                    "exp": r.expires_at.unix_timestamp(),
                    "sid": r.session_id.to_string(),
                })
            }
            _ => inactive(),
        }
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn inactive() -> Value {
    json!({"active": false})
}
