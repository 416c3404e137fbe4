//! A slow IdP costs refreshing requests time, never the gateway's database
//! pool: while more sessions than the pool has connections wait for their
//! refresh at the IdP, everyone else is still served, and each session is
//! still refreshed exactly once, across replicas.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Browser, Options, Stack};
use crate::refresh::until_near_expiry;

/// Sessions refreshing at once; the gateway's pool has fewer connections.
const REFRESHING: usize = 6;
const POOL: u32 = 2;

/// `GET <base>/api/orders` with `browser`'s cookie: the status and the relayed `jti`.
async fn orders_at(browser: &Browser, base: &str) -> (StatusCode, Option<String>) {
    let response = browser
        .client
        .get(format!("{base}/api/orders"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["jti"].as_str().map(str::to_owned))
}

#[sqlx::test(migrations = false)]
async fn refreshes_waiting_on_a_slow_idp_leave_the_pool_to_everyone_else(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let options = Options {
        access_ttl: Duration::from_secs(20),
        refresh_before: 10,
        slow_idp: true,
        db_max_connections: Some(POOL),
        // Longer than this test: the held refreshes hang until released.
        idp_timeout_ms: Some(600_000),
        ..Default::default()
    };
    let mut stack = Stack::with(pool, connect, options).await;
    let replica = stack.replica().await;
    let idp = stack.idp_proxy.clone().unwrap();
    let users = ["alice", "carol", "bob"];
    let browsers: Vec<Browser> =
        futures::future::join_all((0..REFRESHING).map(|i| stack.signed_in(users[i % users.len()])))
            .await;
    let mut before = Vec::new();
    for browser in &browsers {
        before.push(orders_at(browser, &stack.gateway).await.1.unwrap());
    }
    for browser in &browsers {
        until_near_expiry(browser, 10).await;
    }

    // Every session needs a refresh now, and the IdP does not answer them.
    idp.hold();
    let mut calls = Vec::new();
    for browser in &browsers {
        for base in [&stack.gateway, &replica, &stack.gateway, &replica] {
            let (browser, base) = (browser.clone(), base.clone());
            calls.push(tokio::spawn(
                async move { orders_at(&browser, &base).await },
            ));
        }
    }
    // Today's code would hold a pooled connection per waiting refresh: only
    // POOL refreshes would ever reach the IdP, the rest waiting for the pool.
    tokio::time::timeout(Duration::from_secs(60), idp.until_refreshes(REFRESHING))
        .await
        .expect("every session's refresh reaches the IdP; none waits for a database connection");

    // While they hang: sessions are read, a page is served, a person signs in
    // (code redemption and a new session row) and calls an API on their fresh token.
    let page = reqwest::get(stack.url("/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    for (browser, base) in browsers
        .iter()
        .zip([&stack.gateway, &replica].iter().cycle())
    {
        let session: Value = browser
            .client
            .get(format!("{base}/auth/session"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["authenticated"], true, "{session}");
    }
    let newcomer = stack.signed_in("alice").await;
    let (status, jti) = orders_at(&newcomer, &replica).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a session that needs no refresh is served"
    );
    assert!(jti.is_some());
    assert_eq!(
        idp.refreshes(),
        REFRESHING,
        "the newcomer needed no refresh"
    );

    idp.release();
    let results = futures::future::join_all(calls).await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    for (i, per_session) in results.chunks(4).enumerate() {
        for (status, jti) in per_session {
            assert_eq!(*status, StatusCode::OK, "session {i}");
            assert_eq!(jti, &per_session[0].1, "session {i}: one new token for all");
        }
        assert_ne!(
            per_session[0].1.as_ref(),
            Some(&before[i]),
            "session {i} refreshed"
        );
    }
    assert_eq!(
        idp.refreshes(),
        REFRESHING,
        "exactly one refresh per session, across both replicas"
    );
}

#[sqlx::test(migrations = false)]
async fn a_browser_that_leaves_mid_refresh_does_not_lose_the_new_tokens(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let options = Options {
        access_ttl: Duration::from_secs(20),
        refresh_before: 10,
        slow_idp: true,
        idp_timeout_ms: Some(600_000),
        ..Default::default()
    };
    let stack = Stack::with(pool, connect, options).await;
    let idp = stack.idp_proxy.clone().unwrap();
    let browser = stack.signed_in("carol").await;
    let before = orders_at(&browser, &stack.gateway).await.1.unwrap();
    until_near_expiry(&browser, 10).await;

    idp.hold();
    let leaving = {
        let (browser, base) = (browser.clone(), stack.gateway.clone());
        tokio::spawn(async move { orders_at(&browser, &base).await })
    };
    idp.until_refreshes(1).await;
    // The browser gives up (tab closed) while the IdP is rotating its token.
    leaving.abort();
    assert!(leaving.await.unwrap_err().is_cancelled());
    idp.release();

    // The rotation was finished and stored: the next request finds the new
    // token (no second refresh, which would replay the rotated refresh token
    // and end the session).
    let (status, after) = orders_at(&browser, &stack.gateway).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(after.unwrap(), before);
    assert_eq!(idp.refreshes(), 1);
}
