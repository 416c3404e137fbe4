//! Issue 2, rule 5: refresh tokens rotate, a reuse revokes the family, and a
//! refresh needs its own client, an active user and a live session.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;
use guard::dpop::DpopKey;

use crate::helpers::{error_of, payload, spawn};
use crate::token::{code_for, redeem};

#[sqlx::test(migrations = "../migrations/idp")]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family(pool: PgPool) {
    let t = spawn(pool).await;
    let first = t.gateway_tokens("openid orders:read offline_access").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let r = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "rotated");
    let a1: AccessClaims = t
        .verify(first["access_token"].as_str().unwrap(), "at+jwt", "order")
        .await;
    let a2: AccessClaims = t
        .verify(second["access_token"].as_str().unwrap(), "at+jwt", "order")
        .await;
    assert_eq!(
        (a2.sub.as_str(), a2.sid.as_deref()),
        (a1.sub.as_str(), a1.sid.as_deref())
    );
    assert_ne!(a1.jti, a2.jti);
    assert!(second["id_token"].is_string());

    // A narrower scope is fine; what was never granted is left out (RFC 6749
    // §3.3), and a request of nothing granted is refused.
    let r = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("scope", "orders:write"),
        ])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_scope");
    let r = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("scope", "openid orders:write"),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let narrowed: Value = r.json().await.unwrap();
    assert_eq!(narrowed["scope"], "openid");
    let rt2 = narrowed["refresh_token"].as_str().unwrap().to_owned();

    // rt1 again: reuse. The whole family dies, including rt2 and its access token.
    let r = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
    let r = t
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt2)])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
    assert_eq!(
        t.userinfo(second["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_grant_needs_an_active_user_and_a_live_session(pool: PgPool) {
    let t = spawn(pool).await;
    let set_disabled = |disabled: bool| {
        sqlx::query("UPDATE users SET disabled = $1 WHERE username = 'alice'")
            .bind(disabled)
            .execute(&t.pool)
    };
    let tokens = t.gateway_tokens("openid orders:read offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();

    // A disabled user gets nothing, and the refused refresh does not use up the token.
    set_disabled(true).await.unwrap();
    let (status, body) = t.refresh(&rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "the user is no longer active");
    set_disabled(false).await.unwrap();
    let (status, body) = t.refresh(&rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["roles"],
        serde_json::json!(["customer"])
    );
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    // A code redeemed for a user disabled since the sign-in: refused too.
    let code = code_for(&t, "openid").await;
    set_disabled(true).await.unwrap();
    let r = t.token(&redeem(&code)).await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    set_disabled(false).await.unwrap();

    // The sign-in session ended (signed out elsewhere): refused.
    sqlx::query("UPDATE sso_sessions SET ended_at = now()")
        .execute(&t.pool)
        .await
        .unwrap();
    let (status, body) = t.refresh(&rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "the sign-in session has ended");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_refresh_token_only_works_for_its_own_client(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let r = t.cli_token(&form, Some(&DpopKey::generate())).await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
    // The legitimate client is unaffected.
    assert_eq!(
        t.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .await
            .status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn one_refresh_token_sent_twice_at_once_is_a_reuse(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid orders:read offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let answers = futures::future::join_all((0..6).map(|_| t.refresh(rt))).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(won.len(), 1, "exactly one request rotates it: {statuses:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
    // The others were replays: the family is revoked, the winner's new tokens too.
    let (_, body) = t.refresh(won[0]["refresh_token"].as_str().unwrap()).await;
    assert_eq!(body["error"], "invalid_grant");
    let access = won[0]["access_token"].as_str().unwrap();
    assert_eq!(t.userinfo(access).await.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_expired_refresh_token_is_refused_and_not_a_reuse(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&t.pool)
        .await
        .unwrap();
    let (_, body) = t.refresh(rt).await;
    assert_eq!(
        (body["error"].as_str(), body["error_description"].as_str()),
        (Some("invalid_grant"), Some("refresh token expired"))
    );
    let (rotated, revoked): (i64, i64) =
        sqlx::query_as("SELECT count(rotated_at), count(revoked_at) FROM refresh_tokens")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!((rotated, revoked), (0, 0), "the refusal changed nothing");
}
