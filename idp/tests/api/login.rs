//! Issue 2, rule 3: the login page, SSO and the whole browser flow.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;

use crate::helpers::{
    GATEWAY_REDIRECT, VERIFIER, cli_authorize, csrf_of, gateway_authorize, location_query, payload,
    spawn,
};

/// The browser-like flow of issue 2: GET /authorize → form → POST with CSRF →
/// code → /token → /userinfo, with a cookie jar and no shortcuts.
#[sqlx::test(migrations = "../migrations/idp")]
async fn the_whole_authorization_code_flow_works_like_a_browser(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let page = browser
        .authorize(&gateway_authorize(
            "openid profile email orders:read offline_access",
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = browser.post_login(&csrf, "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("baton_idp_session="))
        .expect("an SSO session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    assert!(
        !session_cookie.contains("Secure"),
        "http issuer: no Secure flag"
    );
    let (target, q) = location_query(&r);
    assert_eq!(target, GATEWAY_REDIRECT);
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], t.idp.issuer);

    let r = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", GATEWAY_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|s| s.len() == 43)
    );

    let access: AccessClaims = t
        .verify(tokens["access_token"].as_str().unwrap(), "at+jwt", "order")
        .await;
    let info: Value = t
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], access.sub.as_str());
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["name"], "Alice Adams");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(access.roles, vec!["customer"]);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn wrong_password_and_unknown_user_get_the_same_generic_error(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let page = browser
        .authorize(&gateway_authorize("openid"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let wrong = browser.post_login(&csrf, "alice", "not-her-password").await;
    assert_eq!(wrong.status(), StatusCode::OK);
    let wrong = wrong.text().await.unwrap();
    let unknown = browser
        .post_login(&csrf, "mallory", "whatever")
        .await
        .text()
        .await
        .unwrap();
    for html in [&wrong, &unknown] {
        assert!(html.contains("Invalid username or password."));
        assert!(
            html.contains(r#"name="csrf_token""#),
            "the form is shown again"
        );
    }
    let strip = |h: &str| h.replace("mallory", "alice");
    assert_eq!(
        strip(&wrong),
        strip(&unknown),
        "the two answers differ only by the echoed username"
    );
    // The flow survives a failed attempt.
    let ok = browser.post_login(&csrf, "alice", "alice-password").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn the_login_form_requires_its_csrf_token_and_flow_cookie(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let page = browser
        .authorize(&gateway_authorize("openid"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let r = browser
        .post_login("forged", "alice", "alice-password")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = browser.post_login("", "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Another browser (no flow cookie) cannot use this form's token.
    let other = t.browser();
    let r = other.post_login(&csrf, "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    // Repeated fields and wrong content types are refused, never a 500.
    let r = browser
        .http
        .post(t.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "alice"),
            ("username", "bob"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = browser
        .http
        .post(t.url("/login"))
        .body("username=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = browser
        .http
        .post(t.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "al\0ice"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_sso_session_signs_in_a_second_client_without_the_form(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    browser
        .sign_in_gateway("carol", "carol-password", "openid")
        .await;
    // The cli (public) client, same browser: straight back with a code.
    let r = browser
        .authorize(&cli_authorize("openid orders:read"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, params) = location_query(&r);
    assert_eq!(params["state"], "cli-state");
    // The public client redeems it with PKCE (and its DPoP key), no secret.
    let r = t
        .cli_redeem(&params["code"], Some(&guard::dpop::DpopKey::generate()))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["client_id"], "cli");
    assert_eq!(access["roles"], serde_json::json!(["customer", "support"]));

    // prompt=none with the session: a code, no form.
    let mut q = gateway_authorize("openid");
    q.push(("prompt".into(), "none".into()));
    let r = browser.authorize(&q).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location_query(&r).1.contains_key("code"));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn prompt_login_and_max_age_force_the_form_and_refresh_auth_time(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    browser
        .sign_in_gateway("alice", "alice-password", "openid")
        .await;
    for (k, v) in [("prompt", "login"), ("max_age", "0")] {
        let mut q = gateway_authorize("openid");
        q.push((k.into(), v.into()));
        let r = browser.authorize(&q).await;
        assert_eq!(r.status(), StatusCode::OK, "{k}={v} shows the form");
        assert!(r.text().await.unwrap().contains(r#"name="password""#));
    }
    // A generous max_age does not.
    let mut q = gateway_authorize("openid");
    q.push(("max_age".into(), "3600".into()));
    assert_eq!(browser.authorize(&q).await.status(), StatusCode::SEE_OTHER);

    // Re-authentication keeps the session id (sid) but rotates the cookie.
    let mut q = gateway_authorize("openid");
    let before = location_query(&browser.authorize(&q).await).1["code"].clone();
    q.push(("prompt".into(), "login".into()));
    let r = browser.sign_in(&q, "alice", "alice-password").await;
    let after = location_query(&r).1["code"].clone();
    let t = &t;
    let sid = |code: String| async move {
        let r = t
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", GATEWAY_REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .await;
        payload(
            r.json::<Value>().await.unwrap()["id_token"]
                .as_str()
                .unwrap(),
        )["sid"]
            .clone()
    };
    assert_eq!(sid(before).await, sid(after).await);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_different_user_signing_in_ends_the_previous_session(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let code = browser
        .sign_in_gateway("alice", "alice-password", "openid offline_access")
        .await;
    let r = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", GATEWAY_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    let alice: Value = r.json().await.unwrap();
    let mut q = gateway_authorize("openid");
    q.push(("prompt".into(), "login".into()));
    let r = browser.sign_in(&q, "bob", "bob-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", alice["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "alice's session ended with her refresh tokens"
    );
}
