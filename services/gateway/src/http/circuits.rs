//! `GET /circuits`: each route's instances and the state of their circuit
//! breakers (`closed`, `open` with the seconds left, `half_open`), for
//! operators and the demo page. Upstream addresses are not shown (they are
//! internal); instances are numbered in route-table order.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::retry_after_secs;

pub fn router() -> Router<AppState> {
    Router::new().route("/circuits", get(circuits))
}

async fn circuits(State(app): State<AppState>) -> Json<Value> {
    let mut routes: Vec<Value> = app
        .routes
        .routes()
        .map(|route| {
            let instances: Vec<Value> = route
                .instances()
                .iter()
                .enumerate()
                .map(|(i, instance)| {
                    let (phase, left) = instance.breaker.phase();
                    let mut value = json!({
                        "instance": i,
                        "state": phase,
                        "consecutive_failures": instance.breaker.consecutive_failures(),
                    });
                    if let Some(left) = left {
                        value["retry_after"] = retry_after_secs(left).into();
                    }
                    value
                })
                .collect();
            json!({"route": route.name, "instances": instances})
        })
        .collect();
    routes.sort_by(|a, b| a["route"].as_str().cmp(&b["route"].as_str()));
    Json(json!({ "routes": routes }))
}
