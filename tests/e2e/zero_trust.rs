//! Zero trust inside the network: a service answers nothing to a caller
//! without a valid token, even from localhost, and never takes identity from
//! headers.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::harness::{Stack, call_with_token};

fn identity_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-user-id", "alice"),
        ("x-user-roles", "admin"),
        ("x-forwarded-user", "bob"),
        ("x-auth-request-user", "bob"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn endpoints(stack: &Stack) -> Vec<(Method, Url)> {
    let at = |base: &Url, path: &str| base.join(path).expect("url");
    vec![
        (Method::GET, at(&stack.order, "orders")),
        (Method::POST, at(&stack.order, "orders")),
        (Method::GET, at(&stack.payment, "charges")),
        (Method::POST, at(&stack.payment, "charges")),
        (Method::GET, at(&stack.inventory, "items")),
        (Method::PUT, at(&stack.inventory, "items/baton-mug")),
        (Method::POST, at(&stack.inventory, "reservations")),
        (Method::GET, at(&stack.order, "audit")),
    ]
}

#[tokio::test]
async fn services_called_directly_without_a_valid_token_answer_401() {
    let stack = Stack::start().await;
    let body = serde_json::json!({});
    for (method, url) in endpoints(&stack) {
        for (what, token, headers) in [
            ("no token", None, HeaderMap::new()),
            ("identity headers only", None, identity_headers()),
            ("a garbage token", Some("not.a.jwt"), HeaderMap::new()),
        ] {
            let (status, json, answer) =
                call_with_token(method.clone(), url.clone(), token, Some(&body), headers).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {url} with {what}: {json}"
            );
            let challenge = answer
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {url} with {what}: WWW-Authenticate {challenge:?}"
            );
            // RFC 6750 §3.1: an error code only when a token was presented.
            assert_eq!(
                challenge.contains("error="),
                token.is_some(),
                "{method} {url} with {what}: WWW-Authenticate {challenge:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_gateway_api_refuses_callers_without_a_session_or_token() {
    let stack = Stack::start().await;
    for (method, path) in [
        (Method::GET, "api/orders"),
        (Method::GET, "api/inventory/items"),
        (Method::GET, "api/payments"),
    ] {
        let url = stack.gateway.join(path).expect("url");
        let (status, json, answer) =
            call_with_token(method.clone(), url, None, None, identity_headers()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} /{path}: {json}");
        // No credentials: a challenge without an error code (RFC 6750 §3.1).
        let challenge = answer.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
        assert_eq!(
            challenge,
            Some("Bearer realm=\"baton\""),
            "{method} /{path}"
        );
    }
}
