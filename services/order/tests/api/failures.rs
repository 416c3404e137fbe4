//! When a step fails, nothing is half done: no order, no stock held, and the
//! caller is told clearly what happened.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use std::time::Duration;

use crate::helpers::{ALICE, Stack, expect, hung_server};

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn a_declined_charge_releases_the_reservation_and_leaves_no_order(pool: PgPool) {
    let stack = Stack::start(pool).await;
    // The gold keyboard costs more than payment's default decline threshold.
    let response = stack
        .order(
            &stack.alice(),
            json!([{ "sku": "gold-keyboard", "quantity": 1 }]),
        )
        .await;
    let error = expect(response, StatusCode::PAYMENT_REQUIRED).await;
    assert_eq!(error["error"], "payment_declined");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("card limit"),
        "{error}"
    );

    assert_eq!(stack.stock("gold-keyboard").await, 3);
    assert_eq!(
        (stack.orders().await, stack.held_reservations().await),
        (0, 0)
    );
    let declined = Stack::count(
        &stack.payment_pool,
        "SELECT count(*) FROM charges WHERE status = 'declined'",
    )
    .await;
    assert_eq!(declined, 1);
    let actions = sqlx::query_scalar!("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&stack.order_pool)
        .await
        .unwrap();
    assert_eq!(actions, ["order.create", "order.fail"]);
    let released = Stack::count(
        &stack.inventory_pool,
        "SELECT count(*) FROM audit_log WHERE action = 'reservation.release'",
    )
    .await;
    assert_eq!(released, 1);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn payment_down_answers_503_and_puts_the_stock_back(pool: PgPool) {
    let mut stack = Stack::start(pool).await;
    stack.stop_payment().await;
    let response = stack
        .order(
            &stack.alice(),
            json!([{ "sku": "baton-mug", "quantity": 4 }]),
        )
        .await;
    assert_eq!(response.headers()["retry-after"], "5");
    let error = expect(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(error["error"], "payment_unavailable");

    assert_eq!(stack.stock("baton-mug").await, 100);
    assert_eq!(
        (
            stack.orders().await,
            stack.held_reservations().await,
            stack.charges().await
        ),
        (0, 0, 0)
    );
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn inventory_down_answers_503_and_charges_nothing(pool: PgPool) {
    let mut stack = Stack::start(pool).await;
    stack.stop_inventory().await;
    let response = stack
        .order(
            &stack.alice(),
            json!([{ "sku": "baton-mug", "quantity": 1 }]),
        )
        .await;
    let error = expect(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(error["error"], "inventory_unavailable");
    assert_eq!((stack.orders().await, stack.charges().await), (0, 0));
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn sold_out_or_unknown_items_are_refused_and_nothing_is_charged(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let alice = stack.alice();
    let sold_out = stack
        .order(&alice, json!([{ "sku": "oidc-handbook", "quantity": 21 }]))
        .await;
    let error = expect(sold_out, StatusCode::CONFLICT).await;
    assert_eq!(error["error"], "insufficient_stock");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("not enough stock"),
        "{error}"
    );

    let unknown = expect(
        stack
            .order(&alice, json!([{ "sku": "unicorn", "quantity": 1 }]))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["error"], "unknown_sku");
    for lines in [
        json!([]),
        json!([{ "sku": "mug\0", "quantity": 1 }]),
        json!([{ "sku": "baton-mug", "quantity": 0 }]),
        json!([{ "sku": "baton-mug", "quantity": 1 }, { "sku": "baton-mug", "quantity": 2 }]),
    ] {
        let error = expect(
            stack.order(&alice, lines).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error["error"], "invalid_request");
    }
    assert_eq!(
        (
            stack.orders().await,
            stack.charges().await,
            stack.held_reservations().await
        ),
        (0, 0, 0)
    );
    assert_eq!(stack.stock("oidc-handbook").await, 20);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn a_token_payment_refuses_releases_the_stock_and_is_passed_on(pool: PgPool) {
    // Plain relay: the caller's own token goes on to payment.
    let stack = Stack::start_plain(pool).await;
    // Valid for order and inventory, but not meant for payment.
    let token = stack
        .issuer
        .token()
        .sub(ALICE)
        .roles(&["customer"])
        .aud(&["order", "inventory"])
        .sign();
    let response = stack
        .order(&token, json!([{ "sku": "baton-tee", "quantity": 1 }]))
        .await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let error = expect(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(error["upstream"], "payment");
    assert_eq!(stack.stock("baton-tee").await, 50);
    assert_eq!(
        (
            stack.orders().await,
            stack.held_reservations().await,
            stack.charges().await
        ),
        (0, 0, 0)
    );
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn payment_hanging_past_the_timeout_answers_503_and_puts_the_stock_back(pool: PgPool) {
    let stack =
        Stack::start_with(pool, Some(hung_server().await), Duration::from_millis(300)).await;
    let response = stack
        .order(
            &stack.alice(),
            json!([{ "sku": "baton-tee", "quantity": 2 }]),
        )
        .await;
    let error = expect(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(error["error"], "payment_unavailable");
    assert_eq!(stack.stock("baton-tee").await, 50);
    assert_eq!(
        (stack.orders().await, stack.held_reservations().await),
        (0, 0)
    );
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn an_order_left_pending_by_a_crash_is_failed_after_the_ttl_and_not_placed_twice(
    pool: PgPool,
) {
    let stack = Stack::start(pool).await;
    // Two orders a crash left pending: one long ago, one a moment ago (in flight).
    let mut ids = Vec::new();
    for (key, age) in [("crashed", "10 minutes"), ("in-flight", "1 second")] {
        let id = sqlx::query_scalar!(
            "INSERT INTO orders (id, owner_sub, status, lines, idempotency_key, created_at)
             VALUES (gen_random_uuid(), $1, 'pending', $2, $3, now() - $4::TEXT::INTERVAL) RETURNING id",
            ALICE,
            json!([{ "sku": "baton-mug", "quantity": 1 }]),
            key,
            age,
        )
        .fetch_one(&stack.order_pool)
        .await
        .unwrap();
        ids.push(id);
    }

    let ttl = Duration::from_secs(5 * 60);
    assert_eq!(
        order::expiry::fail_stale(&stack.order_pool, ttl)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        order::expiry::fail_stale(&stack.order_pool, ttl)
            .await
            .unwrap(),
        0
    );
    let alice = stack.alice();
    for (id, status) in ids.iter().zip(["failed", "pending"]) {
        let shown = stack
            .request(reqwest::Method::GET, &format!("/orders/{id}"), Some(&alice))
            .send()
            .await
            .unwrap();
        assert_eq!(expect(shown, StatusCode::OK).await["status"], status);
    }

    // A retry with the crashed order's key is refused, not placed a second time.
    let retry = stack
        .request(reqwest::Method::POST, "/orders", Some(&alice))
        .header("Idempotency-Key", "crashed")
        .json(&json!({ "lines": [{ "sku": "baton-mug", "quantity": 1 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(retry, StatusCode::CONFLICT).await["error"],
        "order_failed"
    );
    assert_eq!(stack.charges().await, 0);
    assert_eq!(stack.stock("baton-mug").await, 100);

    let row = sqlx::query!(
        "SELECT sub, caller FROM audit_log WHERE action = 'order.expire' AND resource = $1",
        ids[0].to_string(),
    )
    .fetch_one(&stack.order_pool)
    .await
    .unwrap();
    assert_eq!((row.sub.as_str(), row.caller.as_str()), ("order", "order"));
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn without_the_idp_no_exchanged_token_is_made_and_nothing_is_reserved(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let alice = stack.token(ALICE, &["customer"]);
    let lines = json!([{ "sku": "baton-tee", "quantity": 1 }]);
    expect(
        stack.order(&alice, lines.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    // The IdP goes away: order still validates (keys cached) but cannot
    // exchange a new caller's token, and never falls back to relaying it.
    stack.issuer.stop().await;
    let other = stack.token(ALICE, &["customer"]);
    let error = expect(
        stack.order(&other, lines).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(error["error"], "idp_unavailable");
    assert_eq!(stack.stock("baton-tee").await, 49);
    assert_eq!(
        (stack.orders().await, stack.held_reservations().await),
        (1, 0)
    );
}
