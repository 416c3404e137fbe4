use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{ALICE, BOB, CAROL, TestApp, expect};

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_customer_is_charged_for_themself_and_the_answer_shows_what_was_validated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.issuer.token().sub(ALICE).roles(&["customer"]);
    let jti = token.claims()["jti"].as_str().unwrap().to_owned();
    let body = json!({ "sub": ALICE, "amount_cents": 4200, "description": "2 mugs", "reference": "order:1" });
    let charged = expect(
        app.charge(&token.sign(), "c-1", body).await,
        StatusCode::CREATED,
    )
    .await;
    let charge = &charged["charge"];
    assert_eq!(charge["owner"], ALICE);
    assert_eq!(charge["amount_cents"], 4200);
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(charge["refunded_cents"], 0);
    assert_eq!(charge["reference"], "order:1");
    assert_eq!(charged["validated"]["service"], "payment");
    assert_eq!(charged["validated"]["sub"], ALICE);
    assert_eq!(charged["validated"]["jti"], jti);

    // Without `sub` the charge is for the token's subject.
    let charged = expect(
        app.charge(&app.alice(), "c-2", json!({ "amount_cents": 1 }))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(charged["charge"]["owner"], ALICE);
    let audited = app
        .count("SELECT count(*) FROM audit_log WHERE action = 'charge.create'")
        .await;
    assert_eq!(audited, 2);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn nobody_can_charge_another_user(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for token in [app.alice(), app.carol()] {
        let body = json!({ "sub": BOB, "amount_cents": 100 });
        let error = expect(
            app.charge(&token, "steal", body).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(error["error"], "access_denied");
    }
    assert_eq!(app.count("SELECT count(*) FROM charges").await, 0);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn charging_needs_a_customer_token_and_an_idempotency_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let body = json!({ "amount_cents": 100 });
    assert_eq!(
        app.charge(&app.bob(), "k", body.clone()).await.status(),
        StatusCode::FORBIDDEN
    );

    for path in [
        "/charges",
        "/charges/0190b6c4-0000-7000-8000-000000000000/refund",
        "/audit",
    ] {
        let method = if path == "/audit" {
            Method::GET
        } else {
            Method::POST
        };
        let response = app
            .request(method, path, None)
            .header("X-User-Id", ALICE)
            .header("X-User-Roles", "admin")
            .header("Idempotency-Key", "k")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    let list = app
        .request(Method::GET, "/charges", None)
        .header("X-User-Id", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::UNAUTHORIZED);

    let alice = app.alice();
    let no_key = app
        .request(Method::POST, "/charges", Some(&alice))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(no_key, StatusCode::BAD_REQUEST).await["error"],
        "invalid_idempotency_key"
    );
    let nul = app
        .charge(
            &alice,
            "k",
            json!({ "amount_cents": 1, "description": "a\0b" }),
        )
        .await;
    assert_eq!(nul.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for amount in [0, -5, 10_000_001] {
        let response = app
            .charge(&alice, "k", json!({ "amount_cents": amount }))
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(app.count("SELECT count(*) FROM charges").await, 0);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn a_charge_above_the_card_limit_is_declined_recorded_and_replayed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let body = json!({ "amount_cents": 75_000, "reference": "order:gold" });
    let declined = expect(
        app.charge(&alice, "gold", body.clone()).await,
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    assert_eq!(declined["error"], "card_declined");
    assert!(
        declined["error_description"]
            .as_str()
            .unwrap()
            .contains("50000")
    );
    assert_eq!(declined["charge"]["status"], "declined");
    assert_eq!(declined["validated"]["sub"], ALICE);

    let again = expect(
        app.charge(&alice, "gold", body).await,
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    assert_eq!(again["charge"]["id"], declined["charge"]["id"]);
    assert_eq!(
        app.count("SELECT count(*) FROM charges WHERE status = 'declined'")
            .await,
        1
    );
    // Exactly the limit is fine.
    let limit = app
        .charge(&alice, "limit", json!({ "amount_cents": 50_000 }))
        .await;
    assert_eq!(limit.status(), StatusCode::CREATED);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn the_same_key_charges_once_and_a_different_body_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let body = json!({ "amount_cents": 1234, "reference": "order:7" });
    let first = expect(
        app.charge(&alice, "once", body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    let again = app.charge(&alice, "once", body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = expect(again, StatusCode::CREATED).await;
    assert_eq!(again["charge"], first["charge"]);

    let other = json!({ "amount_cents": 9999, "reference": "order:7" });
    let error = expect(
        app.charge(&alice, "once", other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(error["error"], "idempotency_key_reused");
    assert_eq!(app.count("SELECT count(*) FROM charges").await, 1);
}

#[sqlx::test(migrator = "payment::MIGRATOR")]
async fn customers_list_their_own_charges_and_support_and_admin_see_all(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.alice_charged(100).await;
    expect(
        app.charge(&app.carol(), "c", json!({ "amount_cents": 200 }))
            .await,
        StatusCode::CREATED,
    )
    .await;

    let owners = |body: serde_json::Value| -> Vec<String> {
        let charges = body["charges"].as_array().unwrap();
        charges
            .iter()
            .map(|c| c["owner"].as_str().unwrap().to_owned())
            .collect()
    };
    let alice = app.alice();
    let mine = app
        .request(Method::GET, "/charges", Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(owners(expect(mine, StatusCode::OK).await), [ALICE]);
    // Carol is support: she sees everyone's.
    let carol = app.carol();
    let all = app
        .request(Method::GET, "/charges", Some(&carol))
        .send()
        .await
        .unwrap();
    assert_eq!(owners(expect(all, StatusCode::OK).await), [CAROL, ALICE]);
    let bob = app.bob();
    let all = app
        .request(Method::GET, "/charges?limit=1", Some(&bob))
        .send()
        .await
        .unwrap();
    assert_eq!(owners(expect(all, StatusCode::OK).await), [CAROL]);
    // A customer without support sees only their own, even an empty list.
    let dave = app.token("dave", &["customer"]);
    let none = app
        .request(Method::GET, "/charges", Some(&dave))
        .send()
        .await
        .unwrap();
    assert!(owners(expect(none, StatusCode::OK).await).is_empty());
}
