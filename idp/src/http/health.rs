//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve:
//! database reachable and a signing key active).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut failing = Vec::new();
    if !platform::db::is_reachable(&state.db).await {
        failing.push("database");
    }
    if !state.keys.has_signer() {
        failing.push("signing_key");
    }
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "failing": failing})),
        )
    }
}
