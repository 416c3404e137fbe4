//! The JSON error body every resource server answers with:
//! `{"error": "<code>", "error_description": "<human text>"}`, the shape of
//! OAuth errors (RFC 6749 §5.2), so clients parse one format everywhere.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub fn json_error(status: StatusCode, code: &str, description: impl std::fmt::Display) -> Response {
    let body = json!({ "error": code, "error_description": description.to_string() });
    (status, Json(body)).into_response()
}

/// A database failure: 503 when the database is unreachable or saturated
/// (retrying later can help), 500 otherwise. Details go to the log only.
pub fn database_error(e: &sqlx::Error) -> Response {
    let status = match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::error!(error = %e, "database error");
    json_error(status, "server_error", "database error")
}
