//! The `Principal` extractor and the route guards over a real axum server.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use guard::testing::TestIssuer;
use guard::{
    Guard, Principal, Requirement, require_all, require_any_role, require_role, require_scope,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{issuer_and_guard, serve};

#[derive(Clone, FromRef)]
struct AppState {
    guard: Guard,
}

async fn whoami(caller: Principal) -> String {
    caller.sub().to_owned()
}

async fn maybe_whoami(caller: Option<Principal>) -> String {
    caller.map_or_else(|| "anonymous".to_owned(), |c| c.sub().to_owned())
}

async fn refund(caller: Principal) -> Result<&'static str, guard::AuthError> {
    caller.require_any_role(&["admin", "support"])?;
    caller.require_scope("payments:refund")?;
    Ok("refunded")
}

/// A service shaped like the real ones: extractor routes, route-layer guards,
/// handler-level checks.
async fn app(guard: &Guard) -> String {
    // `MethodRouter::route_layer` guards one route; `Router::route_layer`
    // would guard every route added before it.
    let router = Router::new()
        .route("/admin", get(whoami).route_layer(require_role("admin")))
        .route(
            "/write",
            get(whoami).route_layer(require_scope("orders:write")),
        )
        .route(
            "/inventory",
            get(whoami).route_layer(require_all([
                Requirement::role("admin"),
                Requirement::scope("inventory:write"),
            ])),
        )
        .route(
            "/staff",
            get(whoami).route_layer(require_any_role(&["admin", "support"])),
        )
        .route("/me", get(whoami))
        .route("/maybe", get(maybe_whoami))
        .route("/refund", get(refund))
        .layer(guard.layer())
        .with_state(AppState {
            guard: guard.clone(),
        });
    serve(router).await
}

async fn call(url: &str, token: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

fn user(issuer: &TestIssuer, roles: &[&str], scope: &str) -> String {
    issuer.token().sub("carol").roles(roles).scope(scope).sign()
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge_even_from_localhost() {
    let (_issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    for path in ["/me", "/admin", "/write", "/staff", "/refund"] {
        let (status, challenge, body) = call(&format!("{base}{path}"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"baton\""),
            "{path}"
        );
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn identity_headers_are_ignored() {
    let (_issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/admin"))
        .header("X-User-Id", "bob")
        .header("X-User-Roles", "admin")
        .header("X-Forwarded-User", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_invalid_token_is_401_invalid_token_with_a_description() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let expired = issuer.token().valid(-600, -120).sign();
    let (status, challenge, body) = call(&format!("{base}/me"), Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer realm=\"baton\", error=\"invalid_token\", error_description=\"token has expired\""
        )
    );
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "token has expired");
    // The route guards answer the same way before checking rights.
    let (status, challenge, _) = call(&format!("{base}/admin"), Some("not-a-jwt")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn missing_rights_are_403_insufficient_scope_naming_what_is_needed() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let customer = user(&issuer, &["customer"], "orders:read");

    let (status, challenge, body) = call(&format!("{base}/admin"), Some(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("requires role admin"), "{challenge}");
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["error_description"], "requires role admin");

    let (status, challenge, _) = call(&format!("{base}/write"), Some(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().ends_with("scope=\"orders:write\""));

    let admin_without_scope = user(&issuer, &["admin"], "inventory:read");
    let (status, _, body) = call(&format!("{base}/inventory"), Some(&admin_without_scope)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error_description"],
        "requires (role admin and scope inventory:write)"
    );

    let (status, _, body) = call(&format!("{base}/staff"), Some(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error_description"],
        "requires (role admin or role support)"
    );

    let (status, _, body) = call(&format!("{base}/refund"), Some(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn sufficient_rights_reach_the_handler() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let cases = [
        ("/me", user(&issuer, &[], "")),
        ("/admin", user(&issuer, &["admin"], "")),
        (
            "/write",
            user(&issuer, &["customer"], "orders:read orders:write"),
        ),
        ("/inventory", user(&issuer, &["admin"], "inventory:write")),
        ("/staff", user(&issuer, &["support"], "")),
        ("/refund", user(&issuer, &["support"], "payments:refund")),
    ];
    for (path, token) in cases {
        let response = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await.unwrap();
        assert!(text == "carol" || text == "refunded", "{path}: {text}");
    }
}

#[tokio::test]
async fn an_optional_principal_is_none_without_a_token_but_never_for_a_bad_one() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let response = reqwest::get(format!("{base}/maybe")).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "anonymous");
    let (status, _, _) = call(&format!("{base}/maybe"), Some("forged.token.here")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let good = user(&issuer, &[], "");
    let response = reqwest::Client::new()
        .get(format!("{base}/maybe"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "carol");
}

#[tokio::test]
async fn malformed_authorization_headers_are_400_invalid_request() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let token = user(&issuer, &[], "");
    let response = reqwest::Client::new()
        .get(format!("{base}/me"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_route_guard_without_the_guard_layer_fails_closed() {
    let (issuer, _guard) = issuer_and_guard().await;
    let router = Router::new()
        .route("/admin", get(|| async { "secret" }))
        .route_layer(require_role("admin"));
    let base = serve(router).await;
    let admin = user(&issuer, &["admin"], "");
    let (status, _, _) = call(&format!("{base}/admin"), Some(&admin)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn without_any_signing_keys_the_answer_is_503_not_401() {
    let issuer = TestIssuer::start().await;
    issuer.stop().await;
    let guard = Guard::new(issuer.config("order"));
    let base = app(&guard).await;
    let token = user(&issuer, &["admin"], "");
    let response = reqwest::Client::new()
        .get(format!("{base}/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}
