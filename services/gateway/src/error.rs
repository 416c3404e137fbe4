//! Every way a gateway request can fail, and the one place where that becomes HTTP.
//!
//! API answers are JSON `{"error", "error_description"}` (OAuth style) with
//! `Cache-Control: no-store`; errors raised by the gateway itself (not passed
//! through from an upstream) carry `x-baton-denied-by: gateway` so a client —
//! the demo page's relay trace — can tell which hop refused. Sign-in flow
//! errors are browser navigations and answer a small HTML page instead.

use std::time::Duration;

use axum::Json;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};

use crate::proxy::UpstreamError;

/// Where a browser goes to sign in; also the hint in 401 answers.
pub const SIGN_IN_PATH: &str = "/auth/login";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route, or no allow rule exposing this method and path.
    #[error("no route for {0}")]
    NotFound(String),
    /// A path the gateway refuses to interpret (dot segments, encoded slashes, …).
    #[error("the request path is not acceptable: {0}")]
    BadPath(&'static str),
    #[error("too many requests; retry later")]
    RateLimited(Duration),
    /// No credentials at all: neither a bearer token nor a session.
    #[error("sign in first, or send an access token")]
    SignInRequired { navigation: bool, return_to: String },
    /// The session is gone (expired, logged out, or its refresh was refused).
    #[error("your session has ended; sign in again")]
    SessionEnded { navigation: bool, return_to: String },
    /// Token validation or coarse RBAC refused the request (401/403 from guard).
    #[error(transparent)]
    Auth(#[from] guard::AuthError),
    /// A state-changing browser request without CSRF proof.
    #[error("cross-site request refused: {0}")]
    Csrf(&'static str),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// No per-route token: the IdP refused to exchange the caller's token
    /// (401), refused the route's audience or scopes (403), or was unreachable (503).
    #[error(transparent)]
    Exchange(guard::ExchangeError),
    /// The IdP could not be reached (discovery, token, refresh).
    #[error("the identity provider is unavailable")]
    IdpUnavailable,
    /// The session store could not be reached.
    #[error("the session store is unavailable")]
    StoreUnavailable,
    /// A sign-in callback that cannot complete; shown to the person as a page.
    #[error("{0}")]
    SignIn(String),
    /// A back-channel logout request that is not a valid logout token (§2.8: 400).
    #[error("invalid logout request: {0}")]
    LogoutToken(String),
    /// Sign-in cannot start or finish because the IdP is unreachable; a page too.
    #[error("The identity provider cannot be reached right now. Please try again in a moment.")]
    SignInUnavailable,
}

impl From<sqlx::Error> for GatewayError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "session store error");
        Self::StoreUnavailable
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let (status, code) = match &self {
            Self::Auth(e) => {
                let mut response = e.clone().into_response();
                mark_gateway(&mut response);
                return response;
            }
            Self::SignIn(_) => return sign_in_failed_page(StatusCode::BAD_REQUEST, &description),
            Self::SignInUnavailable => {
                return sign_in_failed_page(StatusCode::SERVICE_UNAVAILABLE, &description);
            }
            Self::SignInRequired {
                navigation: true,
                return_to,
            }
            | Self::SessionEnded {
                navigation: true,
                return_to,
            } => {
                return Redirect::to(&sign_in_url(return_to)).into_response();
            }
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadPath(_) | Self::LogoutToken(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::SignInRequired { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::SessionEnded { .. } => (StatusCode::UNAUTHORIZED, "session_ended"),
            Self::Csrf(_) => (StatusCode::FORBIDDEN, "csrf_check_failed"),
            Self::Upstream(UpstreamError::Unreachable { .. }) => {
                (StatusCode::BAD_GATEWAY, "bad_gateway")
            }
            Self::Upstream(UpstreamError::Timeout { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout")
            }
            Self::Upstream(UpstreamError::CircuitOpen { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "circuit_open")
            }
            Self::Exchange(guard::ExchangeError::Refused(_)) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            Self::Exchange(guard::ExchangeError::NotAllowed(_)) => {
                (StatusCode::FORBIDDEN, "insufficient_scope")
            }
            Self::Exchange(guard::ExchangeError::Unavailable(_))
            | Self::IdpUnavailable
            | Self::StoreUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        };
        let mut body = serde_json::json!({ "error": code, "error_description": description });
        if let Self::SignInRequired { return_to, .. } | Self::SessionEnded { return_to, .. } = &self
        {
            body["sign_in"] = sign_in_url(return_to).into();
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::RateLimited(wait)
            | Self::Upstream(UpstreamError::CircuitOpen {
                retry_after: wait, ..
            }) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*wait)),
                );
            }
            Self::SignInRequired { .. }
            | Self::SessionEnded { .. }
            | Self::Exchange(guard::ExchangeError::Refused(_)) => {
                // API clients: either scheme (RFC 9449 §7.1); a token the IdP
                // would not exchange (revoked meanwhile) is invalid.
                let error = match &self {
                    Self::Exchange(_) => ", error=\"invalid_token\"",
                    _ => "",
                };
                for challenge in [guard::bearer_challenge(error), guard::dpop_challenge("")] {
                    if let Ok(value) = HeaderValue::from_str(&challenge) {
                        headers.append(header::WWW_AUTHENTICATE, value);
                    }
                }
            }
            Self::IdpUnavailable | Self::StoreUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        mark_gateway(&mut response);
        response
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64
}

