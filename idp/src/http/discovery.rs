//! `GET /.well-known/openid-configuration` (OIDC Discovery 1.0) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414), plus `/jwks.json`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::catalog::{self, Catalog};
use crate::error::OAuthError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks.json", get(jwks))
}

/// The provider metadata (the same document serves both specifications).
/// It advertises only what is implemented: `prompt` values `none` and
/// `login` (no consent screen, no account chooser), the scopes of the
/// `scopes` table, and every algorithm a token may be signed with.
pub fn document(state: &AppState, scopes: &[String]) -> Value {
    let c = &state.config;
    let algs: Vec<&str> = c.id_token_algs().iter().map(|a| a.as_str()).collect();
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": c.issuer,
        "authorization_endpoint": c.url("/authorize"),
        "token_endpoint": c.url("/token"),
        "userinfo_endpoint": c.url("/userinfo"),
        "jwks_uri": c.url("/jwks.json"),
        "revocation_endpoint": c.url("/revoke"),
        "introspection_endpoint": c.url("/introspect"),
        "end_session_endpoint": c.url("/logout"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": crate::realm::GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": guard::dpop::ALGORITHM_NAMES,
        "prompt_values_supported": ["none", "login"],
        "acr_values_supported": [guard::claims::acr::PASSWORD, guard::claims::acr::SECOND_FACTOR],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "azp", "at_hash", "sid",
            "name", "preferred_username", "email", "email_verified"
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}

async fn metadata(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let scopes = catalog::names(&state.db, Catalog::Scopes).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Json(document(&state, &scopes)),
    )
        .into_response())
}

async fn jwks(State(state): State<AppState>) -> Response {
    let max_age = format!("public, max-age={}", state.config.jwks_max_age.as_secs());
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json".to_owned()),
            (header::CACHE_CONTROL, max_age),
        ],
        state.keys.jwks().to_string(),
    )
        .into_response()
}
