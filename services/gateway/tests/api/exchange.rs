//! Per-route tokens: with `relay = "exchange"` the gateway relays to each
//! route a token exchanged at the (real) IdP whose `aud` is that route's
//! service alone and whose actor is the gateway, once per (token, audience).

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Options, Stack};

/// The claims of a JWT (already validated by the upstream that saw it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn exchanging() -> Options {
    Options {
        relay: ("exchange", "exchange"),
        ..Options::default()
    }
}

#[sqlx::test(migrations = false)]
async fn each_route_gets_a_token_for_its_service_alone_and_no_other_service_takes_it(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, exchanging()).await;
    let browser = stack.signed_in("alice").await;
    let mut seen_tokens = Vec::new();
    for (path, audience) in [
        ("/api/orders", "order"),
        ("/api/payments", "payment"),
        ("/api/inventory/items", "inventory"),
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let relay: Value =
            serde_json::from_str(response.headers()["x-baton-relay"].to_str().unwrap()).unwrap();
        assert_eq!(relay["relay"], "exchange");
        assert_eq!(relay["relayed_aud"], serde_json::json!([audience]));
        assert_eq!(relay["relayed_actors"], serde_json::json!(["gateway"]));
        let seen: Value = response.json().await.unwrap();
        let token = seen["token"].as_str().unwrap().to_owned();
        let c = claims(&token);
        assert_eq!(c["aud"], serde_json::json!([audience]), "{path}");
        assert_eq!(c["act"]["sub"], "gateway", "{path}");
        seen_tokens.push((audience, token));
    }
    // A token taken from one service is refused by the others.
    let [order, payment, inventory] = stack.upstream_urls();
    let (_, for_order) = &seen_tokens[0];
    for other in [&payment, &inventory] {
        let r = reqwest::Client::new()
            .get(format!("{other}/anything"))
            .bearer_auth(for_order)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{other}");
    }
    let r = reqwest::Client::new()
        .get(format!("{order}/anything"))
        .bearer_auth(for_order)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Cached per (token, audience): the same token the second time, no new exchange.
    let exchanges = stack.states[0].exchanger.exchanges();
    assert_eq!(exchanges, 3);
    let again: Value = browser.get("/api/orders").await.json().await.unwrap();
    assert_eq!(again["token"].as_str().unwrap(), for_order);
    assert_eq!(stack.states[0].exchanger.exchanges(), 3);
}

#[sqlx::test(migrations = false)]
async fn concurrent_requests_of_one_session_make_one_exchange(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, exchanging()).await;
    let browser = std::sync::Arc::new(stack.signed_in("alice").await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let browser = browser.clone();
        tasks.spawn(async move { browser.get("/api/orders").await.status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(stack.states[0].exchanger.exchanges(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_api_clients_token_is_exchanged_per_route_keyed_by_its_jti(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, exchanging()).await;
    // The seeded reporter's token names the gateway besides the services.
    let token = stack.reporter_token().await;
    assert_eq!(
        claims(&token)["aud"],
        serde_json::json!(["gateway", "order", "payment", "inventory"])
    );
    for (path, audience) in [("/api/orders", "order"), ("/api/payments", "payment")] {
        for _ in 0..2 {
            let r = reqwest::Client::new()
                .get(stack.url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let relay: Value =
                serde_json::from_str(r.headers()["x-baton-relay"].to_str().unwrap()).unwrap();
            assert_eq!(relay["token"], "bearer");
            assert_eq!(relay["relay"], "exchange");
            assert_eq!(relay["relayed_aud"], serde_json::json!([audience]));
            let seen: Value = r.json().await.unwrap();
            let c = claims(seen["token"].as_str().unwrap());
            assert_eq!(c["aud"], serde_json::json!([audience]), "{path}");
            assert_eq!(c["act"], serde_json::json!({"sub": "gateway"}), "{path}");
            assert_eq!(c["client_id"], "reporter");
        }
    }
    // Once per (token, audience).
    assert_eq!(stack.states[0].exchanger.exchanges(), 2);
}

#[sqlx::test(migrations = false)]
async fn an_api_clients_token_not_meant_for_the_gateway_is_not_exchanged(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, exchanging()).await;
    // A client registered without the gateway resource: its tokens name
    // order, payment and inventory only. The IdP refuses the gateway's
    // exchange, and the gateway never falls back to relaying it.
    idp::admin::upsert_client(
        &stack.idp.state.db,
        &idp::realm::NewClient {
            id: "direct".into(),
            name: "Calls the services directly".into(),
            secret: Some("direct-secret".into()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["orders:read".into()],
            resources: vec!["order".into(), "payment".into(), "inventory".into()],
        },
    )
    .await
    .unwrap();
    let token = stack
        .client_credentials_token(("direct", "direct-secret"), "orders:read")
        .await;
    let r = reqwest::Client::new()
        .get(stack.url("/api/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-baton-denied-by"], "gateway");
}

#[sqlx::test(migrations = false)]
async fn with_plain_relay_for_api_clients_their_token_goes_on_as_is(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(
        pool,
        connect,
        Options {
            relay: ("exchange", "plain"),
            ..Options::default()
        },
    )
    .await;
    let token = stack.reporter_token().await;
    let r = reqwest::Client::new()
        .get(stack.url("/api/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["token"].as_str().unwrap(), token);
    assert_eq!(stack.states[0].exchanger.exchanges(), 0);
}
