use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, expect};

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn any_valid_token_lists_the_seeded_demo_items(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.alice();
    let body = expect(
        app.request(Method::GET, "/items", Some(&token))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let skus: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(
        skus,
        [
            "baton-mug",
            "baton-tee",
            "gold-keyboard",
            "jwt-stickers",
            "oidc-handbook"
        ]
    );
    let mug = &body["items"][0];
    assert_eq!(mug["price_cents"], 1200);
    assert_eq!(mug["stock"], 100);

    let low = app
        .request(Method::GET, "/items?stock_below=25", Some(&token))
        .send()
        .await
        .unwrap();
    let low = expect(low, StatusCode::OK).await;
    let skus: Vec<&str> = low["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["gold-keyboard", "oidc-handbook"]);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn every_endpoint_refuses_a_request_without_a_token_even_with_identity_headers(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let calls = [
        (Method::GET, "/items"),
        (Method::PUT, "/items/baton-mug"),
        (Method::POST, "/reservations"),
        (
            Method::DELETE,
            "/reservations/0190b6c4-0000-7000-8000-000000000000",
        ),
        (Method::GET, "/audit"),
    ];
    for (method, path) in calls {
        let response = app
            .request(method.clone(), path, None)
            .header("X-User-Id", "bob")
            .header("X-User-Roles", "admin")
            .header("X-Forwarded-User", "bob")
            .header("Idempotency-Key", "k")
            .json(&json!({ "name": "x", "price_cents": 1, "stock": 1, "lines": [] }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    assert_eq!(app.stock("baton-mug").await, 100);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn a_token_for_another_audience_or_a_forged_one_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let other_audience = app
        .issuer
        .token()
        .sub("x")
        .roles(&["customer"])
        .aud(&["order", "payment"])
        .sign();
    let unsigned = app
        .issuer
        .token()
        .sub("x")
        .header("alg", "none")
        .sign_unsigned();
    for token in [other_audience, unsigned] {
        let response = app
            .request(Method::GET, "/items", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn putting_an_item_needs_role_admin_and_scope_inventory_write(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let item = json!({ "name": "Baton mug", "description": "Now bigger.", "price_cents": 1500, "stock": 7 });
    let customer_with_scope = app.token("c", &["customer"], "inventory:write");
    let admin_without_scope = app.token("a", &["admin"], "inventory:read");
    for token in [customer_with_scope, admin_without_scope, app.carol()] {
        let response = app
            .request(Method::PUT, "/items/baton-mug", Some(&token))
            .json(&item)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
    }
    assert_eq!(app.stock("baton-mug").await, 100);

    let bob = app.bob();
    let updated = app
        .request(Method::PUT, "/items/baton-mug", Some(&bob))
        .json(&item)
        .send()
        .await
        .unwrap();
    let updated = expect(updated, StatusCode::OK).await;
    assert_eq!(
        (updated["price_cents"].as_i64(), updated["stock"].as_i64()),
        (Some(1500), Some(7))
    );
    assert_eq!(app.stock("baton-mug").await, 7);

    let created = app
        .request(Method::PUT, "/items/new-thing", Some(&bob))
        .json(&item)
        .send()
        .await
        .unwrap();
    expect(created, StatusCode::CREATED).await;
    assert_eq!(app.audit_actions().await, ["item.put", "item.put"]);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn an_invalid_item_is_refused_and_changes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let bob = app.bob();
    let cases = [
        (
            "/items/baton-mug",
            json!({ "name": "", "price_cents": 1, "stock": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/baton-mug",
            json!({ "name": "x", "price_cents": -1, "stock": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/baton-mug",
            json!({ "name": "x", "price_cents": 1, "stock": -5 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/baton-mug",
            json!({ "name": "x", "price_cents": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/baton-mug",
            json!({ "name": "x", "price_cents": 1, "stock": 1, "owner": "me" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/baton-mug",
            json!({ "name": "mug\0", "price_cents": 1, "stock": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/items/-bad",
            json!({ "name": "x", "price_cents": 1, "stock": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (path, body, status) in cases {
        let response = app
            .request(Method::PUT, path, Some(&bob))
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect(response, status).await;
        assert_eq!(error["error"], "invalid_request", "{body}");
    }
    let response = app
        .request(Method::PUT, "/items/baton-mug", Some(&bob))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.stock("baton-mug").await, 100);
    assert!(app.audit_actions().await.is_empty());
}
