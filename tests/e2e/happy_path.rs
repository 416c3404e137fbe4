//! What a newcomer does first: sign in as alice through the gateway, look at
//! the products, place an order, see it listed, with the relay chain showing
//! that every hop validated the same user, each with a token of its own.

use serde_json::{Value, json};

use crate::harness::{Browser, Stack, User};

/// The stock of `sku` as the gateway lists it.
pub async fn stock_of(browser: &Browser, sku: &str) -> i64 {
    let (status, body) = browser.get("/api/inventory/items").await;
    assert_eq!(status, 200, "list items: {body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["sku"] == sku)
        .and_then(|i| i["stock"].as_i64())
        .unwrap_or_else(|| panic!("{sku} is not listed: {body}"))
}

/// Places an order of `quantity` × `sku` and returns the answer (201).
pub async fn place_order(browser: &Browser, sku: &str, quantity: i64) -> Value {
    let (status, placed) = browser
        .post(
            "/api/orders",
            &json!({ "lines": [{ "sku": sku, "quantity": quantity }] }),
        )
        .await;
    assert_eq!(status, 201, "place an order: {placed}");
    placed
}

#[tokio::test]
async fn alice_signs_in_places_an_order_and_sees_it_with_the_relay_chain() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;

    let before = stock_of(&alice, "baton-mug").await;
    let placed = place_order(&alice, "baton-mug", 2).await;
    let order = &placed["order"];
    assert_eq!(order["status"], "paid", "{placed}");
    assert_eq!(order["total_cents"], 2 * 1200, "two mugs at the demo price");
    assert_eq!(
        stock_of(&alice, "baton-mug").await,
        before - 2,
        "stock was reserved"
    );

    // The relay: order, then inventory and payment, each validated a token
    // for itself alone (aud), exchanged on the way (per_hop.rs checks the
    // chain), for alice the customer.
    let relay = placed["relay"].as_array().expect("relay chain");
    let services: Vec<&str> = relay.iter().filter_map(|h| h["service"].as_str()).collect();
    assert_eq!(services, ["order", "inventory", "payment"], "{placed}");
    let first = &relay[0];
    for hop in relay {
        assert_eq!(hop["sub"], first["sub"], "every hop saw the same subject");
        assert_eq!(
            hop["aud"],
            json!([hop["service"]]),
            "every hop validated a token for itself alone"
        );
        assert_eq!(
            hop["client_id"], "gateway",
            "the token was issued to the gateway"
        );
        assert_eq!(hop["roles"], json!(["customer"]), "alice is a customer");
    }
    assert_eq!(
        order["owner"], first["sub"],
        "the order belongs to the caller"
    );

    let (status, list) = alice.get("/api/orders").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&Value> = list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| &o["id"])
        .collect();
    assert_eq!(ids, [&order["id"]], "alice sees her order");

    let (status, shown) = alice
        .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["id"], order["id"]);
}
