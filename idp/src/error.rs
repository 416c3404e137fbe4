//! The IdP's errors and the one place where they become HTTP responses.
//!
//! [`OAuthError`] is every JSON endpoint's error (RFC 6749 §5.2, RFC 6750 §3);
//! [`PageError`] is what a person sees in the browser (authorize, login,
//! logout), where an error must never redirect to an unverified URI.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::pages;

type Text = Cow<'static, str>;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(Text),
    #[error("invalid_client: {0}")]
    InvalidClient(Text),
    #[error("invalid_grant: {0}")]
    InvalidGrant(Text),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Text),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(Text),
    /// RFC 9449 §5: the DPoP proof is missing (where required) or invalid.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(Text),
    /// RFC 8693 §2.2.2: the requested audience is not acceptable.
    #[error("invalid_target: {0}")]
    InvalidTarget(Text),
    /// A Bearer token that is missing (no description, RFC 6750 §3.1).
    #[error("missing bearer token")]
    MissingToken,
    /// A Bearer token that is malformed, expired, revoked or not ours.
    #[error("invalid_token: {0}")]
    InvalidToken(Text),
    #[error("insufficient_scope: {0}")]
    InsufficientScope(Text),
    /// An authenticated client asking for something it is not registered for
    /// (403 `access_denied`), e.g. the revocation stream without `revocations:read`.
    #[error("access_denied: {0}")]
    AccessDenied(Text),
    /// A client holds as many long-lived connections as it may (429, `Retry-After`).
    #[error("too_many_connections: {0}")]
    TooManyConnections(Text),
    /// Something on our side (database, signing): logged, never detailed to the caller.
    #[error("server_error: {0}")]
    Server(String),
    /// The database cannot be reached right now (down, restarting, pool
    /// exhausted): 503 with `Retry-After`, so clients retry instead of giving up.
    #[error("temporarily_unavailable: {0}")]
    Unavailable(String),
}

impl OAuthError {
    pub fn invalid_request(d: impl Into<Text>) -> Self {
        Self::InvalidRequest(d.into())
    }
    pub fn invalid_grant(d: impl Into<Text>) -> Self {
        Self::InvalidGrant(d.into())
    }
    pub fn invalid_client(d: impl Into<Text>) -> Self {
        Self::InvalidClient(d.into())
    }
    pub fn invalid_scope(d: impl Into<Text>) -> Self {
        Self::InvalidScope(d.into())
    }
    pub fn invalid_token(d: impl Into<Text>) -> Self {
        Self::InvalidToken(d.into())
    }

    /// The OAuth error code (`invalid_grant`, …), e.g. as a metric label.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&str>) {
        match self {
            Self::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", Some(d)),
            Self::InvalidClient(d) => (StatusCode::UNAUTHORIZED, "invalid_client", Some(d)),
            Self::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", Some(d)),
            Self::UnauthorizedClient(d) => {
                (StatusCode::BAD_REQUEST, "unauthorized_client", Some(d))
            }
            Self::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type", None),
            Self::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", Some(d)),
            Self::InvalidTarget(d) => (StatusCode::BAD_REQUEST, "invalid_target", Some(d)),
            Self::InvalidDpopProof(d) => (StatusCode::BAD_REQUEST, "invalid_dpop_proof", Some(d)),
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "invalid_request", None),
            Self::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", Some(d)),
            Self::InsufficientScope(d) => (StatusCode::FORBIDDEN, "insufficient_scope", Some(d)),
            Self::AccessDenied(d) => (StatusCode::FORBIDDEN, "access_denied", Some(d)),
            Self::TooManyConnections(d) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                Some(d),
            ),
            Self::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                Some("the service is temporarily unavailable; retry shortly"),
            ),
        }
    }
}

/// Failures on our side become the `Server` variant of either error type.
macro_rules! server_errors {
    ($target:ty: $($t:ty),*) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                Self::Server(e.to_string())
            }
        }
    )*};
}
server_errors!(OAuthError: crate::keys::KeyError);

/// A full CPU pool is "try again shortly" (503 with `Retry-After`); any other
/// pool failure is ours.
macro_rules! pool_errors {
    ($($target:ty),*) => {$(
        impl From<crate::blocking::BlockingError> for $target {
            fn from(e: crate::blocking::BlockingError) -> Self {
                match e {
                    crate::blocking::BlockingError::Busy => Self::Unavailable(e.to_string()),
                    other => Self::Server(other.to_string()),
                }
            }
        }
        impl From<crate::password::PasswordError> for $target {
            fn from(e: crate::password::PasswordError) -> Self {
                match e {
                    crate::password::PasswordError::Pool(e) => e.into(),
                    other => Self::Server(other.to_string()),
                }
            }
        }
    )*};
}
pool_errors!(OAuthError, PageError);

