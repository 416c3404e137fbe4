//! Brute-force defence: growing lock-outs per account name, per client id
//! and per address, that reveal nothing about which accounts exist, and an
//! audit trail of the failures.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{Browser, TestIdp, gateway_authorize, spawn};

const LOCKED: &str = "Too many failed sign-in attempts";

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
    let csrf = b.login_csrf().await;
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
    let csrf = b.login_csrf().await;
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
    let csrf = b.login_csrf().await;
    for i in 0..20 {
        attempt(&b, &csrf, &format!("user{i}"), "guess").await;
    }
    let (_, html) = attempt(&b, &csrf, "bob", "bob-password").await;
    assert!(
        html.contains(LOCKED),
        "this address is locked for every account"
    );
}

async fn client_credentials(
    t: &TestIdp,
    secret: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut r = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(addr) = forwarded_for {
        r = r.header("x-forwarded-for", addr);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn client_authentication_failures_lock_only_where_they_come_from(pool: PgPool) {
    let t = spawn(pool).await;
    for _ in 0..10 {
        let (status, _) = client_credentials(&t, "wrong", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // This (client, address) is locked: another wrong secret is told so.
    let (status, body) = client_credentials(&t, "wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many"),
        "{body}"
    );
    // The right secret is never refused: it cannot be guessed, so a lock on it
    // would only serve whoever sent the failures.
    let (status, _) = client_credentials(&t, "reporter-dev-secret", None).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM auth_throttle ORDER BY key")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(
        keys,
        ["addr:client-127.0.0.1", "client:reporter@127.0.0.1"],
        "never the client id alone"
    );
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = 'client_auth_failed' AND client_id = 'reporter'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(failed, 10);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_flood_of_wrong_secrets_from_many_addresses_cannot_lock_the_real_client_out(
    pool: PgPool,
) {
    use futures::StreamExt;
    let t = crate::helpers::spawn_with(pool, |c| {
        c.trusted_proxies = platform::client_ip::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    // 400 wrong secrets for the gateway's client id from 40 addresses, 50 at once.
    let answers: Vec<StatusCode> = futures::stream::iter(0..400)
        .map(|i| {
            let (http, url) = (t.http.clone(), t.url("/token"));
            async move {
                http.post(url)
                    .basic_auth("gateway", Some(format!("guess-{i}")))
                    .header("x-forwarded-for", format!("198.51.100.{}", i % 40))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert!(answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    // The real gateway still refreshes and redeems codes.
    let (status, body) = t.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.gateway_tokens("openid").await;
}
