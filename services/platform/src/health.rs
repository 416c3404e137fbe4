//! `/healthz` and `/readyz`, the same in every service.
//!
//! ```ignore
//! let health = platform::health::Readiness::new()
//!     .database(pool.clone())
//!     .jwks(&guard) // from guard::monitoring::GuardChecks
//!     .router();
//! let app = Router::new().merge(api).merge(health);
//! ```
//!
//! * `GET /healthz` — the process is up: always `200 {"status":"ok"}`.
//! * `GET /readyz` — runs every check concurrently (each bounded to 2 s):
//!   `200 {"status":"ready","checks":{...}}`, or `503 {"status":"not_ready",
//!   "not_ready":["jwks"],"checks":{...}}` naming what is not ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Time allowed to one readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The outcome of one readiness check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub ready: bool,
    /// Shown under the check's name in the `/readyz` body.
    pub detail: Value,
}

impl CheckResult {
    /// Ready, no detail.
    pub fn ok() -> Self {
        Self {
            ready: true,
            detail: json!({ "ready": true }),
        }
    }

    /// Not ready, because `reason`.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            ready: false,
            detail: json!({ "ready": false, "error": reason.into() }),
        }
    }
}

/// The checks behind `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, CheckFn)>,
}

impl Readiness {
    /// No checks yet: `/readyz` answers ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// The database answers `SELECT 1` (check `database`).
    pub fn database(self, pool: PgPool) -> Self {
        self.check("database", move || {
            let pool = pool.clone();
            async move {
                if crate::db::is_reachable(&pool).await {
                    CheckResult::ok()
                } else {
                    CheckResult::failed("database unreachable")
                }
            }
        })
    }

    /// Any other check, named `name`.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Runs every check; returns whether all are ready, and the JSON body.
    pub async fn run(&self) -> (bool, Value) {
        let results =
            futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
                let result = tokio::time::timeout(CHECK_TIMEOUT, check())
                    .await
                    .unwrap_or_else(|_| CheckResult::failed("check timed out"));
                (*name, result)
            }))
            .await;
        let not_ready: Vec<&str> = results
            .iter()
            .filter(|(_, r)| !r.ready)
            .map(|(n, _)| *n)
            .collect();
        let checks: serde_json::Map<String, Value> = results
            .into_iter()
            .map(|(name, r)| (name.to_owned(), r.detail))
            .collect();
        let ready = not_ready.is_empty();
        let body = if ready {
            json!({ "status": "ready", "checks": checks })
        } else {
            json!({ "status": "not_ready", "not_ready": not_ready, "checks": checks })
        };
        (ready, body)
    }

    /// The `/healthz` and `/readyz` routes, mergeable into any router.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let readiness = Arc::new(self);
        Router::new()
            .route(
                "/healthz",
                get(|| async { Json(json!({ "status": "ok" })) }),
            )
            .route(
                "/readyz",
                get(move || {
                    let readiness = readiness.clone();
                    async move {
                        let (ready, body) = readiness.run().await;
                        let status = if ready {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        (status, Json(body)).into_response()
                    }
                }),
            )
    }
}