/// Whether a database error means "not reachable right now" (connection
/// refused or lost, pool timed out or closed, server shutting down or
/// starting: SQLSTATE classes 08 and 57P) rather than a fault in a query.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// A database error becomes `Unavailable` or `Server` (see [`database_unavailable`]).
macro_rules! database_errors {
    ($($target:ty),*) => {$(
        impl From<sqlx::Error> for $target {
            fn from(e: sqlx::Error) -> Self {
                if database_unavailable(&e) {
                    Self::Unavailable(e.to_string())
                } else {
                    Self::Server(e.to_string())
                }
            }
        }
    )*};
}
database_errors!(OAuthError, PageError);

/// How long a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Quotes a value for an HTTP auth-param (RFC 9110 §11.2): drops what cannot appear.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
        .collect()
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code, description) = self.parts();
        if let Self::Server(detail) = &self {
            tracing::error!(error = %detail, "request failed on the server side");
        } else if let Self::Unavailable(detail) = &self {
            tracing::warn!(error = %detail, "database unavailable; answered 503");
        } else {
            tracing::info!(
                error = code,
                description = description.unwrap_or(""),
                "request refused"
            );
        }
        let challenge = match &self {
            Self::InvalidClient(_) => {
                Some(r#"Basic realm="baton-idp", charset="UTF-8""#.to_owned())
            }
            Self::MissingToken => Some(r#"Bearer realm="baton-idp""#.to_owned()),
            Self::InvalidToken(d) | Self::InsufficientScope(d) => Some(format!(
                r#"Bearer realm="baton-idp", error="{code}", error_description="{}""#,
                quoted(d)
            )),
            _ => None,
        };
        let body = match description {
            Some(d) if !matches!(self, Self::MissingToken) => {
                json!({"error": code, "error_description": d})
            }
            _ => json!({"error": code}),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// An error shown as an HTML page, never a redirect.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The request cannot be honoured; the message is shown to the person.
    #[error("bad request: {0}")]
    BadRequest(Text),
    #[error("server error: {0}")]
    Server(String),
    /// See [`OAuthError::Unavailable`].
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl PageError {
    pub fn bad_request(d: impl Into<Text>) -> Self {
        Self::BadRequest(d.into())
    }
}

impl From<OAuthError> for PageError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Server(s) => Self::Server(s),
            OAuthError::Unavailable(s) => Self::Unavailable(s),
            other => Self::BadRequest(other.to_string().into()),
        }
    }
}

server_errors!(PageError: crate::keys::KeyError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message): (StatusCode, Text) = match self {
            Self::BadRequest(m) => {
                tracing::info!(reason = %m, "request refused with an error page");
                (StatusCode::BAD_REQUEST, m)
            }
            Self::Server(detail) => {
                tracing::error!(error = %detail, "page failed on the server side");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::SERVER_FAILED.into(),
                )
            }
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable; page answered 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The sign-in service is briefly unavailable. Please try again in a moment."
                        .into(),
                )
            }
        };
        let mut response = pages::error_page(status, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// An authorization request that fails: an error page when the client or
/// redirect URI cannot be trusted, otherwise a redirect back to the client
/// with the error (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
#[derive(Debug)]
pub enum AuthorizeError {
    Page(PageError),
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: Text,
        state: Option<String>,
        issuer: String,
    },
}

/// Whatever becomes a [`PageError`] is shown as a page at `/authorize` too.
macro_rules! page_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for AuthorizeError {
            fn from(e: $t) -> Self {
                Self::Page(e.into())
            }
        }
    )*};
}
page_errors!(PageError, OAuthError, sqlx::Error);

impl IntoResponse for AuthorizeError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(e) => e.into_response(),
            Self::Redirect {
                redirect_uri,
                error,
                description,
                state,
                issuer,
            } => {
                tracing::info!(error, description = %description, "authorization request refused");
                let Ok(mut url) = url::Url::parse(&redirect_uri) else {
                    return PageError::bad_request("The application's redirect URI is invalid.")
                        .into_response();
                };
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("error", error)
                        .append_pair("error_description", &description);
                    if let Some(state) = &state {
                        q.append_pair("state", state);
                    }
                    q.append_pair("iss", &issuer);
                }
                axum::response::Redirect::to(url.as_str()).into_response()
            }
        }
    }
}

#[cfg(test)]
mod database_error_tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_a_503_with_retry_after_and_a_query_fault_a_500() {
        let down = OAuthError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
        let page = PageError::from(sqlx::Error::PoolClosed).into_response();
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        let fault = OAuthError::from(sqlx::Error::RowNotFound).into_response();
        assert_eq!(fault.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(fault.headers().get(header::RETRY_AFTER).is_none());
    }
}
