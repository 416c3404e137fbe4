use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::helpers::{ALICE, CAROL, Stack, expect};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn an_order_reserves_and_charges_with_exchanged_tokens_and_every_hop_saw_the_same_user(
    pool: PgPool,
) {
    let stack = Stack::start(pool).await;
    let token = stack
        .issuer
        .token()
        .sub(ALICE)
        .roles(&["customer"])
        .scope("openid orders:write");
    let jti = token.claims()["jti"].as_str().unwrap().to_owned();
    let response = stack
        .request(Method::POST, "/orders", Some(&token.sign()))
        .header("traceparent", TRACEPARENT)
        .json(&json!({ "lines": [{ "sku": "baton-mug", "quantity": 2 }, { "sku": "jwt-stickers", "quantity": 3 }] }))
        .send()
        .await
        .unwrap();
    let placed = expect(response, StatusCode::CREATED).await;

    let order = &placed["order"];
    assert_eq!(order["status"], "paid");
    assert_eq!(order["owner"], ALICE);
    assert_eq!(order["total_cents"], 2 * 1200 + 3 * 300);
    assert_eq!(
        order["lines"][0],
        json!({ "sku": "baton-mug", "quantity": 2, "unit_price_cents": 1200 })
    );

    // The relay chain: the same user at every hop; downstream, a token for
    // that service alone, exchanged by order (aud = the target, act = order).
    let relay = placed["relay"].as_array().unwrap();
    let services: Vec<&str> = relay
        .iter()
        .map(|h| h["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["order", "inventory", "payment"]);
    for hop in relay {
        assert_eq!(hop["sub"], ALICE, "{hop}");
        assert_eq!(hop["roles"], json!(["customer"]), "{hop}");
        assert_eq!(hop["client_id"], "gateway", "{hop}");
    }
    assert_eq!(relay[0]["jti"], jti.as_str());
    assert_eq!(relay[0]["actors"], json!([]));
    for (hop, service) in relay[1..].iter().zip(["inventory", "payment"]) {
        assert_ne!(hop["jti"], jti.as_str(), "{hop}");
        assert_eq!(hop["aud"], json!([service]), "{hop}");
        assert_eq!(hop["actors"], json!(["order"]), "{hop}");
        assert_eq!(hop["act"], "order", "{hop}");
    }
    assert_eq!(
        stack.issuer.exchanges(),
        2,
        "one per target, reused for commit"
    );
    assert_eq!(order["relay"], placed["relay"]);

    // What happened downstream.
    assert_eq!(
        (
            stack.stock("baton-mug").await,
            stack.stock("jwt-stickers").await
        ),
        (98, 497)
    );
    let id = order["id"].as_str().unwrap();
    let charge = sqlx::query!("SELECT id, owner_sub, amount_cents, reference FROM charges")
        .fetch_one(&stack.payment_pool)
        .await
        .unwrap();
    assert_eq!(
        (
            charge.owner_sub.as_str(),
            charge.amount_cents,
            charge.reference
        ),
        (ALICE, 3300, Some(format!("order:{id}")))
    );
    assert_eq!(order["charge_id"], json!(charge.id));

    // One trace and one user through all three audit trails; downstream rows
    // record the exchanged token and order as its actor.
    let row = |action: &str| format!("{action} {ALICE} {TRACE_ID} ");
    let by_order = |action: &str| format!("{action} {ALICE} {TRACE_ID} order");
    let order_audit = audit_trail(&stack.order_pool).await;
    assert_eq!(order_audit, [row("order.create"), row("order.paid")]);
    let inventory_audit = audit_trail(&stack.inventory_pool).await;
    assert_eq!(
        inventory_audit,
        [
            by_order("reservation.create"),
            by_order("reservation.commit")
        ]
    );
    let payment_audit = audit_trail(&stack.payment_pool).await;
    assert_eq!(payment_audit, [by_order("charge.create")]);
}

/// A database's audit rows as `action sub trace_id actors`, oldest first.
async fn audit_trail(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar!(
        r#"SELECT action || ' ' || sub || ' ' || trace_id || ' ' || array_to_string(actors, ',') AS "row!"
           FROM audit_log ORDER BY id"#
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn only_customers_order_and_nobody_gets_in_without_a_token(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
    let response = stack.order(&stack.bob(), lines.clone()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let support_only = stack.token("s", &["support"]);
    assert_eq!(
        stack.order(&support_only, lines.clone()).await.status(),
        StatusCode::FORBIDDEN
    );

    let calls = [
        (Method::POST, "/orders".to_owned()),
        (Method::GET, "/orders".to_owned()),
        (
            Method::GET,
            "/orders/0190b6c4-0000-7000-8000-000000000000".to_owned(),
        ),
        (Method::GET, "/audit".to_owned()),
    ];
    for (method, path) in calls {
        let response = stack
            .request(method.clone(), &path, None)
            .header("X-User-Id", ALICE)
            .header("X-User-Roles", "customer admin")
            .json(&json!({ "lines": lines }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert!(response.headers().contains_key("www-authenticate"));
    }
    assert_eq!(
        (
            stack.orders().await,
            stack.charges().await,
            stack.stock("baton-mug").await
        ),
        (0, 0, 100)
    );
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn orders_are_seen_by_their_owner_support_and_admin_and_are_404_for_anyone_else(
    pool: PgPool,
) {
    let stack = Stack::start(pool).await;
    let placed = expect(
        stack
            .order(
                &stack.alice(),
                json!([{ "sku": "baton-tee", "quantity": 1 }]),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = placed["order"]["id"].as_str().unwrap();
    expect(
        stack
            .order(
                &stack.carol(),
                json!([{ "sku": "baton-mug", "quantity": 1 }]),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;

    let owners = |body: Value| -> Vec<String> {
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["owner"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |token: String| {
        let request = stack.request(Method::GET, "/orders", Some(&token));
        async move { owners(expect(request.send().await.unwrap(), StatusCode::OK).await) }
    };
    assert_eq!(list(stack.alice()).await, [ALICE]);
    assert_eq!(list(stack.carol()).await, [CAROL, ALICE]);
    assert_eq!(list(stack.bob()).await, [CAROL, ALICE]);
    assert!(list(stack.token("dave", &["customer"])).await.is_empty());

    let show = |token: String, path: String| {
        let request = stack.request(Method::GET, &path, Some(&token));
        async move { request.send().await.unwrap().status() }
    };
    let path = format!("/orders/{id}");
    assert_eq!(show(stack.alice(), path.clone()).await, StatusCode::OK);
    assert_eq!(show(stack.carol(), path.clone()).await, StatusCode::OK);
    assert_eq!(show(stack.bob(), path.clone()).await, StatusCode::OK);
    assert_eq!(
        show(stack.token("dave", &["customer"]), path.clone()).await,
        StatusCode::NOT_FOUND
    );
    let missing = "/orders/0190b6c4-0000-7000-8000-000000000000".to_owned();
    assert_eq!(show(stack.alice(), missing).await, StatusCode::NOT_FOUND);
    assert_eq!(
        show(stack.alice(), "/orders/not-an-id".to_owned()).await,
        StatusCode::NOT_FOUND
    );

    let alice = stack.alice();
    let shown = expect(
        stack
            .request(Method::GET, &path, Some(&alice))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown, placed["order"]);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn ten_concurrent_orders_for_the_last_unit_make_exactly_one_order(pool: PgPool) {
    let stack = Arc::new(Stack::start(pool).await);
    stack.set_stock("oidc-handbook", 1).await;
    let mut tasks = JoinSet::new();
    for i in 0..10 {
        let stack = stack.clone();
        let token = stack.token(&format!("customer-{i}"), &["customer"]);
        tasks.spawn(async move {
            let response = stack
                .order(&token, json!([{ "sku": "oidc-handbook", "quantity": 1 }]))
                .await;
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let sold_out: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .collect();
    assert_eq!((created, sold_out.len()), (1, 9), "{answers:?}");
    for (_, body) in sold_out {
        assert_eq!(body["error"], "insufficient_stock");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("oidc-handbook"),
            "{body}"
        );
    }
    assert_eq!(stack.stock("oidc-handbook").await, 0);
    let committed = "SELECT count(*) FROM reservations WHERE status = 'committed'";
    let committed = Stack::count(&stack.inventory_pool, committed).await;
    assert_eq!(
        (stack.orders().await, stack.charges().await, committed),
        (1, 1, 1)
    );
    assert_eq!(stack.held_reservations().await, 0);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn the_same_idempotency_key_places_one_order(pool: PgPool) {
    let stack = Stack::start(pool).await;
    let alice = stack.alice();
    let send = |lines: Value| {
        stack
            .request(Method::POST, "/orders", Some(&alice))
            .header("Idempotency-Key", "checkout-42")
            .json(&json!({ "lines": lines }))
            .send()
    };
    let lines = json!([{ "sku": "baton-tee", "quantity": 2 }]);
    let first = expect(send(lines.clone()).await.unwrap(), StatusCode::CREATED).await;
    let again = send(lines).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = expect(again, StatusCode::CREATED).await;
    assert_eq!(again["order"], first["order"]);
    assert_eq!(
        (
            stack.orders().await,
            stack.charges().await,
            stack.stock("baton-tee").await
        ),
        (1, 1, 48)
    );

    let other = expect(
        send(json!([{ "sku": "baton-tee", "quantity": 3 }]))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(other["error"], "idempotency_key_reused");
    assert_eq!(stack.stock("baton-tee").await, 48);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn only_admins_read_the_order_audit_trail(pool: PgPool) {
    let stack = Stack::start(pool).await;
    expect(
        stack
            .order(
                &stack.alice(),
                json!([{ "sku": "baton-mug", "quantity": 1 }]),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    for token in [stack.alice(), stack.carol()] {
        let response = stack
            .request(Method::GET, "/audit", Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let bob = stack.bob();
    let audit = expect(
        stack
            .request(Method::GET, "/audit", Some(&bob))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["order.paid", "order.create"]);
}

#[sqlx::test(migrator = "order::MIGRATOR")]
async fn a_retry_while_the_first_attempt_is_still_running_is_told_to_wait(pool: PgPool) {
    let stack = Stack::start(pool).await;
    // The first attempt has written its pending row and is talking to inventory.
    let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
    sqlx::query!(
        "INSERT INTO orders (id, owner_sub, status, lines, idempotency_key)
         VALUES ('0190b6c4-0000-7000-8000-000000000001', $1, 'pending', $2, 'slow')",
        ALICE,
        &lines,
    )
    .execute(&stack.order_pool)
    .await
    .unwrap();
    let alice = stack.alice();
    let retry = stack
        .request(Method::POST, "/orders", Some(&alice))
        .header("Idempotency-Key", "slow")
        .json(&json!({ "lines": lines }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(retry, StatusCode::CONFLICT).await["error"],
        "order_in_progress"
    );
    assert_eq!(
        (stack.charges().await, stack.stock("baton-mug").await),
        (0, 100)
    );
}
