//! The HTTP surface: one module per resource, assembled here with the
//! cross-cutting layers (request spans and metrics, request ids, timeouts,
//! security headers, HSTS behind an https issuer).

pub mod account;
pub mod authenticator;
pub mod authorization;
pub mod authorize;
pub mod client_auth;
pub mod cookies;
pub mod cors;
pub mod discovery;
pub mod health;
pub mod login;
pub mod logout;
pub mod pages;
pub mod params;
pub mod passkey_login;
pub mod passkeys;
pub mod peer;
#[cfg(test)]
mod properties;
pub mod revocations;
pub mod revoke;
pub mod second_factor;
pub mod sign_in;
pub mod token;
pub mod userinfo;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::OAuthError;
use crate::state::AppState;

/// `Strict-Transport-Security` when the issuer is https: a browser that has
/// seen the IdP once never talks to it in clear text again.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

pub fn router(state: AppState) -> Router {
    let https = state.config.secure_cookies();
    // The endpoints a browser-based client calls (see `cors`).
    let browser_facing = Router::new()
        .merge(discovery::router())
        .merge(token::router())
        .merge(userinfo::router())
        .merge(revoke::router())
        .layer(cors::layer(state.cors.clone()));
    let router = Router::new()
        .merge(browser_facing)
        .merge(authorize::router())
        .merge(login::router())
        .merge(revoke::introspection_router())
        .merge(revocations::router())
        .merge(logout::router())
        .merge(second_factor::router())
        .merge(account::router())
        .merge(authenticator::router())
        .merge(passkeys::router())
        .merge(passkey_login::router())
        .merge(health::router(&state))
        .route("/static/idp.css", get(pages::stylesheet))
        .route("/static/favicon.svg", get(pages::favicon))
        .route("/static/passkey.js", get(pages::passkey_script))
        .route("/favicon.ico", get(pages::favicon))
        .fallback(not_found)
        .with_state(state);
    // The request span (method and path only: query strings carry codes,
    // states and ID-token hints, and headers carry credentials), the W3C
    // trace context continued from the caller, the HTTP metrics, request ids
    // and a 30 s timeout: platform's stack, as every part has it.
    let router = platform::server::Stack::new()
        .panic_answer(|| OAuthError::Server("a handler panicked".into()).into_response())
        .timeout(Duration::from_secs(30))
        .request_id()
        .wrap(router)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    if https {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HSTS,
        ))
    } else {
        router
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": "not_found"})),
    )
        .into_response()
}
