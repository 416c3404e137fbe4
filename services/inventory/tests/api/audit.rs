use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{ALICE, TestApp, expect};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn each_change_is_audited_with_who_which_token_and_trace_and_only_admins_read_it(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let token = app
        .issuer
        .token()
        .sub(ALICE)
        .roles(&["customer"])
        .client_id("gateway");
    let jti = token.claims()["jti"].as_str().unwrap().to_owned();
    let token = token.sign();
    let response = app
        .request(Method::POST, "/reservations", Some(&token))
        .header("Idempotency-Key", "audit-1")
        .header("traceparent", TRACEPARENT)
        .json(&json!({ "lines": [{ "sku": "baton-mug", "quantity": 1 }] }))
        .send()
        .await
        .unwrap();
    let reservation = expect(response, StatusCode::CREATED).await;

    // An exchanged token names the calling service in `act`.
    let exchanged = app
        .issuer
        .token()
        .sub(ALICE)
        .roles(&["customer"])
        .claim("act", json!({ "sub": "order" }))
        .sign();
    let id = reservation["reservation"]["id"].as_str().unwrap();
    expect(app.release(&exchanged, id).await, StatusCode::OK).await;

    for token in [app.alice(), app.carol()] {
        let response = app
            .request(Method::GET, "/audit", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let bob = app.bob();
    let audit = expect(
        app.request(Method::GET, "/audit", Some(&bob))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let (release, create) = (&entries[0], &entries[1]);
    assert_eq!(create["action"], "reservation.create");
    assert_eq!(create["resource"], id);
    assert_eq!(create["sub"], ALICE);
    assert_eq!(create["client_id"], "gateway");
    assert_eq!(create["caller"], "gateway");
    assert_eq!(create["jti"], jti);
    assert_eq!(create["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(release["action"], "reservation.release");
    assert_eq!(release["caller"], "order");
    assert_eq!(release["trace_id"].as_str().unwrap().len(), 32);

    let page = app
        .request(Method::GET, "/audit?limit=1", Some(&bob))
        .send()
        .await
        .unwrap();
    let page = expect(page, StatusCode::OK).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let before = page["entries"][0]["id"].as_i64().unwrap();
    let older = app
        .request(Method::GET, &format!("/audit?before={before}"), Some(&bob))
        .send()
        .await
        .unwrap();
    let older = expect(older, StatusCode::OK).await;
    assert_eq!(older["entries"][0]["action"], "reservation.create");
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn health_is_public_and_readiness_reports_the_database_and_keys(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    expect(health, StatusCode::OK).await;
    // Keys load in the background; a validation forces the first fetch.
    let token = app.alice();
    expect(
        app.request(Method::GET, "/items", Some(&token))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let ready = app
        .request(Method::GET, "/readyz", None)
        .send()
        .await
        .unwrap();
    let ready = expect(ready, StatusCode::OK).await;
    assert_eq!(ready["checks"]["database"]["ready"], true);
    assert_eq!(ready["checks"]["jwks"]["ready"], true);

    app.pool.close().await;
    let ready = app
        .request(Method::GET, "/readyz", None)
        .send()
        .await
        .unwrap();
    let ready = expect(ready, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(ready["not_ready"], json!(["database"]));
}
