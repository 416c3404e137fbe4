//! Refresh before relay: near expiry the gateway refreshes first, once per
//! session however many requests arrive, and a refused refresh ends the session.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Browser, Options, Stack};

/// Short-lived tokens: 6 s, refreshed when within 3 s of expiry.
fn short_lived() -> Options {
    Options {
        access_ttl: Duration::from_secs(6),
        refresh_before: 3,
        ..Default::default()
    }
}

/// The `jti` of the token the upstream received for `GET /api/orders`.
async fn relayed_jti(browser: &Browser) -> String {
    let response = browser.get("/api/orders").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the session's access token is within the refresh margin.
pub async fn until_near_expiry(browser: &Browser, margin: i64) {
    let expires_at = browser.session().await["access_token_expires_at"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let wait = (expires_at - margin - now + 1).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
}

#[sqlx::test(migrations = false)]
async fn a_token_about_to_expire_is_refreshed_before_it_is_relayed(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, short_lived()).await;
    let browser = stack.signed_in("alice").await;
    let first = relayed_jti(&browser).await;
    assert_eq!(
        relayed_jti(&browser).await,
        first,
        "a fresh token is reused, not refreshed"
    );
    let expires_at = browser.session().await["access_token_expires_at"]
        .as_i64()
        .unwrap();

    until_near_expiry(&browser, 3).await;
    let second = relayed_jti(&browser).await;
    assert_ne!(second, first, "refreshed before relay");
    let renewed = browser.session().await["access_token_expires_at"]
        .as_i64()
        .unwrap();
    assert!(renewed > expires_at);
    assert_eq!(
        browser.session().await["authenticated"],
        true,
        "no new sign-in needed"
    );
}

#[sqlx::test(migrations = false)]
async fn twenty_parallel_requests_during_a_refresh_all_succeed_with_one_refresh(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, short_lived()).await;
    let browser = stack.signed_in("carol").await;
    let before = relayed_jti(&browser).await;
    until_near_expiry(&browser, 3).await;

    let calls = (0..20).map(|_| relayed_jti(&browser));
    let jtis = futures::future::join_all(calls).await;
    // Every request succeeded (relayed_jti asserts 200) with the same new
    // token: one refresh, whose result the others waited for. Had a waiting
    // request redeemed the rotated refresh token again, the IdP's reuse
    // detection would have revoked the family and requests would fail.
    assert!(jtis.iter().all(|j| j == &jtis[0]), "one refresh: {jtis:?}");
    assert_ne!(jtis[0], before);
    // The session still works afterwards (its refresh token was not revoked).
    assert_eq!(relayed_jti(&browser).await, jtis[0]);
}

#[sqlx::test(migrations = false)]
async fn a_refused_refresh_ends_the_session_with_a_sign_in_hint(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // The refresh token dies before the access token nears expiry.
    let options = Options {
        refresh_ttl: Duration::from_secs(1),
        ..short_lived()
    };
    let stack = Stack::with(pool, connect, options).await;
    let browser = stack.signed_in("alice").await;
    until_near_expiry(&browser, 3).await;

    let api = browser.get("/api/orders").await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"], "session_ended");
    assert_eq!(body["sign_in"], "/auth/login?return_to=%2Fapi%2Forders");
    assert_eq!(
        browser.session().await["authenticated"],
        false,
        "the session is gone"
    );
    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM sessions"#)
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(count, 0);

    // A page navigation in the same situation is sent to sign in.
    let other = stack.signed_in("alice").await;
    until_near_expiry(&other, 3).await;
    let page = other
        .client
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
}

#[sqlx::test(migrations = false)]
async fn two_replicas_sharing_a_session_refresh_it_once(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut stack = Stack::with(pool, connect, short_lived()).await;
    let replica = stack.replica().await;
    let browser = stack.signed_in("alice").await;
    let before = relayed_jti(&browser).await;
    until_near_expiry(&browser, 3).await;

    // Ten requests to each replica at once (the cookie goes to both, as behind
    // a load balancer). The in-process lock cannot coordinate them; the session
    // refresh lease does: one replica refreshes, the other finds the new token.
    let at = |base: String| {
        let client = browser.client.clone();
        async move {
            let response = client
                .get(format!("{base}/api/orders"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "via {base}");
            response.json::<Value>().await.unwrap()["jti"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let calls = (0..20).map(|i| {
        at(if i % 2 == 0 {
            stack.gateway.clone()
        } else {
            replica.clone()
        })
    });
    let jtis = futures::future::join_all(calls).await;
    assert!(
        jtis.iter().all(|j| j == &jtis[0]),
        "one refresh across replicas: {jtis:?}"
    );
    assert_ne!(jtis[0], before);
}
