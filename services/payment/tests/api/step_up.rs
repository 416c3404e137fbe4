//! Issue 17 item 4: a refund past `PAYMENT_STEP_UP_ABOVE_CENTS` (in total)
//! needs a second factor shown within `PAYMENT_STEP_UP_MAX_AGE_SECS`, else
//! 401 with the RFC 9470 challenge — and a refund retried after stepping up
//! is still made once.

use guard::claims::acr::{PASSWORD, SECOND_FACTOR};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, expect};

const CHALLENGE: &str = r#"Bearer realm="baton", error="insufficient_user_authentication""#;

/// Asserts the RFC 9470 answer and that its challenge asks for a second
/// factor within 300 s.
async fn assert_step_up_required(response: Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with(CHALLENGE), "{challenge}");
    assert!(
        challenge.contains(r#"acr_values="urn:baton:acr:mfa""#)
            && challenge.contains(r#"max_age="300""#),
        "{challenge}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication");
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_large_refund_with_a_password_sign_in_gets_the_step_up_challenge(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    for token in [
        app.bob(),                                // no acr at all
        app.bob_signed_in(PASSWORD, &["pwd"], 0), // a password, just now
        app.bob_signed_in("urn:unknown", &[], 0), // an acr payment does not know
    ] {
        let response = app
            .refund(&token, &charge, json!({ "amount_cents": 20_000 }))
            .await;
        assert_step_up_required(response).await;
    }
    assert_eq!(app.count("SELECT refunded_cents FROM charges").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'charge.refund'")
            .await,
        0
    );

    // The same refund with a fresh second factor goes through.
    let done = expect(
        app.refund(
            &app.bob_stepped_up(),
            &charge,
            json!({ "amount_cents": 20_000 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(done["charge"]["refunded_cents"], 20_000);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_small_refund_needs_no_second_factor(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    let done = app
        .refund(&app.bob(), &charge, json!({ "amount_cents": 10_000 }))
        .await;
    expect(done, StatusCode::CREATED).await;
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_second_factor_shown_too_long_ago_or_at_no_known_time_is_not_enough(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    let stale = app.bob_signed_in(SECOND_FACTOR, &["pwd", "otp"], -301);
    let response = app
        .refund(&stale, &charge, json!({ "amount_cents": 20_000 }))
        .await;
    assert_step_up_required(response).await;

    let undated = app
        .issuer
        .token()
        .sub(guard::testing::BOB)
        .roles(&["admin"])
        .scope("openid payments:write")
        .claim("acr", SECOND_FACTOR)
        .sign();
    let response = app
        .refund(&undated, &charge, json!({ "amount_cents": 20_000 }))
        .await;
    assert_step_up_required(response).await;

    let recent = app.bob_signed_in(SECOND_FACTOR, &["pwd", "otp"], -290);
    let response = app
        .refund(&recent, &charge, json!({ "amount_cents": 20_000 }))
        .await;
    expect(response, StatusCode::CREATED).await;
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn small_refunds_that_add_up_past_the_threshold_need_the_second_factor(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    let bob = app.bob();
    for _ in 0..2 {
        let small = app
            .refund(&bob, &charge, json!({ "amount_cents": 5_000 }))
            .await;
        expect(small, StatusCode::CREATED).await;
    }
    let one_more = app
        .refund(&bob, &charge, json!({ "amount_cents": 1 }))
        .await;
    assert_step_up_required(one_more).await;
    assert_eq!(
        app.count("SELECT refunded_cents FROM charges").await,
        10_000
    );
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn rights_are_checked_before_the_step_up(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    // Support past its limit: stepping up would not help, so 403, not 401.
    let carol = app
        .issuer
        .token()
        .sub(guard::testing::CAROL)
        .roles(&["customer", "support"])
        .scope("openid payments:write")
        .signed_in(SECOND_FACTOR, &["pwd", "otp"], 0)
        .sign();
    let response = app
        .refund(&carol, &charge, json!({ "amount_cents": 20_000 }))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .refund(&app.alice(), &charge, json!({ "amount_cents": 20_000 }))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_refund_retried_after_stepping_up_and_replayed_is_made_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    let path = format!("/charges/{charge}/refund");
    let refund = |token: String| {
        app.request(Method::POST, &path, Some(&token))
            .header("Idempotency-Key", "big-refund")
            .json(&json!({ "amount_cents": 30_000 }))
            .send()
    };
    // Refused first: nothing kept under the key, so the retry is a new request.
    assert_step_up_required(refund(app.bob()).await.unwrap()).await;
    let first = expect(
        refund(app.bob_stepped_up()).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    // Replayed twice (a client retrying after a lost answer): the same refund.
    for _ in 0..2 {
        let again = expect(
            refund(app.bob_stepped_up()).await.unwrap(),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(again["refund"]["id"], first["refund"]["id"]);
    }
    assert_eq!(
        app.count("SELECT refunded_cents FROM charges").await,
        30_000
    );
    assert_eq!(app.count("SELECT count(*) FROM refunds").await, 1);
}
