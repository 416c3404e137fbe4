//! The ways a payment request fails that are payment's own; the others
//! (token, JSON, idempotency keys, not found, database) are guard's
//! [`ApiError`](platform::ApiError), which answers for all of them in one place.
//! (A declined charge is not an error: it is a recorded charge answered with 402.)

use axum::http::StatusCode;
use axum::response::Response;
use platform::DomainError;
use platform::error_body::json_error;

/// Every way a payment request can fail.
pub type AppError = platform::ApiError<PaymentError>;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("a charge can only be made for the token's own subject")]
    OtherSubject,
    #[error(
        "support may refund at most {limit_cents} cents of a charge in total; more requires role admin"
    )]
    AboveSupportLimit { limit_cents: i64 },
    #[error("a declined charge cannot be refunded")]
    NotRefundable,
    #[error("the refund exceeds what is left of the charge ({left_cents} cents)")]
    RefundTooLarge { left_cents: i64 },
}

impl DomainError for PaymentError {
    fn response(self) -> Response {
        let (status, code) = match self {
            Self::OtherSubject => (StatusCode::FORBIDDEN, "access_denied"),
            Self::AboveSupportLimit { .. } => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Self::NotRefundable => (StatusCode::CONFLICT, "not_refundable"),
            Self::RefundTooLarge { .. } => (StatusCode::CONFLICT, "refund_too_large"),
        };
        json_error(status, code, self)
    }
}
