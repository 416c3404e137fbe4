//! The errors of a service's API: the failures every one has (bad token, bad
//! query, a field out of bounds, idempotency keys, not found, database), and
//! its own, `E`, which answers for itself through [`DomainError`]. Token
//! failures come from guard, which platform does not know: they arrive as a
//! [`Rejection`] that answers for itself. A bad JSON body never reaches a
//! handler: [`crate::json::Json`] answers it alike (`invalid_request`).
//!
//! ```ignore
//! #[derive(Debug, thiserror::Error)]
//! pub enum InventoryError {
//!     #[error("not enough stock of {0:?}")]
//!     InsufficientStock(String),
//! }
//! impl DomainError for InventoryError {
//!     fn response(self) -> Response {
//!         json_error(StatusCode::CONFLICT, "insufficient_stock", self)
//!     }
//! }
//! pub type AppError = platform::ApiError<InventoryError>;
//! // handlers: `?` on sqlx, query rejections, guard's errors and the domain error alike
//! ```

use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error_body::{database_error, json_error};
use crate::idempotency::{ClaimError, KeyError};

/// A service's own failures, and how each answers (usually with
/// [`json_error`]).
pub trait DomainError: std::error::Error {
    fn response(self) -> Response;
}

/// A service without failures of its own: `ApiError<Infallible>`.
impl DomainError for std::convert::Infallible {
    fn response(self) -> Response {
        match self {}
    }
}

/// A failure raised by a layer below the service that knows its own answer
/// (guard's `AuthError`: 401/403 with `WWW-Authenticate`).
pub trait Rejection: std::error::Error + Send + Sync + 'static {
    fn response(self: Box<Self>) -> Response;
}

/// Every way a request to a resource server can fail; `E` is the service's own.
#[derive(Debug, thiserror::Error)]
pub enum ApiError<E> {
    /// Missing or invalid token (401), missing role or scope (403).
    #[error("{0}")]
    Auth(Box<dyn Rejection>),
    #[error("{0}")]
    BadQuery(#[from] QueryRejection),
    /// A field out of bounds (422).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    IdempotencyKey(#[from] KeyError),
    #[error(transparent)]
    Idempotency(#[from] ClaimError),
    /// No such resource, or not the caller's (404, so ids do not leak).
    #[error("not found")]
    NotFound,
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Domain(E),
}

impl<E: DomainError> From<E> for ApiError<E> {
    fn from(e: E) -> Self {
        Self::Domain(e)
    }
}

/// The one place where a resource server's failures become HTTP answers:
/// `{"error","error_description"}` (RFC 6749 §5.2 shape), the rejection's own answer
/// for token failures, 503/500 for the database (details in the log only),
/// and the service's own answer for its own failures.
impl<E: DomainError> IntoResponse for ApiError<E> {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(e) => e.response(),
            Self::Domain(e) => e.response(),
            Self::Db(e) | Self::Idempotency(ClaimError::Db(e)) => database_error(&e),
            other => {
                let (status, code) = other.status_and_code();
                json_error(status, code, other)
            }
        }
    }
}

impl<E> ApiError<E> {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadQuery(e) => (e.status(), "invalid_request"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::IdempotencyKey(_) => (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            Self::Idempotency(ClaimError::Mismatch) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            Self::Idempotency(ClaimError::Incomplete) => {
                (StatusCode::CONFLICT, "idempotency_key_in_use")
            }
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            // Answered above, each its own way.
            Self::Auth(_)
            | Self::Domain(_)
            | Self::Db(_)
            | Self::Idempotency(ClaimError::Db(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("sold out")]
    struct SoldOut;

    impl DomainError for SoldOut {
        fn response(self) -> Response {
            json_error(StatusCode::CONFLICT, "insufficient_stock", self)
        }
    }

    async fn answer(error: ApiError<SoldOut>) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_failure_answers_with_its_status_code_and_description() {
        let cases: [(ApiError<SoldOut>, u16, &str); 6] = [
            (
                ApiError::Invalid("name too long".into()),
                422,
                "invalid_request",
            ),
            (KeyError::Missing.into(), 400, "invalid_idempotency_key"),
            (ClaimError::Mismatch.into(), 422, "idempotency_key_reused"),
            (ClaimError::Incomplete.into(), 409, "idempotency_key_in_use"),
            (ApiError::NotFound, 404, "not_found"),
            (SoldOut.into(), 409, "insufficient_stock"),
        ];
        for (error, status, code) in cases {
            let description = error.to_string();
            let (actual, body) = answer(error).await;
            assert_eq!(actual.as_u16(), status, "{description}");
            assert_eq!(body["error"], code, "{description}");
            assert_eq!(body["error_description"], description);
        }
    }

    #[tokio::test]
    async fn database_failures_say_no_more_than_database_error() {
        for (error, status) in [
            (sqlx::Error::PoolTimedOut, 503),
            (sqlx::Error::RowNotFound, 500),
        ] {
            let (actual, body) = answer(ApiError::Db(error)).await;
            assert_eq!(actual.as_u16(), status);
            assert_eq!(
                body,
                serde_json::json!({ "error": "server_error", "error_description": "database error" })
            );
        }
        let (actual, _) = answer(ClaimError::Db(sqlx::Error::PoolClosed).into()).await;
        assert_eq!(actual.as_u16(), 503);
    }
}
