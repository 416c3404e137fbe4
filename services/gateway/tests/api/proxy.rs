//! The route table and the relay: routing, rewriting, header hygiene, API
//! clients' own tokens, upstream failures, rate limits.

use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Options, Stack, blackhole, closed_port, raw_get_status};

#[sqlx::test(migrations = false)]
async fn each_route_relays_the_session_token_rewritten_and_without_the_browsers_credentials(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.signed_in("alice").await;
    let sub = browser.session().await["user"]["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    for (path, upstream_path) in [
        ("/api/orders?limit=5", "/orders"),
        ("/api/orders/42", "/orders/42"),
        ("/api/payments", "/charges"),
        ("/api/inventory/items", "/items"),
    ] {
        let response = browser
            .client
            .get(stack.url(path))
            .header("x-user-id", "bob")
            .header("x-forwarded-user", "bob")
            .header("x-forwarded-for", "6.6.6.6")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let relay: Value =
            serde_json::from_str(response.headers()["x-baton-relay"].to_str().unwrap()).unwrap();
        assert_eq!(relay["token"], "session");
        assert_eq!(relay["sub"], sub.as_str());
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["path"], upstream_path, "{path}");
        assert_eq!(
            seen["sub"],
            sub.as_str(),
            "the upstream validated alice's token"
        );
        let headers = &seen["headers"];
        assert!(
            headers.get("cookie").is_none(),
            "the browser's cookie never leaves the gateway"
        );
        assert!(headers.get("x-user-id").is_none() && headers.get("x-forwarded-user").is_none());
        assert_eq!(
            headers["x-forwarded-for"], "127.0.0.1",
            "the peer address, not the client's claim"
        );
        let traceparent = headers["traceparent"].as_str().unwrap();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "trace continued: {traceparent}"
        );
        assert!(!traceparent.contains("00f067aa0ba902b7"), "with a new span");
    }
    let response = browser.get("/api/orders?limit=5").await;
    let relay: Value =
        serde_json::from_str(response.headers()["x-baton-relay"].to_str().unwrap()).unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["query"], "limit=5");
    // Without a traceparent the gateway starts the trace, and the service continues it.
    let trace_id = relay["trace_id"].as_str().unwrap();
    assert!(
        seen["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .contains(trace_id)
    );
}

