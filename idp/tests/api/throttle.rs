//! Brute-force defence: growing lock-outs per account name, per client id
//! and per address, that reveal nothing about which accounts exist, and an
//! audit trail of the failures.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{Browser, TestIdp, csrf_of, gateway_authorize, spawn};

const LOCKED: &str = "Too many failed sign-in attempts";

async fn form(b: &Browser) -> String {
    csrf_of(
        &b.authorize(&gateway_authorize("openid"))
            .await
            .text()
            .await
            .unwrap(),
    )
}

async fn attempt(b: &Browser, csrf: &str, user: &str, password: &str) -> (StatusCode, String) {
    let r = b.post_login(csrf, user, password).await;
    (r.status(), r.text().await.unwrap_or_default())
}

async fn unlock(t: &TestIdp) {
    sqlx::query("UPDATE auth_throttle SET locked_until = now() - interval '1 second', window_start = now() - interval '1 hour'")
        .execute(&t.pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn repeated_failures_lock_an_account_even_for_the_right_password(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let csrf = form(&b).await;
    for _ in 0..5 {
        let (_, html) = attempt(&b, &csrf, "alice", "guess").await;
        assert!(html.contains("Invalid username or password."));
    }
    let (status, html) = attempt(&b, &csrf, "alice", "alice-password").await;
    assert_eq!(status, StatusCode::OK, "the form again, no redirect");
    assert!(html.contains(LOCKED));
    // The name is compared without case.
    assert!(
        attempt(&b, &csrf, "ALICE", "alice-password")
            .await
            .1
            .contains(LOCKED)
    );
    // Other accounts from the same address are not affected.
    let other = t.browser();
    assert_eq!(
        other
            .sign_in(&gateway_authorize("openid"), "bob", "bob-password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // The lock-out grows: the first is 30 s.
    let secs: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM locked_until - now())::float8 FROM auth_throttle WHERE key = 'user:alice'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!((20.0..=31.0).contains(&secs), "{secs}");

    // Once it has passed, the right password works and clears the counter.
    unlock(&t).await;
    let r = b.post_login(&csrf, "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_throttle WHERE key = 'user:alice'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);

    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM auth_events WHERE username ILIKE 'alice' ORDER BY id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(kinds.iter().filter(|k| *k == "login_failed").count(), 5);
    assert_eq!(kinds.iter().filter(|k| *k == "login_locked").count(), 2);
    assert_eq!(kinds.last().map(String::as_str), Some("login_succeeded"));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_unknown_account_is_locked_out_the_same_way(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let csrf = form(&b).await;
    for _ in 0..5 {
        attempt(&b, &csrf, "mallory", "guess").await;
    }
    let unknown = attempt(&b, &csrf, "mallory", "guess").await.1;
    for _ in 0..5 {
        attempt(&b, &csrf, "carol", "guess").await;
    }
    let known = attempt(&b, &csrf, "carol", "guess").await.1;
    assert!(unknown.contains(LOCKED) && known.contains(LOCKED));
    assert_eq!(
        unknown.replace("mallory", "carol"),
        known,
        "nothing tells the two apart"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn one_address_cannot_try_many_accounts(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let csrf = form(&b).await;
    for i in 0..20 {
        attempt(&b, &csrf, &format!("user{i}"), "guess").await;
    }
    let (_, html) = attempt(&b, &csrf, "bob", "bob-password").await;
    assert!(
        html.contains(LOCKED),
        "this address is locked for every account"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn repeated_client_authentication_failures_lock_the_client_id(pool: PgPool) {
    let t = spawn(pool).await;
    let cc = |secret: &'static str| {
        t.http
            .post(t.url("/token"))
            .basic_auth("reporter", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for _ in 0..10 {
        assert_eq!(
            cc("wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = cc("reporter-dev-secret").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "locked, even with the right secret"
    );
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // Another client is not affected.
    let gateway = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("gateway", Some("gateway-dev-secret"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(gateway.status(), StatusCode::OK);
    unlock(&t).await;
    assert_eq!(
        cc("reporter-dev-secret").await.unwrap().status(),
        StatusCode::OK
    );
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = 'client_auth_failed' AND client_id = 'reporter'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(failed, 10);
}
