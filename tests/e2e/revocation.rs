//! Revocation reaches every validator: a token revoked at the IdP (RFC 7009)
//! is refused by the gateway and by each service, which learn it from the
//! IdP's revocation stream, not from a call per request.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::harness::{Stack, User, call_with_token, cli_token};

/// Generous: the stream normally delivers in milliseconds; this only bounds a
/// broken build's wait.
const DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_token_revoked_at_the_idp_is_refused_everywhere() {
    let stack = Stack::start().await;
    let token = cli_token(
        &stack,
        User::Alice,
        "openid orders:read payments:read inventory:read",
    )
    .await;
    let endpoints = [
        stack.order.join("orders").unwrap(),
        stack.payment.join("charges").unwrap(),
        stack.inventory.join("items").unwrap(),
        stack.gateway.join("api/orders").unwrap(),
    ];
    for url in &endpoints {
        let (status, body, _) = call_with_token(
            Method::GET,
            url.clone(),
            Some(&token),
            None,
            HeaderMap::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "before revocation, {url}: {body}");
    }

    let revoked = reqwest::Client::new()
        .post(stack.idp.join("revoke").unwrap())
        .form(&[("token", token.as_str()), ("client_id", "cli")])
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(revoked.status(), StatusCode::OK, "RFC 7009 revocation");

    let deadline = Instant::now() + DEADLINE;
    for url in &endpoints {
        loop {
            let (status, body, headers) = call_with_token(
                Method::GET,
                url.clone(),
                Some(&token),
                None,
                HeaderMap::new(),
            )
            .await;
            if status == StatusCode::UNAUTHORIZED {
                let challenge = headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert!(challenge.contains("invalid_token"), "{url}: {challenge:?}");
                break;
            }
            assert_eq!(
                status,
                StatusCode::OK,
                "{url} while the revocation travels: {body}"
            );
            assert!(
                Instant::now() < deadline,
                "{url} still accepts the revoked token after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A fresh token for the same person still works: only that token was revoked.
    let fresh = cli_token(&stack, User::Alice, "openid orders:read").await;
    let (status, body, _) = call_with_token(
        Method::GET,
        endpoints[0].clone(),
        Some(&fresh),
        None,
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a new token: {body}");
}
