//! The ways an inventory request fails that are inventory's own; the others
//! (token, JSON, lines, idempotency keys, not found, database) are guard's
//! [`ApiError`](platform::ApiError), which answers for all of them in one place.

use axum::http::StatusCode;
use axum::response::Response;
use platform::DomainError;
use platform::error_body::json_error;

/// Every way an inventory request can fail.
pub type AppError = platform::ApiError<InventoryError>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no item has the sku {0:?}")]
    UnknownSku(String),
    #[error("not enough stock of {sku:?}: {available} left")]
    InsufficientStock { sku: String, available: i32 },
    #[error("the reservation is committed to a paid order and cannot be released")]
    ReservationCommitted,
    #[error("the reservation was released and cannot be committed")]
    ReservationReleased,
}

impl DomainError for InventoryError {
    fn response(self) -> Response {
        let (status, code) = match self {
            Self::UnknownSku(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku"),
            Self::InsufficientStock { .. } => (StatusCode::CONFLICT, "insufficient_stock"),
            Self::ReservationCommitted => (StatusCode::CONFLICT, "reservation_committed"),
            Self::ReservationReleased => (StatusCode::CONFLICT, "reservation_released"),
        };
        json_error(status, code, self)
    }
}
