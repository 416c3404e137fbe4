//! The RBAC matrix of DESIGN.md, end to end through the gateway: each row
//! with the callers it admits and the callers it refuses, at the layer that
//! is meant to refuse them (gateway: coarse; service: fine-grained).

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::happy_path::place_order;
use crate::harness::{Browser, Stack, User, call_with_token, cli_token};

fn ids(list: &Value) -> Vec<String> {
    list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

/// `GET /api/orders`: signed in; a customer sees their own orders, support
/// and admin see all.
#[tokio::test]
async fn listing_orders_shows_customers_their_own_and_support_and_admin_all() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let carol = Browser::sign_in(&stack, User::Carol).await;
    let bob = Browser::sign_in(&stack, User::Bob).await;
    let alices = place_order(&alice, "jwt-stickers", 1).await["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let carols = place_order(&carol, "jwt-stickers", 1).await["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, list) = alice.get("/api/orders").await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&list),
        [alices.as_str()],
        "alice sees only her own order"
    );
    let (status, _) = alice.get(&format!("/api/orders/{carols}")).await;
    assert_eq!(
        status, 404,
        "someone else's order is not found, so ids do not leak"
    );

    for (who, browser) in [("carol (support)", &carol), ("bob (admin)", &bob)] {
        let (status, list) = browser.get("/api/orders").await;
        assert_eq!(status, 200, "{who}");
        let mut seen = ids(&list);
        seen.sort();
        let mut all = vec![alices.clone(), carols.clone()];
        all.sort();
        assert_eq!(seen, all, "{who} sees every order");
        let (status, _) = browser.get(&format!("/api/orders/{alices}")).await;
        assert_eq!(status, 200, "{who} may open alice's order");
    }

    let (status, _) = Browser::new(&stack).get("/api/orders").await;
    assert_eq!(status, 401, "signed out");
}

/// `POST /api/orders` from the browser: the gateway lets the scope through,
/// the order service wants the `customer` role.
#[tokio::test]
async fn placing_an_order_needs_the_customer_role() {
    let stack = Stack::start().await;
    let order = json!({ "lines": [{ "sku": "baton-tee", "quantity": 1 }] });

    let bob = Browser::sign_in(&stack, User::Bob).await;
    let (status, body) = bob.post("/api/orders", &order).await;
    assert_eq!(status, 403, "admin without the customer role: {body}");

    let carol = Browser::sign_in(&stack, User::Carol).await;
    let (status, body) = carol.post("/api/orders", &order).await;
    assert_eq!(status, 201, "carol is a customer too: {body}");

    let (status, _) = Browser::new(&stack).post("/api/orders", &order).await;
    assert_eq!(status, 401, "signed out");
}

/// `POST /api/orders` from an API client with its own token: the gateway
/// wants the `orders:write` scope before anything reaches order.
#[tokio::test]
async fn an_api_client_places_an_order_only_with_the_orders_write_scope() {
    let stack = Stack::start().await;
    let order = json!({ "lines": [{ "sku": "baton-tee", "quantity": 1 }] });
    let orders_url = stack.gateway.join("api/orders").unwrap();

    let full = cli_token(&stack, User::Alice, "openid orders:read orders:write").await;
    let (status, body, _) = call_with_token(
        Method::POST,
        orders_url.clone(),
        Some(full.as_str()),
        Some(&order),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a customer's token with orders:write: {body}"
    );
    assert_eq!(
        body["relay"][0]["client_id"], "cli",
        "the API client's own token was relayed"
    );

    let read_only = cli_token(&stack, User::Alice, "openid orders:read").await;
    let (status, body, headers) = call_with_token(
        Method::POST,
        orders_url.clone(),
        Some(read_only.as_str()),
        Some(&order),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no orders:write: {body}");
    let challenge = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.contains("insufficient_scope"),
        "WWW-Authenticate names the problem: {challenge:?}"
    );

    let (status, list, _) = call_with_token(
        Method::GET,
        orders_url.clone(),
        Some(read_only.as_str()),
        None,
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "orders:read may list: {list}");
    assert_eq!(
        ids(&list).len(),
        1,
        "only the permitted order exists: {list}"
    );

    let (status, _, _) = call_with_token(
        Method::POST,
        orders_url,
        Some("not-a-token"),
        Some(&order),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a garbage token");
}

/// `POST /api/payments/{id}/refund`: role admin or support at the gateway;
/// payment lets support refund only up to a limit, admin any amount.
#[tokio::test]
async fn refunds_need_support_or_admin_and_only_admin_goes_above_the_limit() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let carol = Browser::sign_in(&stack, User::Carol).await;
    let bob = Browser::sign_in(&stack, User::Bob).await;
    // 3 handbooks at 39.00: 117.00, above support's default limit of 100.00.
    let placed = place_order(&alice, "oidc-handbook", 3).await;
    let charge = placed["order"]["charge_id"]
        .as_str()
        .expect("charge id")
        .to_owned();
    let refund = format!("/api/payments/{charge}/refund");

    let (status, body) = alice
        .post(&refund, &json!({ "amount_cents": 100, "reason": "mine" }))
        .await;
    assert_eq!(
        status, 403,
        "a customer cannot refund, not even her own charge: {body}"
    );

    let (status, body) = carol
        .post(
            &refund,
            &json!({ "amount_cents": 1000, "reason": "scratched" }),
        )
        .await;
    assert_eq!(status, 201, "support refunds within the limit: {body}");
    assert_eq!(body["charge"]["refunded_cents"], 1000);

    let (status, body) = carol
        .post(&refund, &json!({ "amount_cents": 9500, "reason": "more" }))
        .await;
    assert_eq!(
        status, 403,
        "support cannot go above the limit in total: {body}"
    );

    let (status, body) = bob.post(&refund, &json!({ "reason": "the rest" })).await;
    assert_eq!(status, 201, "admin refunds any amount: {body}");
    assert_eq!(body["charge"]["refunded_cents"], 3 * 3900);
}

