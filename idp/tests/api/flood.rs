//! Issue 13: a flood of wrong passwords cannot take sign-in away. Attempts
//! in flight count against the lock-outs, the password queue is bounded, and
//! beyond it a sign-in is answered at once.

use futures::StreamExt;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{Browser, TestIdp, gateway_authorize, spawn_with};

/// An IdP behind a trusted proxy (127.0.0.1), so tests choose each request's
/// address with `X-Forwarded-For`.
async fn behind_proxy(pool: PgPool, threads: usize) -> TestIdp {
    spawn_with(pool, |c| {
        c.trusted_proxies = platform::client_ip::TrustedProxies::parse("127.0.0.1").unwrap();
        c.blocking_threads = threads;
    })
    .await
}

/// `n` wrong-password posts at once through one browser's login flow, the
/// `i`-th from `addr(i)` as user `user(i)`: each answer's status and body.
async fn flood(
    b: &Browser,
    n: usize,
    addr: impl Fn(usize) -> String,
    user: impl Fn(usize) -> String,
) -> Vec<(StatusCode, Option<String>, String)> {
    let csrf = b.login_csrf().await;
    futures::stream::iter(0..n)
        .map(|i| {
            let request = b
                .http
                .post(format!("{}/login", b.base))
                .header("x-forwarded-for", addr(i))
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("username", &user(i)),
                    ("password", "wrong"),
                ]);
            async move {
                let r = request.send().await.unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (r.status(), retry, r.text().await.unwrap())
            }
        })
        .buffer_unordered(n)
        .collect()
        .await
}

async fn failures_counted(t: &TestIdp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = 'login_failed'")
        .fetch_one(&t.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn concurrent_wrong_passwords_from_one_address_never_exceed_its_limit(pool: PgPool) {
    let t = behind_proxy(pool, 2).await;
    // 100 at once from one address, each for another name (below every
    // account limit): the address allows 20 failures, so at most 20 hashes.
    let answers = flood(
        &t.browser(),
        100,
        |_| "203.0.113.5".into(),
        |i| format!("user-{i}"),
    )
    .await;
    let failed = failures_counted(&t).await;
    assert!(failed <= 20, "{failed} passwords checked for one address");
    let locked = answers
        .iter()
        .filter(|(_, _, html)| html.contains("Too many failed sign-in attempts"))
        .count();
    assert!(locked >= 80 - answers.iter().filter(|a| a.0 == 503).count());
    // And the same for one account name from many addresses: 5.
    let answers = flood(
        &t.browser(),
        60,
        |i| format!("198.51.100.{i}"),
        |_| "carol".into(),
    )
    .await;
    assert_eq!(answers.len(), 60);
    let carol: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_events WHERE kind = 'login_failed' AND username = 'carol'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(carol <= 5, "{carol} passwords checked for one account");
    // Nothing is left reserved once the answers are in.
    let in_flight: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(in_flight), 0)::int8 FROM auth_throttle")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(in_flight, 0);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn beyond_the_password_queue_a_sign_in_is_answered_at_once_with_try_again(pool: PgPool) {
    // One thread, eight waiting checks: 40 sign-ins at once from 40 addresses.
    let t = behind_proxy(pool, 1).await;
    let answers = flood(
        &t.browser(),
        40,
        |i| format!("198.51.100.{i}"),
        |i| format!("user-{i}"),
    )
    .await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some are told to come back");
    for (_, retry, html) in &busy {
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(
            html.contains("try again") && html.contains("csrf_token"),
            "{html}"
        );
    }
    // A refused attempt is not a failure, and the real user still gets in.
    assert_eq!(
        failures_counted(&t).await as usize,
        answers.len() - busy.len()
    );
    let r = t
        .browser()
        .sign_in(&gateway_authorize("openid"), "alice", "alice-password")
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn ipv6_addresses_share_the_limit_of_their_64(pool: PgPool) {
    let t = behind_proxy(pool, 2).await;
    // 25 attempts, one after another, each from another address of one /64.
    let b = t.browser();
    for i in 0..25 {
        flood(
            &b,
            1,
            |_| format!("2001:db8:5:6::{:x}", i + 1),
            |_| format!("u{i}"),
        )
        .await;
    }
    assert!(failures_counted(&t).await <= 20);
    let answers = flood(&b, 1, |_| "2001:db8:5:6:ffff::1".into(), |_| "bob".into()).await;
    assert!(answers[0].2.contains("Too many failed sign-in attempts"));
    // Another /64 is not affected.
    let answers = flood(&b, 1, |_| "2001:db8:5:7::1".into(), |_| "bob".into()).await;
    assert!(answers[0].2.contains("Invalid username or password."));
}
