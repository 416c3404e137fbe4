//! Issue 2, rule 6: revocation (RFC 7009) and introspection (RFC 7662).

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{GATEWAY_SECRET, TestIdp, spawn};

async fn introspect(t: &TestIdp, token: &str) -> Value {
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("gateway", Some(GATEWAY_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn revoke(t: &TestIdp, token: &str, hint: Option<&str>) -> StatusCode {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    t.http
        .post(t.url("/revoke"))
        .basic_auth("gateway", Some(GATEWAY_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn introspection_describes_live_tokens_and_nothing_else(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid orders:read offline_access").await;
    let at = introspect(&t, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(at["active"], true);
    assert_eq!(at["client_id"], "gateway");
    assert_eq!(at["scope"], "openid orders:read offline_access");
    assert_eq!(
        at["aud"],
        serde_json::json!(["order", "payment", "inventory"])
    );
    let rt = introspect(&t, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rt["active"], true);
    assert_eq!(rt["token_type"], "refresh_token");
    assert_eq!(rt["username"], "alice");
    for junk in ["junk", "a.b.c", ""] {
        let r = t
            .http
            .post(t.url("/introspect"))
            .basic_auth("gateway", Some(GATEWAY_SECRET))
            .form(&[("token", junk)])
            .send()
            .await
            .unwrap();
        let expected = if junk.is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status(), expected);
        if junk.is_empty() {
            continue;
        }
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            serde_json::json!({"active": false})
        );
    }
    // Another client may not introspect the gateway's refresh token.
    let r: Value = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["active"], false);
}

/// `token` introspected by `client`: `active`.
async fn active_for(t: &TestIdp, client: &str, secret: &str, token: &str) -> Value {
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth(client, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["active"].clone()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_access_token_is_described_only_to_its_client_and_its_audience(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid orders:read").await;
    let at = tokens["access_token"].as_str().unwrap();
    // Its own client, and a resource server named in its aud.
    assert_eq!(active_for(&t, "gateway", GATEWAY_SECRET, at).await, true);
    assert_eq!(active_for(&t, "order", "order-dev-secret", at).await, true);
    // Any other authenticated client learns nothing (RFC 7662 §4).
    assert_eq!(
        active_for(&t, "reporter", "reporter-dev-secret", at).await,
        false
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn introspection_requires_an_authenticated_client(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t
        .http
        .post(t.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = t
        .http
        .post(t.url("/introspect"))
        .form(&[("token", "x"), ("client_id", "cli")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "public clients cannot introspect"
    );
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("gateway", Some("wrong"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn revoking_an_access_token_makes_it_inactive(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid").await;
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(revoke(&t, at, Some("access_token")).await, StatusCode::OK);
    assert_eq!(introspect(&t, at).await["active"], false);
    assert_eq!(t.userinfo(at).await.status(), StatusCode::UNAUTHORIZED);
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 §2.2).
    assert_eq!(revoke(&t, at, None).await, StatusCode::OK);
    assert_eq!(
        revoke(&t, "garbage", Some("refresh_token")).await,
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn revoking_a_refresh_token_ends_its_family_and_access_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&t, rt, Some("refresh_token")).await, StatusCode::OK);
    assert_eq!(introspect(&t, rt).await["active"], false);
    let r = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        t.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_client_cannot_revoke_another_clients_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    for token in [
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    ] {
        let r = t
            .http
            .post(t.url("/revoke"))
            .basic_auth("reporter", Some("reporter-dev-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the answer reveals nothing");
        assert_eq!(
            introspect(&t, token).await["active"],
            true,
            "but nothing was revoked"
        );
    }
    let r = t
        .http
        .post(t.url("/revoke"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "revocation needs client authentication"
    );
}
