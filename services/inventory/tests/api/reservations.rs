use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::helpers::{ALICE, TestApp, expect};

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn a_reservation_holds_stock_at_current_prices_and_releasing_gives_it_back_once(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let lines =
        json!([{ "sku": "baton-tee", "quantity": 2 }, { "sku": "baton-mug", "quantity": 3 }]);
    let created = expect(app.reserve(&alice, "r-1", lines).await, StatusCode::CREATED).await;
    let reservation = &created["reservation"];
    assert_eq!(reservation["status"], "held");
    assert_eq!(reservation["owner"], ALICE);
    assert_eq!(reservation["total_cents"], 3 * 1200 + 2 * 2500);
    assert_eq!(
        reservation["lines"][0],
        json!({ "sku": "baton-mug", "quantity": 3, "unit_price_cents": 1200 })
    );
    assert_eq!(created["validated"]["service"], "inventory");
    assert_eq!(created["validated"]["sub"], ALICE);
    assert_eq!(created["validated"]["roles"], json!(["customer"]));
    assert_eq!(
        (app.stock("baton-mug").await, app.stock("baton-tee").await),
        (97, 48)
    );

    let id = reservation["id"].as_str().unwrap();
    for _ in 0..2 {
        let released = expect(app.release(&alice, id).await, StatusCode::OK).await;
        assert_eq!(released["reservation"]["status"], "released");
        assert!(released["reservation"]["released_at"].is_string());
    }
    assert_eq!(
        (app.stock("baton-mug").await, app.stock("baton-tee").await),
        (100, 50)
    );
    assert_eq!(
        app.audit_actions().await,
        ["reservation.create", "reservation.release"]
    );
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn only_the_owner_or_an_admin_releases_a_reservation(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
    let created = expect(
        app.reserve(&app.alice(), "r-1", lines).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["reservation"]["id"].as_str().unwrap();

    // Another customer (even one with the support role) does not see it.
    let other = expect(app.release(&app.carol(), id).await, StatusCode::NOT_FOUND).await;
    assert_eq!(other["error"], "not_found");
    assert_eq!(app.stock("baton-mug").await, 99);
    expect(
        app.release(&app.alice(), "0190b6c4-0000-7000-8000-000000000000")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        app.release(&app.alice(), "not-a-uuid").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let released = expect(app.release(&app.bob(), id).await, StatusCode::OK).await;
    assert_eq!(released["validated"]["roles"], json!(["admin"]));
    assert_eq!(app.stock("baton-mug").await, 100);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn reserving_needs_the_customer_role_and_an_idempotency_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
    let response = app.reserve(&app.bob(), "r-1", lines.clone()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let alice = app.alice();
    let no_key = app
        .request(reqwest::Method::POST, "/reservations", Some(&alice))
        .json(&json!({ "lines": lines }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(no_key, StatusCode::BAD_REQUEST).await["error"],
        "invalid_idempotency_key"
    );
    let bad_key = app.reserve(&alice, "has space", lines).await;
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.stock("baton-mug").await, 100);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn too_little_stock_or_bad_lines_reserve_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    // The mug would be fine, the handbook is short: nothing is held.
    let short =
        json!([{ "sku": "baton-mug", "quantity": 1 }, { "sku": "oidc-handbook", "quantity": 21 }]);
    let error = expect(
        app.reserve(&alice, "r-1", short).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(error["error"], "insufficient_stock");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("oidc-handbook")
    );
    assert_eq!(
        (
            app.stock("baton-mug").await,
            app.stock("oidc-handbook").await
        ),
        (100, 20)
    );

    let cases = [
        (
            json!([{ "sku": "no-such-thing", "quantity": 1 }]),
            "unknown_sku",
        ),
        (json!([]), "invalid_request"),
        (
            json!([{ "sku": "baton-mug", "quantity": 0 }]),
            "invalid_request",
        ),
        (
            json!([{ "sku": "baton-mug", "quantity": -3 }]),
            "invalid_request",
        ),
        (
            json!([{ "sku": "baton-mug", "quantity": 1 }, { "sku": "baton-mug", "quantity": 1 }]),
            "invalid_request",
        ),
        (
            json!([{ "sku": "baton-mug", "quantity": 1, "price_cents": 1 }]),
            "invalid_request",
        ),
    ];
    for (i, (lines, code)) in cases.into_iter().enumerate() {
        let error = expect(
            app.reserve(&alice, &format!("bad-{i}"), lines.clone())
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error["error"], code, "{lines}");
    }
    // A failed attempt keeps no answer: the key can be used again.
    let retry =
        json!([{ "sku": "baton-mug", "quantity": 1 }, { "sku": "oidc-handbook", "quantity": 20 }]);
    expect(app.reserve(&alice, "r-1", retry).await, StatusCode::CREATED).await;
    assert_eq!(app.audit_actions().await, ["reservation.create"]);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn a_line_that_does_not_parse_is_refused_naming_the_rule_it_breaks(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let cases = [
        (
            json!([{ "sku": "-bad", "quantity": 1 }]),
            r#"invalid sku "-bad""#,
        ),
        (
            json!([{ "sku": "a".repeat(65), "quantity": 1 }]),
            "invalid sku",
        ),
        (
            json!([{ "sku": "baton-mug", "quantity": 1001 }]),
            "quantity must be 1 to 1000",
        ),
        (
            json!([{ "sku": "baton-mug", "quantity": 1 }, { "sku": "baton-mug", "quantity": 2 }]),
            "each sku may appear on one line only",
        ),
    ];
    for (i, (lines, rule)) in cases.into_iter().enumerate() {
        let error = expect(
            app.reserve(&alice, &format!("bad-{i}"), lines.clone())
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error["error"], "invalid_request", "{lines}");
        let description = error["error_description"].as_str().unwrap();
        assert!(description.contains(rule), "{lines}: {description}");
    }
    // A line at the bounds parses.
    let at_most = json!([{ "sku": "a".repeat(64), "quantity": 1000 }]);
    let error = expect(
        app.reserve(&alice, "bounds", at_most).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(error["error"], "unknown_sku", "parsed, then looked up");
    assert_eq!(app.stock("baton-mug").await, 100);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn the_same_key_replays_the_first_answer_and_a_different_body_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let lines =
        json!([{ "sku": "baton-mug", "quantity": 2 }, { "sku": "baton-tee", "quantity": 1 }]);
    let first = expect(app.reserve(&alice, "k-1", lines).await, StatusCode::CREATED).await;

    // Same goods in another line order: the same request.
    let same =
        json!([{ "sku": "baton-tee", "quantity": 1 }, { "sku": "baton-mug", "quantity": 2 }]);
    let again = app.reserve(&alice, "k-1", same).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = expect(again, StatusCode::CREATED).await;
    assert_eq!(again["reservation"], first["reservation"]);
    assert_eq!(app.stock("baton-mug").await, 98);

    let different = json!([{ "sku": "baton-mug", "quantity": 3 }]);
    let error = expect(
        app.reserve(&alice, "k-1", different).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(error["error"], "idempotency_key_reused");

    // Keys belong to their user: carol's "k-1" is hers.
    let carol = expect(
        app.reserve(
            &app.carol(),
            "k-1",
            json!([{ "sku": "baton-mug", "quantity": 1 }]),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(carol["reservation"]["id"], first["reservation"]["id"]);
    assert_eq!(app.stock("baton-mug").await, 97);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn concurrent_retries_of_one_key_reserve_once(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    let alice = app.alice();
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let (app, alice) = (app.clone(), alice.clone());
        tasks.spawn(async move {
            let response = app
                .reserve(
                    &alice,
                    "same-key",
                    json!([{ "sku": "baton-tee", "quantity": 5 }]),
                )
                .await;
            expect(response, StatusCode::CREATED).await["reservation"]["id"].clone()
        });
    }
    let ids: Vec<_> = tasks.join_all().await;
    assert!(ids.iter().all(|id| id == &ids[0]));
    assert_eq!(app.stock("baton-tee").await, 45);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn ten_concurrent_reservations_of_the_last_unit_sell_it_exactly_once(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    app.set_stock("oidc-handbook", 1).await;
    let mut tasks = JoinSet::new();
    for i in 0..10 {
        let app = app.clone();
        let token = app.token(&format!("customer-{i}"), &["customer"], "");
        tasks.spawn(async move {
            app.reserve(
                &token,
                &format!("buy-{i}"),
                json!([{ "sku": "oidc-handbook", "quantity": 1 }]),
            )
            .await
            .status()
        });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(app.stock("oidc-handbook").await, 0);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn a_committed_reservation_is_sold_and_can_no_longer_be_released(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let lines = json!([{ "sku": "baton-mug", "quantity": 2 }]);
    let created = expect(
        app.reserve(&alice, "r-1", lines.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["reservation"]["id"].as_str().unwrap();
    let commit = |token: String| {
        let request = app.request(
            reqwest::Method::POST,
            &format!("/reservations/{id}/commit"),
            Some(&token),
        );
        async move { request.send().await.unwrap() }
    };

    expect(commit(app.carol()).await, StatusCode::NOT_FOUND).await;
    for _ in 0..2 {
        let committed = expect(commit(alice.clone()).await, StatusCode::OK).await;
        assert_eq!(committed["reservation"]["status"], "committed");
    }
    for token in [alice.clone(), app.bob()] {
        let error = expect(app.release(&token, id).await, StatusCode::CONFLICT).await;
        assert_eq!(error["error"], "reservation_committed");
    }
    assert_eq!(app.stock("baton-mug").await, 98);

    // A released reservation cannot be committed.
    let other = expect(app.reserve(&alice, "r-2", lines).await, StatusCode::CREATED).await;
    let other = other["reservation"]["id"].as_str().unwrap();
    expect(app.release(&alice, other).await, StatusCode::OK).await;
    let path = format!("/reservations/{other}/commit");
    let error = app
        .request(reqwest::Method::POST, &path, Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(error, StatusCode::CONFLICT).await["error"],
        "reservation_released"
    );
    assert_eq!(app.stock("baton-mug").await, 98);
    assert_eq!(
        app.audit_actions().await,
        [
            "reservation.create",
            "reservation.commit",
            "reservation.create",
            "reservation.release"
        ]
    );
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn idempotency_keys_are_forgotten_after_the_retention(pool: PgPool) {
    use platform::idempotency::{RETENTION, forget_older_than};
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    for key in ["old", "new"] {
        let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
        expect(app.reserve(&alice, key, lines).await, StatusCode::CREATED).await;
    }
    sqlx::query!(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(forget_older_than(&app.pool, RETENTION).await.unwrap(), 1);
    let kept = sqlx::query_scalar!("SELECT key FROM idempotency_keys")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, ["new"]);
    // The forgotten key is a new request again.
    let lines = json!([{ "sku": "baton-mug", "quantity": 1 }]);
    let again = app.reserve(&alice, "old", lines).await;
    assert!(!again.headers().contains_key("idempotent-replayed"));
    expect(again, StatusCode::CREATED).await;
    assert_eq!(app.stock("baton-mug").await, 97);
}

#[sqlx::test(migrator = "inventory::MIGRATOR")]
async fn reservations_held_past_the_ttl_give_their_stock_back_once(pool: PgPool) {
    use std::time::Duration;

    use inventory::expiry::release_expired;
    let app = TestApp::spawn(pool).await;
    let alice = app.alice();
    let mut ids = Vec::new();
    for key in ["left-behind", "committed", "fresh"] {
        let lines = json!([{ "sku": "baton-mug", "quantity": 2 }]);
        let created = expect(app.reserve(&alice, key, lines).await, StatusCode::CREATED).await;
        ids.push(created["reservation"]["id"].as_str().unwrap().to_owned());
    }
    let path = format!("/reservations/{}/commit", ids[1]);
    let committed = app
        .request(reqwest::Method::POST, &path, Some(&alice))
        .send()
        .await
        .unwrap();
    expect(committed, StatusCode::OK).await;
    sqlx::query!(
        "UPDATE reservations SET created_at = now() - interval '16 minutes' WHERE id::TEXT = ANY($1)",
        &ids[..2],
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(app.stock("baton-mug").await, 94);

    let ttl = Duration::from_secs(15 * 60);
    assert_eq!(release_expired(&app.pool, ttl).await.unwrap(), 1);
    assert_eq!(release_expired(&app.pool, ttl).await.unwrap(), 0);
    // The left-behind reservation's 2 mugs are back; the sold and the fresh ones are not.
    assert_eq!(app.stock("baton-mug").await, 96);
    let statuses =
        sqlx::query_scalar!("SELECT status FROM reservations ORDER BY created_at DESC, id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["held", "released", "committed"]);

    // Expired is released: releasing again changes nothing, committing is refused.
    let released = expect(app.release(&alice, &ids[0]).await, StatusCode::OK).await;
    assert_eq!(released["reservation"]["status"], "released");
    let path = format!("/reservations/{}/commit", ids[0]);
    let late = app
        .request(reqwest::Method::POST, &path, Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(late, StatusCode::CONFLICT).await["error"],
        "reservation_released"
    );
    assert_eq!(app.stock("baton-mug").await, 96);

    let row = sqlx::query!(
        "SELECT sub, caller, jti FROM audit_log WHERE action = 'reservation.expire' AND resource = $1",
        &ids[0],
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (row.sub.as_str(), row.caller.as_str(), row.jti.as_str()),
        ("inventory", "inventory", "")
    );
}
