//! Brute force against the real IdP binary: password guessing at the login
//! form (per account name and per address) and client-secret guessing at the
//! token endpoint (per client and address, never the client as a whole);
//! growing lock-outs, a message that does not reveal whether the account
//! exists, and the audit trail in `auth_events`.

use reqwest::StatusCode;
use sqlx::Connection;

use super::oauth::{Agent, authorize_url, pkce, post_login};
use crate::harness::client::{CLI_REDIRECT_URI, json_answer};
use crate::harness::{Stack, User};

/// The alert shown above the login form, if any.
fn alert(page: &str) -> Option<String> {
    let start = page.find(r#"role="alert">"#)? + r#"role="alert">"#.len();
    let end = page[start..].find('<')? + start;
    Some(page[start..end].trim().to_owned())
}

/// One login attempt as `user` with `password`: the alert shown, or `None`
/// when it succeeded (redirect to the client).
async fn attempt(stack: &Stack, user: &str, password: &str) -> Option<String> {
    let agent = Agent::new();
    let (_, challenge) = pkce();
    let page = agent
        .http
        .get(authorize_url(
            stack,
            "cli",
            CLI_REDIRECT_URI,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .expect("GET /authorize");
    assert_eq!(page.status(), StatusCode::OK);
    let answer = post_login(&agent, stack, page, user, password).await;
    if answer.status().is_redirection() {
        return None;
    }
    assert_eq!(answer.status(), StatusCode::OK, "the form again");
    let body = answer.text().await.expect("page");
    Some(alert(&body).unwrap_or_else(|| panic!("no alert on the failed sign-in page:\n{body}")))
}

pub(super) async fn idp_db(stack: &Stack) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&stack.idp_database_url)
        .await
        .expect("the IdP's database")
}

/// Seconds left on `key`'s lock-out.
async fn locked_for(db: &mut sqlx::PgConnection, key: &str) -> f64 {
    sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM locked_until - now())::float8, 0) FROM auth_throttle WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(db)
    .await
    .expect("auth_throttle")
    .unwrap_or(0.0)
}

async fn events(db: &mut sqlx::PgConnection, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = $1")
        .bind(kind)
        .fetch_one(db)
        .await
        .expect("auth_events")
}

#[tokio::test]
async fn password_guessing_locks_the_account_name_with_growing_delays_and_reveals_nothing() {
    let stack = Stack::start().await;
    let mut db = idp_db(&stack).await;

    let mut failed = Vec::new();
    for i in 0..5 {
        failed.push(
            attempt(&stack, "alice", &format!("guess-{i}"))
                .await
                .expect("refused"),
        );
        failed.push(
            attempt(&stack, "nobody-here", &format!("guess-{i}"))
                .await
                .expect("refused"),
        );
    }
    assert!(
        failed.windows(2).all(|w| w[0] == w[1]),
        "a wrong password reads the same for a real and an unknown account: {failed:?}"
    );

    // Locked now: even the right password is refused, with a message that
    // reads the same whether or not the account exists.
    let locked_alice = attempt(&stack, "alice", &User::Alice.password()).await;
    let locked_nobody = attempt(&stack, "nobody-here", "whatever").await;
    let locked_alice = locked_alice.expect("the right password is refused while locked");
    assert_eq!(Some(&locked_alice), locked_nobody.as_ref());
    assert_ne!(locked_alice, failed[0], "the lock-out is announced");
    assert!(!locked_alice.to_lowercase().contains("alice"));
    assert!(!locked_alice.to_lowercase().contains("exist"));
    // Other accounts still sign in from the same address (below its limit).
    assert_eq!(
        attempt(&stack, "carol", &User::Carol.password()).await,
        None
    );

    // Growing delays: 30 s at the limit; when it has run out (moved to the
    // past here rather than waited for), the next failure locks for twice as long.
    let first = locked_for(&mut db, "user:alice").await;
    assert!((20.0..=31.0).contains(&first), "first lock-out {first}s");
    sqlx::query("UPDATE auth_throttle SET locked_until = now() - interval '1 second' WHERE key = 'user:alice'")
        .execute(&mut db)
        .await
        .expect("expire the lock-out");
    assert!(attempt(&stack, "alice", "guess-again").await.is_some());
    let second = locked_for(&mut db, "user:alice").await;
    assert!((50.0..=61.0).contains(&second), "second lock-out {second}s");

    // The audit trail.
    assert!(events(&mut db, "login_failed").await >= 11);
    assert!(events(&mut db, "login_locked").await >= 2);
    assert!(events(&mut db, "login_succeeded").await >= 1);
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_locked() {
    let stack = Stack::start().await;
    // 20 failures from one address, each on a different name (below every
    // per-account limit): the address is locked, for every name.
    for i in 0..20 {
        let alert = attempt(&stack, &format!("user-{i}"), "guess").await;
        assert!(alert.is_some(), "attempt {i}");
    }
    let locked = attempt(&stack, "carol", &User::Carol.password()).await;
    assert!(
        locked.is_some(),
        "the address is locked: carol's right password is refused"
    );
    let mut db = idp_db(&stack).await;
    let left = locked_for(&mut db, "addr:127.0.0.1").await;
    assert!(left > 30.0, "the address lock-out {left}s");
}

pub(super) async fn client_auth(
    stack: &Stack,
    id: &str,
    secret: &str,
) -> (StatusCode, serde_json::Value) {
    json_answer(
        reqwest::Client::new()
            .post(stack.idp.join("token").expect("url"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST /token"),
    )
    .await
}

#[tokio::test]
async fn client_secret_guessing_locks_the_guesser_never_the_client() {
    let stack = Stack::start().await;
    let mut failures = Vec::new();
    for i in 0..10 {
        let (status, body) = client_auth(&stack, "gateway", &format!("guess-{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        failures.push(body);
        let (status, unknown) = client_auth(&stack, "no-such-client", &format!("guess-{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown, failures[0], "unknown and known clients fail alike");
    }
    // This address is locked for these client ids: the next guess is told
    // so, alike for a real and an unknown client.
    let (status, locked) = client_auth(&stack, "gateway", "guess-again").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{locked}");
    assert_eq!(locked["error"], "invalid_client");
    let (_, unknown) = client_auth(&stack, "no-such-client", "x").await;
    assert_eq!(locked, unknown);
    assert_ne!(locked, failures[0], "the lock-out is announced");

    let mut db = idp_db(&stack).await;
    assert!(locked_for(&mut db, "client:gateway@127.0.0.1").await > 20.0);
    assert_eq!(
        locked_for(&mut db, "client:gateway").await,
        0.0,
        "the client id itself is never locked"
    );
    // A right secret is never refused, not even from here: a secret cannot
    // be guessed, and refusing it would hand the lock to whoever failed.
    let (status, body) = client_auth(&stack, "reporter", "reporter-dev-secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(events(&mut db, "client_auth_failed").await >= 20);
    assert!(events(&mut db, "client_auth_locked").await >= 2);
}