/// Past `PAYMENT_STEP_UP_ABOVE_CENTS` (200.00) in total, payment asks for a
/// recent second factor (RFC 9470), even of an admin, and the gateway relays
/// the answer as it is (its `WWW-Authenticate` too: the proxy's own tests);
/// below it, the same admin refunds.
#[tokio::test]
async fn a_large_refund_asks_for_a_second_factor_through_the_gateway() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let bob = Browser::sign_in(&stack, User::Bob).await;
    // 6 handbooks at 39.00: 234.00.
    let placed = place_order(&alice, "oidc-handbook", 6).await;
    let charge = placed["order"]["charge_id"].as_str().expect("charge id");
    let refund = format!("/api/payments/{charge}/refund");

    let (status, body) = bob.post(&refund, &json!({ "reason": "all of it" })).await;
    assert_eq!(status, 401, "a password sign-in is not enough: {body}");
    assert_eq!(body["error"], "insufficient_user_authentication");

    let (status, body) = bob
        .post(
            &refund,
            &json!({ "amount_cents": 20_000, "reason": "most" }),
        )
        .await;
    assert_eq!(status, 201, "up to the threshold, no step-up: {body}");
    let (status, body) = bob
        .post(
            &refund,
            &json!({ "amount_cents": 1, "reason": "one more cent" }),
        )
        .await;
    assert_eq!(status, 401, "past it in total: {body}");
    assert_eq!(body["error"], "insufficient_user_authentication");
}

/// `PUT /api/inventory/items/{sku}`: role admin at the gateway; role admin
/// and scope `inventory:write` at inventory.
#[tokio::test]
async fn changing_an_item_needs_the_admin_role() {
    let stack = Stack::start().await;
    let path = "/api/inventory/items/baton-mug";

    for user in [User::Alice, User::Carol] {
        let browser = Browser::sign_in(&stack, user).await;
        let (status, body) = browser.call(Method::PUT, path, Some(&new_mug())).await;
        assert_eq!(status, 403, "{user:?} is not admin: {body}");
    }

    let bob = Browser::sign_in(&stack, User::Bob).await;
    let (status, body) = bob.call(Method::PUT, path, Some(&new_mug())).await;
    assert_eq!(status, 200, "admin with inventory:write: {body}");
    assert_eq!(body["price_cents"], 1300);

    let (status, items) = bob.get("/api/inventory/items").await;
    assert_eq!(status, 200);
    assert_eq!(
        mug_stock(&items),
        Some(json!(7)),
        "the admin's change applied"
    );
}

/// An admin whose token lacks `inventory:write` passes the gateway's role
/// check and is refused by inventory itself (the fine-grained layer).
#[tokio::test]
async fn changing_an_item_needs_the_inventory_write_scope_at_the_service() {
    let stack = Stack::start().await;
    let url = stack.gateway.join("api/inventory/items/baton-mug").unwrap();
    let narrow = cli_token(&stack, User::Bob, "openid inventory:read").await;
    let (status, body, _) = call_with_token(
        Method::PUT,
        url,
        Some(narrow.as_str()),
        Some(&new_mug()),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "admin without inventory:write: {body}"
    );
    assert_eq!(body["error"], "insufficient_scope", "{body}");

    let items_url = stack.gateway.join("api/inventory/items").unwrap();
    let (status, items, _) = call_with_token(
        Method::GET,
        items_url,
        Some(narrow.as_str()),
        None,
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mug_stock(&items), Some(json!(100)), "nothing changed");
}

fn new_mug() -> Value {
    json!({ "name": "Baton mug", "description": "Now in blue.", "price_cents": 1300, "stock": 7 })
}

fn mug_stock(items: &Value) -> Option<Value> {
    items["items"]
        .as_array()?
        .iter()
        .find(|i| i["sku"] == "baton-mug")
        .map(|m| m["stock"].clone())
}
