//! Issue 15 item 5: signing out through another client ends the shop
//! session. One browser signs in with the `cli` client at the IdP and, by
//! single sign-on, at the shop (the gateway); it then signs out of the `cli`
//! client (RP-initiated logout with the cli's ID token). The IdP posts a
//! logout token to the gateway's back-channel logout URI (`idp seed`
//! registers it), and the gateway's next request with the old cookie is
//! signed out.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::client::{cli_sign_in, json_answer};
use crate::harness::{Stack, User};

/// Only bounds a broken build's wait: delivery takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

async fn shop_orders(http: &reqwest::Client, stack: &Stack) -> (StatusCode, Value) {
    let answer = http
        .get(stack.gateway.join("api/orders").expect("url"))
        .send()
        .await
        .expect("GET /api/orders");
    json_answer(answer).await
}

async fn shop_session(http: &reqwest::Client, stack: &Stack) -> Value {
    let answer = http
        .get(stack.gateway.join("auth/session").expect("url"))
        .send()
        .await
        .expect("GET /auth/session");
    let (status, session) = json_answer(answer).await;
    assert_eq!(status, StatusCode::OK, "/auth/session: {session}");
    session
}

#[tokio::test]
async fn signing_out_through_another_client_ends_the_shop_session() {
    let stack = Stack::start().await;
    let (tokens, browser) = cli_sign_in(&stack, User::Alice, "openid profile").await;

    // The same browser opens the shop: single sign-on, no login form.
    let shop = browser
        .get(stack.gateway.join("auth/login").expect("url"))
        .send()
        .await
        .expect("sign in at the shop");
    assert_eq!(shop.status(), StatusCode::OK, "back on the shop's page");
    assert_eq!(shop.url().port(), stack.gateway.port());
    let session = shop_session(&browser, &stack).await;
    assert_eq!(session["authenticated"], true, "{session}");
    let (status, orders) = shop_orders(&browser, &stack).await;
    assert_eq!(status, StatusCode::OK, "the shop works: {orders}");

    // Sign out of the cli client (not the shop) at the IdP.
    let mut logout = stack.idp.join("logout").expect("url");
    logout.query_pairs_mut().append_pair(
        "id_token_hint",
        tokens["id_token"].as_str().expect("id_token"),
    );
    let answer = browser.get(logout).send().await.expect("GET /logout");
    assert_eq!(answer.status(), StatusCode::OK, "signed out at the IdP");

    // The shop's session ends by itself: its next request is signed out.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let session = shop_session(&browser, &stack).await;
        if session["authenticated"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shop session outlived the IdP session: {session}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = shop_orders(&browser, &stack).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
