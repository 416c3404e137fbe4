//! Issue 2, rule 6: userinfo.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn;

#[sqlx::test(migrations = "../migrations/idp")]
async fn userinfo_answers_get_and_post_with_claims_by_scope(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid").await;
    let at = tokens["access_token"].as_str().unwrap();
    let r = t
        .http
        .post(t.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body["sub"].is_string());
    assert!(
        body.get("email").is_none() && body.get("name").is_none(),
        "no profile/email scope: {body}"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn userinfo_refuses_missing_bad_and_foreign_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t.http.get(t.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="baton-idp""#
    );

    for bad in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
        &"x".repeat(10_000),
    ] {
        let r = t.userinfo(bad).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            &bad[..bad.len().min(20)]
        );
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    // A tampered payload fails the signature.
    let tokens = t.gateway_tokens("openid").await;
    let at = tokens["access_token"].as_str().unwrap();
    let mut parts: Vec<&str> = at.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&{
            let mut p = crate::helpers::payload(at);
            p["roles"] = serde_json::json!(["admin"]);
            p
        })
        .unwrap(),
    );
    parts[1] = &forged_payload;
    assert_eq!(
        t.userinfo(&parts.join(".")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The ID token is not an access token (typ JWT, not at+jwt).
    assert_eq!(
        t.userinfo(tokens["id_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // A service token has no user and no openid scope: 403 insufficient_scope.
    let cc: Value = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = t.userinfo(cc["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}
