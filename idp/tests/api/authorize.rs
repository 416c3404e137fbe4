//! Issue 2, rule 4: the authorization endpoint.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{
    CHALLENGE, CLI_REDIRECT, GATEWAY_REDIRECT, gateway_authorize, location_query, spawn,
};

/// A change to an authorization request.
type Edit = Box<dyn Fn(&mut Vec<(String, String)>)>;

fn set(q: &mut Vec<(String, String)>, k: &str, v: &str) {
    q.retain(|(key, _)| key != k);
    q.push((k.to_owned(), v.to_owned()));
}

fn remove(q: &mut Vec<(String, String)>, k: &str) {
    q.retain(|(key, _)| key != k);
}

/// Asserts an error redirect to the gateway carrying `error`, the state and `iss`.
fn assert_error_redirect(r: &reqwest::Response, error: &str, issuer: &str) {
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "expected a redirect for {error}"
    );
    let (target, q) = location_query(r);
    assert_eq!(target, GATEWAY_REDIRECT);
    assert_eq!(q["error"], error, "{q:?}");
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], issuer);
    assert!(!q.contains_key("code"));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_valid_request_shows_the_login_form_with_a_strict_policy(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t
        .browser()
        .authorize(&gateway_authorize("openid profile"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("style-src 'self'")
            && !csp.contains("unsafe-inline")
    );
    assert!(csp.contains("form-action 'self' http://localhost:8080"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("baton_idp_login=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Baton Shop") && html.contains(r#"name="csrf_token""#));
    assert!(!html.contains("<script") && !html.contains("style="));
    let css = t.http.get(t.url("/static/idp.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for path in ["/static/favicon.svg", "/favicon.ico"] {
        let icon = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(icon.status(), StatusCode::OK);
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_unknown_client_or_redirect_uri_never_redirects(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let cases: Vec<Edit> = vec![
        Box::new(|q| set(q, "client_id", "gate\0way")),
        Box::new(|q| set(q, "client_id", "nobody")),
        Box::new(|q| remove(q, "client_id")),
        Box::new(|q| set(q, "redirect_uri", "https://evil.example/cb")),
        // Exact match only: no prefix, no extra path, no other port.
        Box::new(|q| set(q, "redirect_uri", "http://localhost:8080/auth/callback/x")),
        Box::new(|q| set(q, "redirect_uri", "http://localhost:8081/auth/callback")),
        Box::new(|q| set(q, "redirect_uri", "http://localhost:8080/auth/callback?x=1")),
        Box::new(|q| remove(q, "redirect_uri")),
        // The cli client's URI is registered, but not for the gateway.
        Box::new(|q| set(q, "redirect_uri", CLI_REDIRECT)),
        Box::new(|q| q.push(("redirect_uri".into(), "https://evil.example/cb".into()))),
        Box::new(|q| q.push(("client_id".into(), "cli".into()))),
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut q = gateway_authorize("openid");
        case(&mut q);
        let r = b.authorize(&q).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "case {i}");
        assert!(
            r.headers().get("location").is_none(),
            "case {i} must not redirect"
        );
        assert!(
            r.text().await.unwrap().contains("Cannot continue"),
            "case {i}"
        );
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn invalid_requests_with_a_valid_redirect_uri_are_redirected_with_the_error(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let iss = t.idp.issuer.clone();
    let cases: Vec<(&str, Edit)> = vec![
        (
            "unsupported_response_type",
            Box::new(|q| set(q, "response_type", "token")),
        ),
        ("invalid_request", Box::new(|q| set(q, "nonce", "n\0"))),
        ("invalid_request", Box::new(|q| remove(q, "response_type"))),
        ("invalid_scope", Box::new(|q| set(q, "scope", "profile"))),
        ("invalid_scope", Box::new(|q| remove(q, "scope"))),
        (
            "invalid_request",
            Box::new(|q| set(q, "code_challenge_method", "plain")),
        ),
        (
            "invalid_request",
            Box::new(|q| remove(q, "code_challenge_method")),
        ),
        (
            "invalid_request",
            Box::new(|q| set(q, "code_challenge_method", "S512")),
        ),
        (
            "invalid_request",
            Box::new(|q| set(q, "code_challenge", "too-short")),
        ),
        ("invalid_request", Box::new(|q| remove(q, "code_challenge"))),
        (
            "invalid_request",
            Box::new(|q| q.push(("scope".into(), "openid".into()))),
        ),
        (
            "invalid_request",
            Box::new(|q| set(q, "prompt", "none login")),
        ),
        ("invalid_request", Box::new(|q| set(q, "max_age", "-1"))),
        (
            "invalid_request",
            Box::new(|q| set(q, "response_mode", "fragment")),
        ),
        (
            "request_not_supported",
            Box::new(|q| set(q, "request", "eyJ.x.y")),
        ),
        (
            "request_uri_not_supported",
            Box::new(|q| set(q, "request_uri", "https://x/r")),
        ),
        ("login_required", Box::new(|q| set(q, "prompt", "none"))),
    ];
    for (error, case) in cases {
        let mut q = gateway_authorize("openid");
        case(&mut q);
        let r = b.authorize(&q).await;
        assert_error_redirect(&r, error, &iss);
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn public_clients_must_use_pkce_s256(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let mut q: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "cli"),
        ("redirect_uri", CLI_REDIRECT),
        ("scope", "openid"),
        ("state", "s"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let r = b.authorize(&q).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, params) = location_query(&r);
    assert_eq!(params["error"], "invalid_request");
    assert!(params["error_description"].contains("PKCE"));
    q.push(("code_challenge".into(), CHALLENGE.into()));
    q.push(("code_challenge_method".into(), "S256".into()));
    assert_eq!(b.authorize(&q).await.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_client_without_the_code_grant_is_refused(pool: PgPool) {
    let t = spawn(pool).await;
    idp::admin::upsert_client(
        &t.pool,
        &idp::realm::NewClient {
            id: "machine".into(),
            name: "Machine".into(),
            secret: Some("machine-secret".into()),
            redirect_uris: vec![GATEWAY_REDIRECT.into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["openid".into(), "orders:read".into()],
            resources: vec!["order".into()],
        },
    )
    .await
    .unwrap();
    let mut q = gateway_authorize("openid");
    set(&mut q, "client_id", "machine");
    assert_error_redirect(
        &t.browser().authorize(&q).await,
        "unauthorized_client",
        &t.idp.issuer,
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn authorize_accepts_post_and_refuses_malformed_forms(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let r = b
        .http
        .post(t.url("/authorize"))
        .form(&gateway_authorize("openid"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = b
        .http
        .post(t.url("/authorize"))
        .body("client_id=gateway")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b
        .http
        .post(t.url("/authorize"))
        .form(&[("x", "y".repeat(20_000))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
