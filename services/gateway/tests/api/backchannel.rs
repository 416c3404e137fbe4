//! Issue 15 item 5: the gateway's back-channel logout endpoint. A logout
//! token from the IdP ends every gateway session of its `sid` (or of its
//! `sub`); anything that is not exactly such a token (§2.6) is refused with
//! 400 and ends nothing.

use std::time::{Duration, Instant};

use guard::testing::{KeyKind, TestKey, TokenBuilder};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Browser, Stack};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Only bounds a broken build's wait: delivery takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

/// The IdP session and user of the gateway session created last.
async fn last_session(stack: &Stack) -> (String, String) {
    let row = sqlx::query!(
        r#"SELECT idp_sid AS "idp_sid!", idp_sub AS "idp_sub!" FROM sessions ORDER BY created_at DESC LIMIT 1"#
    )
    .fetch_one(&stack.db)
    .await
    .unwrap();
    (row.idp_sid, row.idp_sub)
}

/// Valid logout-token claims for the gateway about `sid` and `sub`.
fn claims(stack: &Stack, sid: &str, sub: &str) -> Value {
    let now = guard::unix_now();
    json!({
        "iss": stack.idp.issuer,
        "aud": "gateway",
        "iat": now,
        "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sid": sid,
        "sub": sub,
        "events": { EVENT: {} },
    })
}

/// `claims` signed by the IdP's current key with `typ`.
async fn signed(stack: &Stack, typ: &str, claims: &Value) -> String {
    stack.idp.state.keys.sign_jwt(typ, claims).await.unwrap().0
}

async fn post(stack: &Stack, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(stack.url("/backchannel-logout"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cache = r.headers().get("cache-control").cloned();
    assert_eq!(cache.unwrap(), "no-store");
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn signed_in(browser: &Browser) -> bool {
    browser.session().await["authenticated"] == true
}

#[sqlx::test(migrations = false)]
async fn a_logout_token_ends_the_sessions_of_its_sid_or_its_sub(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let alice = stack.signed_in("alice").await;
    let (alice_sid, alice_sub) = last_session(&stack).await;
    let carol = stack.signed_in("carol").await;
    let (_, carol_sub) = last_session(&stack).await;
    let carol_again = stack.signed_in("carol").await; // another browser, another IdP session

    let token = signed(
        &stack,
        "logout+jwt",
        &claims(&stack, &alice_sid, &alice_sub),
    )
    .await;
    let (status, body) = post(&stack, &[("logout_token", &token)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!signed_in(&alice).await, "alice's session ended");
    assert!(signed_in(&carol).await && signed_in(&carol_again).await);

    // §2.6 step 10: the same token again is a replay.
    let (status, body) = post(&stack, &[("logout_token", &token)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");

    // Only `sub`: every session of that user ends.
    let mut only_sub = claims(&stack, "", &carol_sub);
    only_sub.as_object_mut().unwrap().remove("sid");
    let token = signed(&stack, "logout+jwt", &only_sub).await;
    assert_eq!(
        post(&stack, &[("logout_token", &token)]).await.0,
        StatusCode::OK
    );
    assert!(!signed_in(&carol).await && !signed_in(&carol_again).await);
}

#[sqlx::test(migrations = false)]
async fn the_idp_ending_its_session_ends_the_gateway_session(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let alice = stack.signed_in("alice").await;
    let bob = stack.signed_in("bob").await;
    let (sid, _) = last_session(&stack).await;

    // The IdP ends bob's session (as sign-out at any client does); it posts
    // a logout token to the URI `idp seed` registered for the gateway.
    let ended = idp::sessions::end(
        &stack.idp.state.db,
        sid.parse().unwrap(),
        "test",
        Duration::from_secs(300),
    )
    .await
    .unwrap();
    assert!(ended);
    let deadline = Instant::now() + DEADLINE;
    while signed_in(&bob).await {
        assert!(
            Instant::now() < deadline,
            "bob's gateway session outlived his IdP session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(signed_in(&alice).await, "other sessions stay");
}

#[sqlx::test(migrations = false)]
async fn anything_but_a_valid_logout_token_is_refused_and_ends_nothing(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let alice = stack.signed_in("alice").await;
    let (sid, sub) = last_session(&stack).await;
    let valid = claims(&stack, &sid, &sub);
    let with = |name: &str, value: Value| {
        let mut c = valid.clone();
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = valid.clone();
        c.as_object_mut().unwrap().remove(name);
        c
    };

    let mut anonymous = without("sid");
    anonymous.as_object_mut().unwrap().remove("sub");

    let mut refused: Vec<(&str, String)> = Vec::new();
    // Signatures: a changed payload, and a key the IdP never published
    // presented under the IdP's own key id.
    let good = signed(&stack, "logout+jwt", &valid).await;
    let mut parts: Vec<&str> = good.split('.').collect();
    let other_payload = signed(&stack, "logout+jwt", &with("sid", json!("another")))
        .await
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    parts[1] = &other_payload;
    refused.push(("payload changed", parts.join(".")));
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let attacker = TestKey::generate(KeyKind::Rsa, &kid);
    let mut forged = TokenBuilder::new(&stack.idp.issuer, &attacker).header("typ", "logout+jwt");
    for name in ["sub", "aud", "client_id", "scope", "roles", "nbf", "sid"] {
        forged = forged.without_claim(name);
    }
    for (name, value) in valid.as_object().unwrap() {
        forged = forged.claim(name, value.clone());
    }
    refused.push(("signed by an unpublished key", forged.sign()));
    // Claims, each signed by the IdP's real key.
    for (what, typ, claims) in [
        ("wrong aud", "logout+jwt", with("aud", json!("cli"))),
        (
            "wrong iss",
            "logout+jwt",
            with("iss", json!("https://evil.example")),
        ),
        ("nonce present", "logout+jwt", with("nonce", json!("n-1"))),
        ("no events", "logout+jwt", without("events")),
        (
            "another event",
            "logout+jwt",
            with("events", json!({"urn:other": {}})),
        ),
        (
            "event not an object",
            "logout+jwt",
            with("events", json!({ EVENT: true })),
        ),
        ("no sid and no sub", "logout+jwt", anonymous),
        ("no jti", "logout+jwt", without("jti")),
        ("no iat", "logout+jwt", without("iat")),
        (
            "expired",
            "logout+jwt",
            with("exp", json!(guard::unix_now() - 600)),
        ),
        ("an ID token's typ", "JWT", valid.clone()),
        ("an access token's typ", "at+jwt", valid.clone()),
    ] {
        refused.push((what, signed(&stack, typ, &claims).await));
    }
    for (what, token) in &refused {
        let (status, body) = post(&stack, &[("logout_token", token)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}");
    }
    // The request itself: no token, two tokens, not a form.
    assert_eq!(post(&stack, &[]).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&stack, &[("logout_token", &good), ("logout_token", &good)])
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let r = reqwest::Client::new()
        .post(stack.url("/backchannel-logout"))
        .json(&json!({ "logout_token": good }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    assert!(
        signed_in(&alice).await,
        "no refused token ended the session"
    );
    assert_eq!(
        post(&stack, &[("logout_token", &good)]).await.0,
        StatusCode::OK
    );
    assert!(!signed_in(&alice).await);
}
