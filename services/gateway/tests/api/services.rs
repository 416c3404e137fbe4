//! The gateway in front of the real services: the relay end to end.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Options, Stack};

#[sqlx::test(migrations = false)]
async fn an_order_placed_in_the_browser_is_validated_at_every_hop_for_the_same_user(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(
        pool,
        connect,
        Options {
            real_services: true,
            ..Default::default()
        },
    )
    .await;
    let alice = stack.signed_in("alice").await;
    let carol = stack.signed_in("carol").await;
    let bob = stack.signed_in("bob").await;
    let alice_sub = alice.session().await["user"]["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only an admin stocks the shop: the gateway stops the others.
    let item = json!({"name": "Relay baton", "description": "Aluminium, 30 cm", "price_cents": 1250, "stock": 10});
    let denied = alice
        .api(
            Method::PUT,
            "/api/inventory/items/BATON-1",
            Some(item.clone()),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(denied.headers()["x-baton-denied-by"], "gateway");
    let stocked = bob
        .api(Method::PUT, "/api/inventory/items/BATON-1", Some(item))
        .await;
    assert_eq!(
        stocked.status(),
        StatusCode::CREATED,
        "{:?}",
        stocked.text().await
    );

    let items: Value = alice
        .get("/api/inventory/items")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(items["items"][0]["sku"], "BATON-1");

    // Alice orders: gateway → order → inventory (reserve) and payment (charge).
    let placed = alice
        .api(
            Method::POST,
            "/api/orders",
            Some(json!({"lines": [{"sku": "BATON-1", "quantity": 2}]})),
        )
        .await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let gateway_hop: Value =
        serde_json::from_str(placed.headers()["x-baton-relay"].to_str().unwrap()).unwrap();
    assert_eq!(gateway_hop["sub"], alice_sub.as_str());
    let placed: Value = placed.json().await.unwrap();
    let hops = placed["relay"].as_array().unwrap();
    let services: Vec<&str> = hops
        .iter()
        .map(|h| h["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["order", "inventory", "payment"]);
    for hop in hops {
        assert_eq!(hop["sub"], alice_sub.as_str(), "every hop validated alice");
        assert_eq!(hop["client_id"], "gateway");
    }
    // Plain relay at the gateway (this table), exchange at order: order saw
    // the session's token, inventory and payment a token each, order acting.
    for (hop, service) in hops[1..].iter().zip(["inventory", "payment"]) {
        assert_ne!(hop["jti"], hops[0]["jti"]);
        assert_eq!(hop["aud"], json!([service]));
        assert_eq!(hop["actors"], json!(["order"]));
    }
    let order = &placed["order"];
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total_cents"], 2500);

    // Alice sees her order; carol (support) sees everyone's.
    let mine: Value = alice.get("/api/orders").await.json().await.unwrap();
    assert_eq!(mine["orders"].as_array().unwrap().len(), 1);
    let all: Value = carol.get("/api/orders").await.json().await.unwrap();
    assert_eq!(all["orders"].as_array().unwrap().len(), 1);
    let theirs: Value = bob.get("/api/orders").await.json().await.unwrap();
    assert_eq!(theirs["orders"][0]["id"], order["id"]);

    // One order by id, and the charge behind it.
    let id = order["id"].as_str().unwrap();
    let one: Value = alice
        .get(&format!("/api/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], order["id"]);
    let charges: Value = alice.get("/api/payments").await.json().await.unwrap();
    assert_eq!(charges["charges"][0]["id"], order["charge_id"]);
    assert_eq!(charges["charges"][0]["amount_cents"], 2500);

    // Refunds: the gateway refuses a customer; support may, and payment says who validated.
    let charge = order["charge_id"].as_str().unwrap();
    let refund = format!("/api/payments/{charge}/refund");
    let by_alice = alice
        .api(
            Method::POST,
            &refund,
            Some(json!({"reason": "changed my mind"})),
        )
        .await;
    assert_eq!(by_alice.status(), StatusCode::FORBIDDEN);
    assert_eq!(by_alice.headers()["x-baton-denied-by"], "gateway");
    let by_carol = carol
        .api(Method::POST, &refund, Some(json!({"reason": "damaged"})))
        .await;
    assert_eq!(
        by_carol.status(),
        StatusCode::CREATED,
        "{:?}",
        by_carol.text().await
    );
    let answer: Value = by_carol.json().await.unwrap();
    assert_eq!(answer["validated"]["service"], "payment");
    assert!(
        answer["validated"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "support")
    );
    assert_eq!(answer["charge"]["refunded_cents"], 2500);

    // A service's own refusal passes through with its status (not the gateway's doing).
    let again = carol
        .api(Method::POST, &refund, Some(json!({"reason": "twice"})))
        .await;
    assert!(again.status().is_client_error(), "{}", again.status());
    assert!(again.headers().get("x-baton-denied-by").is_none());
}

#[sqlx::test(migrations = false)]
async fn a_stopped_service_gives_502_and_the_rest_keeps_working(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut stack = Stack::with(
        pool,
        connect,
        Options {
            real_services: true,
            ..Default::default()
        },
    )
    .await;
    let alice = stack.signed_in("alice").await;
    stack.stop_payment().await;
    let payments = alice.get("/api/payments").await;
    assert_eq!(payments.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(alice.get("/api/orders").await.status(), StatusCode::OK);
    assert_eq!(
        alice.get("/api/inventory/items").await.status(),
        StatusCode::OK
    );
}
