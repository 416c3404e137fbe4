//! Step-up across the chain (issue 17 item 4), through the real processes:
//! payment demands a recent second factor for a large refund (RFC 9470), the
//! gateway hands the browser the step-up sign-in, the IdP asks for the
//! second factor alone, and the same request sent again with its
//! `Idempotency-Key` refunds once, however often it is replayed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::happy_path::place_order;
use crate::harness::{Browser, Stack, User, call_with_token, gateway_tokens};

const STEP_UP: &str = "x-baton-step-up";

async fn refunded_cents(browser: &Browser, charge: &str) -> i64 {
    let (status, list) = browser.get("/api/payments").await;
    assert_eq!(status, 200, "{list}");
    list["charges"]
        .as_array()
        .expect("charges")
        .iter()
        .find(|c| c["id"] == charge)
        .and_then(|c| c["refunded_cents"].as_i64())
        .expect("the charge is listed")
}

async fn refund(browser: &Browser, path: &str, key: &str) -> (u16, Value, Option<String>) {
    let body = json!({ "reason": "the whole order" });
    let r = browser
        .send(Method::POST, path, Some(&body), &[("idempotency-key", key)])
        .await;
    let status = r.status().as_u16();
    let link = r
        .headers()
        .get(STEP_UP)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json = r.json().await.unwrap_or(Value::Null);
    (status, json, link)
}

#[tokio::test]
async fn a_large_refund_steps_the_browser_up_and_the_replay_refunds_once() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let mut bob = Browser::sign_in(&stack, User::Bob).await;
    // 6 handbooks at 39.00: 234.00, above the 200.00 step-up threshold.
    let placed = place_order(&alice, "oidc-handbook", 6).await;
    let charge = placed["order"]["charge_id"].as_str().expect("charge id");
    let path = format!("/api/payments/{charge}/refund");

    // bob set up an authenticator app after signing in: his session is
    // still a password one.
    let secret = bob.set_up_authenticator(&stack).await;
    let (status, body, link) = refund(&bob, &path, "refund-234").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "insufficient_user_authentication");
    let link = link.expect("the gateway names the step-up sign-in");
    assert!(
        link.starts_with("/auth/login?acr_values=urn%3Abaton%3Aacr%3Amfa"),
        "{link}"
    );
    assert!(link.contains("max_age=300"), "{link}");
    assert_eq!(
        refunded_cents(&bob, charge).await,
        0,
        "nothing refunded yet"
    );

    // The step-up sign-in: the second factor only, a new gateway session.
    bob.step_up(&link, &secret).await;

    // Sent again with its key: refunded; replayed: the same refund, once.
    let (status, first, link) = refund(&bob, &path, "refund-234").await;
    assert_eq!(status, 201, "{first}");
    assert!(link.is_none());
    let (status, again, _) = refund(&bob, &path, "refund-234").await;
    assert!(status == 201 || status == 200, "{status} {again}");
    assert_eq!(again["refund"]["id"], first["refund"]["id"]);
    assert_eq!(
        refunded_cents(&bob, charge).await,
        23_400,
        "charged back once"
    );
}

/// An API client gets the RFC 9470 answer as is: no step-up link, which only
/// a browser session can follow.
#[tokio::test]
async fn an_api_client_gets_the_challenge_itself() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let placed = place_order(&alice, "oidc-handbook", 6).await;
    let charge = placed["order"]["charge_id"].as_str().expect("charge id");
    // bob's token as a client of the IdP holds it (its own Bearer token).
    let tokens = gateway_tokens(&stack, User::Bob, "openid payments:read payments:refund").await;
    let token = tokens["access_token"].as_str().expect("access token");
    let url = stack
        .gateway
        .join(&format!("api/payments/{charge}/refund"))
        .expect("url");
    let (status, body, headers) = call_with_token(
        Method::POST,
        url,
        Some(token),
        Some(&json!({ "reason": "all" })),
        Default::default(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.contains(r#"acr_values="urn:baton:acr:mfa""#),
        "{challenge}"
    );
    assert!(headers.get(STEP_UP).is_none());
}

/// A step-up sign-in that cannot raise `acr` (bob has no second factor:
/// `acr_values` is voluntary at the IdP) gives a new session that still says
/// password, and payment still refuses: nothing is refunded.
#[tokio::test]
async fn a_step_up_that_does_not_raise_acr_refunds_nothing() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    let bob = Browser::sign_in(&stack, User::Bob).await;
    let placed = place_order(&alice, "oidc-handbook", 6).await;
    let charge = placed["order"]["charge_id"].as_str().expect("charge id");
    let path = format!("/api/payments/{charge}/refund");
    let (status, _, link) = refund(&bob, &path, "k").await;
    assert_eq!(status, 401);
    // Single sign-on at the IdP: straight back to the gateway, no form.
    let back = bob
        .http
        .get(
            stack
                .gateway
                .join(link.unwrap().trim_start_matches('/'))
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(back.url().port(), stack.gateway.port());
    let (_, session) = bob.get("/auth/session").await;
    assert_eq!(session["authenticated"], true);
    let mut bob = bob;
    bob.set_csrf(session["csrf_token"].as_str().unwrap());
    let (status, body, link) = refund(&bob, &path, "k").await;
    assert_eq!(status, 401, "{body}");
    assert!(link.is_some(), "still asks for the step-up");
    assert_eq!(refunded_cents(&bob, charge).await, 0);
}