fn mark_gateway(response: &mut Response) {
    response
        .headers_mut()
        .insert("x-baton-denied-by", HeaderValue::from_static("gateway"));
}

/// `/auth/login?return_to=…` for a local path.
pub fn sign_in_url(return_to: &str) -> String {
    let mut url = String::from(SIGN_IN_PATH);
    if return_to != "/" && !return_to.is_empty() {
        url.push_str("?return_to=");
        url.push_str(
            &url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>(),
        );
    }
    url
}

fn sign_in_failed_page(status: StatusCode, reason: &str) -> Response {
    let escaped = html_escape(reason);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed · Baton</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body class=\"message-page\">\
         <main class=\"card message\"><h1>Sign-in did not complete</h1><p>{escaped}</p>\
         <p><a class=\"button primary\" href=\"{SIGN_IN_PATH}\">Try again</a> <a class=\"button\" href=\"/\">Home</a></p>\
         </main></body></html>"
    );
    let mut response = (status, Html(page)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_callers_get_json_with_a_sign_in_hint_and_pages_get_a_redirect() {
        let api = GatewayError::SessionEnded {
            navigation: false,
            return_to: "/api/orders".into(),
        }
        .into_response();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(api.headers()["x-baton-denied-by"], "gateway");
        let page = GatewayError::SessionEnded {
            navigation: true,
            return_to: "/api/orders".into(),
        }
        .into_response();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            page.headers()[header::LOCATION],
            "/auth/login?return_to=%2Fapi%2Forders"
        );
    }

    #[test]
    fn statuses_follow_the_failure() {
        let cases = [
            (GatewayError::NotFound("/x".into()), 404),
            (GatewayError::RateLimited(Duration::from_millis(10)), 429),
            (GatewayError::Csrf("no origin"), 403),
            (
                GatewayError::Upstream(UpstreamError::Unreachable { route: "r".into() }),
                502,
            ),
            (
                GatewayError::Upstream(UpstreamError::Timeout {
                    route: "r".into(),
                    timeout: Duration::from_secs(1),
                }),
                504,
            ),
            (
                GatewayError::Upstream(UpstreamError::CircuitOpen {
                    route: "r".into(),
                    retry_after: Duration::from_millis(2500),
                }),
                503,
            ),
            (GatewayError::IdpUnavailable, 503),
            (GatewayError::SignIn("state mismatch <b>".into()), 400),
            (GatewayError::SignInUnavailable, 503),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
        }
        let limited = GatewayError::RateLimited(Duration::from_millis(10)).into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
        let open = GatewayError::Upstream(UpstreamError::CircuitOpen {
            route: "r".into(),
            retry_after: Duration::from_millis(2500),
        })
        .into_response();
        assert_eq!(open.headers()[header::RETRY_AFTER], "3");
        assert_eq!(
            html_escape("<b>\"x\"</b>"),
            "&lt;b&gt;&quot;x&quot;&lt;/b&gt;"
        );
    }
}
