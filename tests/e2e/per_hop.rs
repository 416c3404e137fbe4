//! Per-hop tokens over the real stack: the gateway relays to order a token
//! for order alone, order exchanges it for one per downstream service, a
//! token taken at any hop is refused by the others, and every hop records
//! who acted.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::happy_path::place_order;
use crate::harness::{Browser, Stack, User, call_with_token, cli_token, gateway_tokens};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Exchanges `subject` at the IdP as `client` for `audience` with `scope`.
async fn exchange(
    stack: &Stack,
    client: (&str, &str),
    subject: &str,
    audience: &str,
    scope: &str,
) -> String {
    let request = reqwest::Client::new().post(stack.idp.join("token").unwrap());
    let response = guard::client_auth::basic_auth(request, client.0, client.1)
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("audience", audience),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "exchange: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn status_with(stack: &Stack, url: &url::Url, path: &str, token: &str) -> StatusCode {
    let (status, _, _) = call_with_token(
        Method::GET,
        url.join(path).unwrap(),
        Some(token),
        None,
        Default::default(),
    )
    .await;
    let _ = stack;
    status
}

#[tokio::test]
async fn a_token_taken_at_order_is_refused_by_payment_and_inventory() {
    let stack = Stack::start().await;
    // What the gateway relays to order: alice's session token exchanged by
    // the gateway client for order alone (deploy/routes.toml's scopes).
    let session = gateway_tokens(
        &stack,
        User::Alice,
        "openid orders:read orders:write inventory:write payments:write",
    )
    .await;
    let session = session["access_token"].as_str().unwrap();
    let gateway = ("gateway", crate::harness::stack::GATEWAY_CLIENT_SECRET);
    let at_order = exchange(
        &stack,
        gateway,
        session,
        "order",
        "orders:read orders:write inventory:write payments:write",
    )
    .await;
    assert_eq!(
        status_with(&stack, &stack.order, "orders", &at_order).await,
        StatusCode::OK
    );
    for (url, path) in [(&stack.payment, "charges"), (&stack.inventory, "items")] {
        assert_eq!(
            status_with(&stack, url, path, &at_order).await,
            StatusCode::UNAUTHORIZED,
            "{url}{path} refuses a token meant for order"
        );
    }
    // What order sends on to inventory is refused by payment and order.
    let at_inventory = exchange(
        &stack,
        ("order", stack.client_secret("order")),
        &at_order,
        "inventory",
        "inventory:write",
    )
    .await;
    assert_eq!(
        status_with(&stack, &stack.inventory, "items", &at_inventory).await,
        StatusCode::OK
    );
    for (url, path) in [(&stack.payment, "charges"), (&stack.order, "orders")] {
        assert_eq!(
            status_with(&stack, url, path, &at_inventory).await,
            StatusCode::UNAUTHORIZED,
            "{url}{path} refuses a token meant for inventory"
        );
    }
}

#[tokio::test]
async fn every_hop_sees_and_records_the_whole_chain() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let placed = place_order(&alice, "baton-mug", 1).await;
    let relay = placed["relay"].as_array().expect("relay chain");
    let chain: Vec<(&Value, &Value)> = relay.iter().map(|h| (&h["aud"], &h["actors"])).collect();
    assert_eq!(
        chain,
        [
            (&json!(["order"]), &json!(["gateway"])),
            (&json!(["inventory"]), &json!(["order", "gateway"])),
            (&json!(["payment"]), &json!(["order", "gateway"])),
        ],
        "{placed}"
    );
    // The audit rows downstream name user, client and both actors.
    let bob = cli_token(&stack, User::Bob, "openid inventory:read").await;
    for url in [&stack.inventory, &stack.payment] {
        let (status, audit, _) = call_with_token(
            Method::GET,
            url.join("audit").unwrap(),
            Some(&bob),
            None,
            Default::default(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        let newest = &audit["entries"][0];
        assert_eq!(newest["sub"], relay[0]["sub"], "{newest}");
        assert_eq!(newest["client_id"], "gateway", "{newest}");
        assert_eq!(newest["actors"], json!(["order", "gateway"]), "{newest}");
    }
}

#[tokio::test]
async fn an_api_clients_order_through_the_gateway_carries_a_token_per_hop() {
    let stack = Stack::start().await;
    // The public cli client's own token (authorization code + PKCE), as an
    // API client sends it to the gateway.
    let token = cli_token(&stack, User::Alice, "openid orders:read orders:write").await;
    let (status, placed, headers) = call_with_token(
        Method::POST,
        stack.gateway.join("api/orders").unwrap(),
        Some(&token),
        Some(&json!({ "lines": [{ "sku": "baton-mug", "quantity": 1 }] })),
        Default::default(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let gateway: Value = serde_json::from_str(headers["x-baton-relay"].to_str().unwrap()).unwrap();
    assert_eq!(
        (&gateway["token"], &gateway["relay"]),
        (&json!("bearer"), &json!("exchange")),
        "{gateway}"
    );
    let relay = placed["relay"].as_array().expect("relay chain");
    let chain: Vec<(&Value, &Value, &Value)> = relay
        .iter()
        .map(|h| (&h["service"], &h["aud"], &h["actors"]))
        .collect();
    assert_eq!(
        chain,
        [
            (&json!("order"), &json!(["order"]), &json!(["gateway"])),
            (
                &json!("inventory"),
                &json!(["inventory"]),
                &json!(["order", "gateway"])
            ),
            (
                &json!("payment"),
                &json!(["payment"]),
                &json!(["order", "gateway"])
            ),
        ],
        "{placed}"
    );
    for hop in relay {
        assert_eq!(hop["client_id"], "cli", "{hop}");
        assert_eq!(hop["sub"], relay[0]["sub"], "{hop}");
    }
    // What order received is good at order only.
    let at_order = exchange(
        &stack,
        ("gateway", crate::harness::stack::GATEWAY_CLIENT_SECRET),
        &token,
        "order",
        "orders:read",
    )
    .await;
    for (url, path) in [(&stack.payment, "charges"), (&stack.inventory, "items")] {
        assert_eq!(
            status_with(&stack, url, path, &at_order).await,
            StatusCode::UNAUTHORIZED,
            "{url}{path} refuses a token meant for order"
        );
    }
}
