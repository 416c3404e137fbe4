//! Issue 15 item 6: CORS per client on token, userinfo, revoke, discovery
//! and JWKS — nothing allowed by default, a client's registered origins
//! allowed, and an actual request served only for its own client's origins.

use idp::client_extras::ClientExtras;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestIdp, spawn};

const APP: &str = "https://app.example";
const OTHER: &str = "https://other.example";

/// The endpoints CORS applies to, with the method a page would use.
const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/token"),
    ("GET", "/userinfo"),
    ("POST", "/revoke"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/jwks.json"),
];

/// The `Access-Control-Allow-Origin` of a preflight from `origin`.
async fn preflight(t: &TestIdp, path: &str, method: &str, origin: &str) -> Option<String> {
    let r = t
        .http
        .request(Method::OPTIONS, t.url(path))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    assert!(r.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    allowed_origin(&r)
}

fn allowed_origin(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Registers `origins` for `client` and makes the running IdP see them now
/// (it re-reads them every few seconds on its own).
async fn allow(t: &TestIdp, client: &str, public: bool, origins: &[&str]) {
    ClientExtras {
        allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..Default::default()
    }
    .save(&t.pool, client, public)
    .await
    .unwrap();
    assert!(t.idp.state.cors.refresh(&t.pool).await.unwrap());
}

async fn client_credentials(t: &TestIdp, origin: Option<&str>) -> reqwest::Response {
    let mut request = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
        ]);
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    request.send().await.unwrap()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn nothing_is_allowed_by_default(pool: PgPool) {
    let t = spawn(pool).await;
    for (method, path) in ENDPOINTS {
        assert_eq!(preflight(&t, path, method, APP).await, None, "{path}");
    }
    let r = t
        .http
        .get(t.url("/jwks.json"))
        .header(ORIGIN, APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&r), None);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_registered_origin_is_allowed_and_any_other_is_not(pool: PgPool) {
    let t = spawn(pool).await;
    allow(&t, "cli", true, &[APP]).await;
    for (method, path) in ENDPOINTS {
        assert_eq!(
            preflight(&t, path, method, APP).await.as_deref(),
            Some(APP),
            "{path}"
        );
        assert_eq!(preflight(&t, path, method, OTHER).await, None, "{path}");
    }
    // Public documents: the actual GET carries the header for a registered origin.
    for path in ["/.well-known/openid-configuration", "/jwks.json"] {
        let r = t
            .http
            .get(t.url(path))
            .header(ORIGIN, APP)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&r).as_deref(), Some(APP), "{path}");
        let r = t
            .http
            .get(t.url(path))
            .header(ORIGIN, OTHER)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&r), None, "{path}");
    }
    // Endpoints outside the list never answer CORS.
    let r = t
        .http
        .request(Method::OPTIONS, t.url("/introspect"))
        .header(ORIGIN, APP)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&r), None);

    // Unregistered again: refused again.
    allow(&t, "cli", true, &[]).await;
    assert_eq!(preflight(&t, "/token", "POST", APP).await, None);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_actual_request_is_served_only_for_its_own_clients_origins(pool: PgPool) {
    let t = spawn(pool).await;
    // APP is registered, but by another client than `reporter`.
    allow(&t, "cli", true, &[APP]).await;
    let r = client_credentials(&t, Some(APP)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        allowed_origin(&r).as_deref(),
        Some(APP),
        "the page may read why"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    // No Origin: not a browser page, CORS does not apply.
    assert_eq!(client_credentials(&t, None).await.status(), StatusCode::OK);

    allow(&t, "reporter", false, &[APP]).await;
    let r = client_credentials(&t, Some(APP)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&r).as_deref(), Some(APP));
    let access: Value = r.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap();
    assert_eq!(
        client_credentials(&t, Some(OTHER)).await.status(),
        StatusCode::FORBIDDEN
    );

    // /revoke checks the authenticated client the same way.
    let revoke = |origin: &'static str| {
        t.http
            .post(t.url("/revoke"))
            .basic_auth("gateway", Some("gateway-dev-secret"))
            .header(ORIGIN, origin)
            .form(&[("token", "whatever")])
            .send()
    };
    assert_eq!(revoke(APP).await.unwrap().status(), StatusCode::FORBIDDEN);

    // /userinfo checks the access token's client.
    let tokens = t.gateway_tokens("openid").await;
    let userinfo = |token: String, origin: &'static str| {
        t.http
            .get(t.url("/userinfo"))
            .bearer_auth(token)
            .header(ORIGIN, origin)
            .send()
    };
    let gateway_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        userinfo(gateway_token.clone(), APP).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    allow(&t, "gateway", false, &[APP]).await;
    assert_eq!(
        userinfo(gateway_token, APP).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(revoke(APP).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        userinfo(access.to_owned(), OTHER).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}
