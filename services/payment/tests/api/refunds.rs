use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{BOB, CAROL, TestApp, expect};

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn customers_cannot_refund_even_their_own_charges(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(5_000).await;
    let response = app
        .refund(&app.alice(), &charge, json!({ "amount_cents": 100 }))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(app.count("SELECT refunded_cents FROM charges").await, 0);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn support_refunds_up_to_the_limit_in_total_and_admin_refunds_any_amount(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(40_000).await;
    let carol = app.carol();

    let refunded = app
        .refund(
            &carol,
            &charge,
            json!({ "amount_cents": 6_000, "reason": "broken mug" }),
        )
        .await;
    let refunded = expect(refunded, StatusCode::CREATED).await;
    assert_eq!(refunded["refund"]["amount_cents"], 6_000);
    assert_eq!(refunded["refund"]["refunded_by"], CAROL);
    assert_eq!(refunded["charge"]["refunded_cents"], 6_000);
    assert_eq!(
        refunded["validated"]["roles"],
        json!(["customer", "support"])
    );

    // 6000 + 5000 would pass the 10000 limit: splitting does not get round it.
    let over = app
        .refund(&carol, &charge, json!({ "amount_cents": 5_000 }))
        .await;
    let over = expect(over, StatusCode::FORBIDDEN).await;
    assert_eq!(over["error"], "insufficient_scope");
    expect(
        app.refund(&carol, &charge, json!({ "amount_cents": 4_000 }))
            .await,
        StatusCode::CREATED,
    )
    .await;

    // Past 100.00 in total, admin too needs a recent second factor (step_up.rs).
    let bob = app.bob_stepped_up();
    let rest = expect(
        app.refund(&bob, &charge, json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(rest["refund"]["amount_cents"], 30_000);
    assert_eq!(rest["refund"]["refunded_by"], BOB);
    assert_eq!(rest["charge"]["refunded_cents"], 40_000);

    let nothing_left = expect(
        app.refund(&bob, &charge, json!({ "amount_cents": 1 }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(nothing_left["error"], "refund_too_large");
    let refunds = app.count("SELECT count(*) FROM refunds").await;
    let audited = app
        .count("SELECT count(*) FROM audit_log WHERE action = 'charge.refund'")
        .await;
    assert_eq!((refunds, audited), (3, 3));
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn refunds_of_missing_declined_or_overdrawn_charges_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let bob = app.bob();
    let missing = app
        .refund(&bob, "0190b6c4-0000-7000-8000-000000000000", json!({}))
        .await;
    expect(missing, StatusCode::NOT_FOUND).await;
    expect(
        app.refund(&bob, "not-a-uuid", json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let declined = app
        .charge(&app.alice(), "big", json!({ "amount_cents": 90_000 }))
        .await;
    let declined = expect(declined, StatusCode::PAYMENT_REQUIRED).await;
    let id = declined["charge"]["id"].as_str().unwrap();
    let error = expect(app.refund(&bob, id, json!({})).await, StatusCode::CONFLICT).await;
    assert_eq!(error["error"], "not_refundable");

    let charge = app.alice_charged(1_000).await;
    let error = expect(
        app.refund(&bob, &charge, json!({ "amount_cents": 1_001 }))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(error["error"], "refund_too_large");
    let error = app
        .refund(&bob, &charge, json!({ "amount_cents": 0 }))
        .await;
    assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("SELECT count(*) FROM refunds").await, 0);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_refund_with_an_idempotency_key_happens_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(5_000).await;
    let bob = app.bob();
    let path = format!("/charges/{charge}/refund");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .request(Method::POST, &path, Some(&bob))
            .header("Idempotency-Key", "refund-1")
            .json(&json!({ "amount_cents": 1_000 }))
            .send()
            .await
            .unwrap();
        ids.push(expect(response, StatusCode::CREATED).await["refund"]["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(app.count("SELECT refunded_cents FROM charges").await, 1_000);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn only_admins_read_the_audit_trail_of_charges_and_refunds(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let charge = app.alice_charged(2_000).await;
    expect(
        app.refund(&app.carol(), &charge, json!({ "amount_cents": 500 }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    for token in [app.alice(), app.carol()] {
        let response = app
            .request(Method::GET, "/audit", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let bob = app.bob();
    let audit = expect(
        app.request(Method::GET, "/audit", Some(&bob))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["charge.refund", "charge.create"]);
    assert_eq!(entries[0]["sub"], CAROL);
    assert_eq!(entries[0]["resource"], charge.as_str());
    assert_eq!(entries[0]["detail"]["amount_cents"], 500);
}
