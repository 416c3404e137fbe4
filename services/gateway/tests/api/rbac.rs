//! Coarse RBAC at the gateway: every route's allow rules, denied and allowed.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::Stack;

#[sqlx::test(migrations = false)]
async fn each_route_denies_callers_without_the_role_or_scope_and_admits_those_with_it(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let alice = stack.signed_in("alice").await; // customer
    let carol = stack.signed_in("carol").await; // customer, support
    let bob = stack.signed_in("bob").await; // admin
    let item = json!({"name": "Widget", "price_cents": 100, "stock": 5});

    let denied = [
        // refunds: role admin or support
        (
            &alice,
            Method::POST,
            "/api/payments/c1/refund",
            "role admin or role support",
        ),
        // stock changes: role admin
        (
            &alice,
            Method::PUT,
            "/api/inventory/items/SKU-1",
            "role admin",
        ),
        (
            &carol,
            Method::PUT,
            "/api/inventory/items/SKU-1",
            "role admin",
        ),
    ];
    for (who, method, path, needed) in denied {
        let response = who.api(method.clone(), path, Some(item.clone())).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(response.headers()["x-baton-denied-by"], "gateway");
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error_description"].as_str().unwrap().contains(needed),
            "{body}"
        );
    }

    let allowed = [
        (
            &carol,
            Method::POST,
            "/api/payments/c1/refund",
            "/charges/c1/refund",
        ),
        (
            &bob,
            Method::POST,
            "/api/payments/c1/refund",
            "/charges/c1/refund",
        ),
        (
            &bob,
            Method::PUT,
            "/api/inventory/items/SKU-1",
            "/items/SKU-1",
        ),
        (&alice, Method::POST, "/api/orders", "/orders"),
        (&alice, Method::GET, "/api/orders", "/orders"),
        (&alice, Method::GET, "/api/payments", "/charges"),
        (&alice, Method::GET, "/api/inventory/items", "/items"),
    ];
    for (who, method, path, upstream) in allowed {
        let response = who.api(method.clone(), path, Some(item.clone())).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        assert_eq!(response.json::<Value>().await.unwrap()["path"], upstream);
    }
}

#[sqlx::test(migrations = false)]
async fn placing_an_order_needs_the_orders_write_scope(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    // The reporter client's token: orders:read only, no roles.
    let token = stack.reporter_token().await;
    let client = reqwest::Client::new();
    let post = client
        .post(stack.url("/api/orders"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    let body: Value = post.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("scope orders:write"),
        "{body}"
    );
    for path in ["/api/payments/c1/refund"] {
        let response = client
            .post(stack.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let put = client
        .put(stack.url("/api/inventory/items/SKU-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    // What it may do, it can.
    let get = client
        .get(stack.url("/api/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
}
