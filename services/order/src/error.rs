//! The ways an order request fails that are order's own; the others (token,
//! JSON, lines, idempotency keys, not found, database) are guard's
//! [`ApiError`](platform::ApiError), which answers for all of them in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use guard::RelayError;
use platform::DomainError;
use platform::error_body::json_error;

/// Every way an order request can fail.
pub type AppError = platform::ApiError<OrderError>;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("the order with this Idempotency-Key is still being placed")]
    InProgress,
    #[error(
        "the order with this Idempotency-Key was left unfinished and failed; place it again with a new key"
    )]
    Failed,
    #[error("the payment was declined ({0}); the order was not placed and its stock was released")]
    PaymentDeclined(String),
    /// inventory or payment could not be asked, or refused the call.
    #[error(transparent)]
    Relay(RelayError),
}

impl DomainError for OrderError {
    fn response(self) -> Response {
        match self {
            Self::InProgress => json_error(StatusCode::CONFLICT, "order_in_progress", self),
            Self::Failed => json_error(StatusCode::CONFLICT, "order_failed", self),
            Self::PaymentDeclined(_) => {
                json_error(StatusCode::PAYMENT_REQUIRED, "payment_declined", self)
            }
            Self::Relay(e) => relay_error(e),
        }
    }
}

/// A service that could not be reached, timed out or failed is a 503 naming
/// it (`payment_unavailable`): the order was not placed, and retrying later may
/// work. A refusal (401, 403, 409 out of stock, 422 unknown sku, …) is
/// answered as guard's relay error maps it, with the service's description.
fn relay_error(e: RelayError) -> Response {
    if !e.is_upstream_failure() {
        return e.into_response();
    }
    let service = e.service();
    tracing::warn!(service, error = %e, "order not placed: downstream unavailable");
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("{service}_unavailable"),
        format!(
            "{service} is unavailable, so the order was not placed (any reserved stock was released); try again later"
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
