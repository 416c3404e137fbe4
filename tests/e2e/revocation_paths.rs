//! Every way a token ends at the IdP reaches every validator over the
//! revocation stream: revoking a refresh token (RFC 7009), reusing a rotated
//! refresh token, RP-initiated logout, an admin's `idp users revoke-sessions`
//! and a password change. Before: the same token goes gateway → order →
//! inventory + payment; after: the gateway and each service, called directly,
//! answer 401 `invalid_token` within a generous deadline (a correctness bound,
//! not a timing assertion).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::harness::client::{cli_sign_in, json_answer};
use crate::harness::{Stack, User, call_with_token, cli_refresh, cli_tokens};

/// Only bounds a broken build's wait: the stream delivers in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(15);

const SCOPE: &str = "openid offline_access orders:read orders:write payments:read inventory:read";

/// A read on each validator: the gateway and the three services, directly.
pub fn read_endpoints(stack: &Stack) -> Vec<Url> {
    vec![
        stack.gateway.join("api/orders").expect("url"),
        stack.order.join("orders").expect("url"),
        stack.payment.join("charges").expect("url"),
        stack.inventory.join("items").expect("url"),
    ]
}

/// The whole chain works with `token`: an order through the gateway (order
/// reserves at inventory and charges at payment, relaying the token), and a
/// read on every validator.
async fn assert_accepted_everywhere(stack: &Stack, token: &str, what: &str) {
    let order = json!({ "lines": [{ "sku": "baton-tee", "quantity": 1 }] });
    let (status, body, _) = call_with_token(
        Method::POST,
        stack.gateway.join("api/orders").expect("url"),
        Some(token),
        Some(&order),
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{what}: order: {body}");
    for url in read_endpoints(stack) {
        let (status, body, _) = call_with_token(
            Method::GET,
            url.clone(),
            Some(token),
            None,
            HeaderMap::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{what}: {url}: {body}");
    }
}

/// Polls every validator until it refuses `token` with 401 `invalid_token`;
/// before that it may only still accept it (never another error).
pub async fn assert_refused_everywhere(stack: &Stack, token: &str, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    for url in read_endpoints(stack) {
        loop {
            let (status, body, headers) = call_with_token(
                Method::GET,
                url.clone(),
                Some(token),
                None,
                HeaderMap::new(),
            )
            .await;
            if status == StatusCode::UNAUTHORIZED {
                let challenge = headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert!(
                    challenge.contains("invalid_token"),
                    "{what}: {url}: {challenge:?}"
                );
                break;
            }
            assert_eq!(status, StatusCode::OK, "{what}: {url} meanwhile: {body}");
            assert!(
                Instant::now() < deadline,
                "{what}: {url} still accepts the token after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn refresh(stack: &Stack, refresh_token: &str) -> (StatusCode, Value) {
    json_answer(
        cli_refresh(&reqwest::Client::new(), &stack.idp, refresh_token)
            .send()
            .await
            .expect("POST /token"),
    )
    .await
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[tokio::test]
async fn client_side_revocations_reach_every_service() {
    let stack = Stack::start().await;

    // Every validator reports the revocation stream (and its lag) in /readyz.
    for base in [
        &stack.gateway,
        &stack.order,
        &stack.payment,
        &stack.inventory,
    ] {
        let (status, ready, _) = call_with_token(
            Method::GET,
            base.join("readyz").expect("url"),
            None,
            None,
            HeaderMap::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{base}readyz: {ready}");
        let stream = &ready["checks"]["revocations"];
        assert!(stream.is_object(), "{base}readyz names the stream: {ready}");
        let text = stream.to_string();
        assert!(
            text.contains("lag"),
            "{base}readyz reports the lag: {stream}"
        );
    }

    // 1. RFC 7009 revocation of the refresh token ends its access token too.
    let tokens = cli_tokens(&stack, User::Alice, SCOPE).await;
    let access = field(&tokens, "access_token");
    assert_accepted_everywhere(&stack, access, "before /revoke").await;
    let (status, _) = json_answer(
        reqwest::Client::new()
            .post(stack.idp.join("revoke").expect("url"))
            .form(&[
                ("token", field(&tokens, "refresh_token")),
                ("client_id", "cli"),
            ])
            .send()
            .await
            .expect("POST /revoke"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_refused_everywhere(&stack, access, "refresh token revoked").await;
    let (status, body) = refresh(&stack, field(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "revoked refresh: {body}");
    assert_eq!(body["error"], "invalid_grant");

    // 2. Reusing a rotated refresh token revokes the family: the stolen copy's
    //    use ends the legitimate holder's new tokens as well.
    let tokens = cli_tokens(&stack, User::Alice, SCOPE).await;
    let stolen = field(&tokens, "refresh_token").to_owned();
    let (status, rotated) = refresh(&stack, &stolen).await;
    assert_eq!(status, StatusCode::OK, "first refresh: {rotated}");
    let new_access = field(&rotated, "access_token");
    assert_accepted_everywhere(&stack, new_access, "after rotation").await;
    let (status, body) = refresh(&stack, &stolen).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "reuse: {body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_refused_everywhere(&stack, new_access, "refresh reuse (new token)").await;
    assert_refused_everywhere(
        &stack,
        field(&tokens, "access_token"),
        "refresh reuse (old)",
    )
    .await;
    let (status, _) = refresh(&stack, field(&rotated, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the family is over");

    // 3. RP-initiated logout with the ID token, from the browser signed in
    //    with it, ends the session: its access tokens are refused everywhere
    //    (revocation by sid).
    let (tokens, browser) = cli_sign_in(&stack, User::Alice, SCOPE).await;
    let access = field(&tokens, "access_token");
    assert_accepted_everywhere(&stack, access, "before logout").await;
    let mut logout = stack.idp.join("logout").expect("url");
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", field(&tokens, "id_token"));
    let answer = browser.get(logout).send().await.expect("GET /logout");
    assert!(
        answer.status().is_success() || answer.status().is_redirection(),
        "logout: {}",
        answer.status()
    );
    assert_refused_everywhere(&stack, access, "logout").await;
}

#[tokio::test]
async fn admin_revocations_reach_every_service() {
    let stack = Stack::start().await;
    let alice = cli_tokens(&stack, User::Alice, SCOPE).await;
    let alice_again = cli_tokens(&stack, User::Alice, SCOPE).await; // a second session
    let carol = cli_tokens(&stack, User::Carol, SCOPE).await;
    for t in [&alice, &alice_again, &carol] {
        assert_accepted_everywhere(&stack, field(t, "access_token"), "before").await;
    }

    // `idp users revoke-sessions alice`: every session and token of alice ends;
    // carol's do not.
    stack.idp_cli(&["users", "revoke-sessions", "alice"], "");
    for t in [&alice, &alice_again] {
        assert_refused_everywhere(&stack, field(t, "access_token"), "revoke-sessions").await;
        let (status, _) = refresh(&stack, field(t, "refresh_token")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "alice's refresh token");
    }
    assert_accepted_everywhere(&stack, field(&carol, "access_token"), "carol untouched").await;

    // Alice signs in again afterwards: tokens issued after the revocation work.
    let fresh = cli_tokens(&stack, User::Alice, SCOPE).await;
    assert_accepted_everywhere(&stack, field(&fresh, "access_token"), "alice again").await;

    // A password change (`idp users set-password carol`) ends carol's tokens.
    stack.idp_cli(&["users", "set-password", "carol"], "a-new-long-password\n");
    assert_refused_everywhere(&stack, field(&carol, "access_token"), "password change").await;
    let (status, _) = refresh(&stack, field(&carol, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "carol's refresh token");
}
