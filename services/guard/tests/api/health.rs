//! `/healthz` and `/readyz` over a real server, with real PostgreSQL and a
//! real issuer.

use guard::monitoring::GuardChecks;
use guard::testing::TestIssuer;
use guard::{Guard, JwksState};
use platform::health::{CheckResult, Readiness};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::{issuer_and_guard, serve};

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn ready_when_the_database_answers_and_keys_are_loaded() {
    let (_issuer, guard) = issuer_and_guard().await;
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let base = serve(Readiness::new().database(pool).jwks(&guard).router()).await;

    assert_eq!(
        get(format!("{base}/healthz")).await,
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["ready"], true);
    assert_eq!(body["checks"]["jwks"]["state"], "ready");
    assert_eq!(body["checks"]["jwks"]["kids"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn not_ready_names_what_is_missing() {
    let issuer = TestIssuer::start().await;
    issuer.stop().await;
    let guard = Guard::new(issuer.config("order"));
    assert!(
        !guard
            .wait_ready(std::time::Duration::from_millis(200))
            .await
    );
    // A pool to a port where no database listens.
    let dead_pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let readiness = Readiness::new()
        .database(dead_pool)
        .jwks(&guard)
        .check("payment", || async { CheckResult::failed("circuit open") })
        .check("cache", || async { CheckResult::ok() });
    let base = serve(readiness.router()).await;

    assert_eq!(
        get(format!("{base}/healthz")).await.0,
        200,
        "liveness does not depend on anything"
    );
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        body["not_ready"],
        serde_json::json!(["database", "jwks", "payment"])
    );
    assert_eq!(
        body["checks"]["jwks"]["state"],
        serde_json::to_value(JwksState::Unavailable).unwrap()
    );
    assert_eq!(body["checks"]["payment"]["error"], "circuit open");
    assert_eq!(body["checks"]["cache"]["ready"], true);
}

#[tokio::test]
async fn stale_keys_while_the_idp_is_down_still_count_as_ready() {
    let (issuer, guard) = issuer_and_guard().await;
    issuer.stop().await;
    let _ = guard.refresh_keys().await;
    let base = serve(Readiness::new().jwks(&guard).router()).await;
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["jwks"]["state"], "stale");
    assert!(body["checks"]["jwks"]["last_error"].is_string());
}