#[sqlx::test(migrations = false)]
async fn api_clients_bearer_tokens_are_validated_and_relayed_as_they_are(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let token = stack.reporter_token().await;
    let client = reqwest::Client::new();

    let response = client
        .get(stack.url("/api/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(response.headers()["x-baton-relay"].to_str().unwrap())
            .unwrap()["token"],
        "bearer"
    );
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["token"], token.as_str(), "relayed exactly as received");
    assert_eq!(seen["sub"], "reporter");

    // A bearer token wins over a cookie, and needs no CSRF proof (no ambient credential).
    let browser = stack.signed_in("alice").await;
    let seen: Value = browser
        .client
        .get(stack.url("/api/payments"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["sub"], "reporter");

    // A bad token is refused at the gateway, with RFC 6750 details.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "not-a-jwt"] {
        let response = client
            .get(stack.url("/api/orders"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["x-baton-denied-by"], "gateway");
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    let malformed = client
        .get(stack.url("/api/orders"))
        .header(header::AUTHORIZATION, "Basic abc")
        .send()
        .await
        .unwrap();
    assert!(matches!(
        malformed.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
    ));
}

#[sqlx::test(migrations = false)]
async fn unknown_routes_unexposed_methods_and_ambiguous_paths_are_refused(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.signed_in("bob").await;
    for (method, path) in [
        (Method::GET, "/api/unknown"),
        (Method::GET, "/api"),
        (Method::GET, "/nothing-here"),
        (Method::GET, "/api/ordersX"),
        (Method::DELETE, "/api/orders/1"),
        (Method::GET, "/api/inventory/reservations"),
        (Method::POST, "/api/payments/c1/capture"),
    ] {
        let response = browser.api(method.clone(), path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "not_found"
        );
    }
    // Sent byte for byte (a URL library would normalise them first).
    for path in [
        "/api/orders/%2e%2e/payments/c1/refund",
        "/api/orders/../x",
        "/api/orders%2F1",
        "/api//orders",
    ] {
        assert_eq!(raw_get_status(&stack.gateway, path).await, 400, "{path}");
    }
}

#[sqlx::test(migrations = false)]
async fn api_calls_without_credentials_get_401_with_a_sign_in_hint_and_pages_a_redirect(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = client.get(stack.url("/api/orders")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    // RFC 6750 §3.1: no credentials, no error code in the challenge.
    assert_eq!(api.headers()[header::WWW_AUTHENTICATE], BARE_CHALLENGE);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(body["sign_in"], "/auth/login?return_to=%2Fapi%2Forders");

    let page = client
        .get(stack.url("/api/orders"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()[header::LOCATION],
        "/auth/login?return_to=%2Fapi%2Forders"
    );

    // A cookie that names no session is no credential.
    let stale = client
        .get(stack.url("/api/orders"))
        .header(header::COOKIE, format!("baton_session={}", "A".repeat(43)))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stale.headers()[header::WWW_AUTHENTICATE], BARE_CHALLENGE);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["error"],
        "session_ended"
    );

    // Another scheme carries no bearer credentials either; only a bad bearer
    // token is answered with an error code.
    let basic = client
        .get(stack.url("/api/orders"))
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.headers()[header::WWW_AUTHENTICATE], BARE_CHALLENGE);
    let bad = client
        .get(stack.url("/api/orders"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let challenge = bad.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// The challenge of a request without credentials: the scheme and realm only.
const BARE_CHALLENGE: &str = "Bearer realm=\"baton\"";

#[sqlx::test(migrations = false)]
async fn upstream_errors_pass_through_and_a_down_or_hung_upstream_fails_fast(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (_closed_socket, closed) = closed_port();
    let (_blackhole, blackhole) = blackhole().await;
    let extra = format!(
        r#"
[[route]]
name = "down"
prefix = "/api/down"
upstreams = ["http://{closed}"]
audience = "order"
timeout_ms = 2000
  [[route.allow]]
  methods = ["*"]
[[route]]
name = "blackhole"
prefix = "/api/blackhole"
upstreams = ["http://{blackhole}"]
audience = "order"
timeout_ms = 8000
  [[route.allow]]
  methods = ["GET"]
[[route]]
name = "hung"
prefix = "/api/hung"
upstreams = ["{{ORDER}}"]
rewrite = "/slow"
audience = "order"
timeout_ms = 300
  [[route.allow]]
  methods = ["GET"]
[[route]]
name = "status"
prefix = "/api/status"
upstreams = ["{{ORDER}}"]
rewrite = "/status"
audience = "order"
  [[route.allow]]
  methods = ["GET"]
"#
    );
    let mut stack = Stack::with(
        pool,
        connect,
        Options {
            extra_routes: extra,
            ..Default::default()
        },
    )
    .await;
    let browser = stack.signed_in("alice").await;

    // The upstream's own errors come back with their status and body; its cookies do not.
    for code in [400u16, 403, 404, 409, 500, 503] {
        let response = browser.get(&format!("/api/status/{code}")).await;
        assert_eq!(response.status().as_u16(), code);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert!(
            response.headers().get("x-baton-denied-by").is_none(),
            "not the gateway's doing"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "from_upstream"
        );
    }

    // Nothing listens: 502 with a JSON error, at once.
    let down = browser.get("/api/down/x").await;
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(down.json::<Value>().await.unwrap()["error"], "bad_gateway");

    // An address that never answers a connection attempt: down too, after
    // the connect timeout rather than the route's 8 s.
    let blackhole = browser.get("/api/blackhole").await;
    assert_eq!(blackhole.status(), StatusCode::BAD_GATEWAY);

    // Listening but never answering: 504 when the route's 300 ms are up (the
    // browser's own timeout is 20 s, so a hang would fail this test).
    let hung = browser.get("/api/hung").await;
    assert_eq!(hung.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        hung.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("300ms")
    );

    // A service stopped mid-life: 502 too.
    stack.stop_payment().await;
    let stopped = browser.get("/api/payments").await;
    assert_eq!(stopped.status(), StatusCode::BAD_GATEWAY);
}

#[sqlx::test(migrations = false)]
async fn rate_limits_apply_per_client_address_and_ignore_forwarded_for(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(
        pool,
        connect,
        Options {
            rate_limit: (1, 3),
            ..Default::default()
        },
    )
    .await;
    let browser = stack.signed_in("alice").await;
    for i in 0..3 {
        let ok = browser
            .client
            .get(stack.url("/api/orders"))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "request {i} within the burst");
    }
    // A new X-Forwarded-For does not make a new client: the peer address is the key.
    let limited = browser
        .client
        .get(stack.url("/api/orders"))
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"],
        "rate_limited"
    );
    // Limits are per route.
    assert_eq!(browser.get("/api/payments").await.status(), StatusCode::OK);
}
