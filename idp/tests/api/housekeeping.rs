//! Purging expired grants drops only what can no longer matter.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use platform::crypto::sha256;

use crate::helpers::spawn;

#[sqlx::test(migrations = "../migrations/idp")]
async fn purging_drops_expired_sessions_families_and_revocations_only(pool: PgPool) {
    let t = spawn(pool).await;
    let scope = "openid orders:read offline_access";
    let refresh_token = |v: &Value| v["refresh_token"].as_str().unwrap().to_owned();
    // Three sign-ins: three sessions, each with a code and a refresh-token family.
    let ended = refresh_token(&t.gateway_tokens(scope).await);
    let idle = refresh_token(&t.gateway_tokens(scope).await);
    let first = refresh_token(&t.gateway_tokens(scope).await);
    let (status, body) = t.refresh(&first).await;
    assert_eq!(status, StatusCode::OK);
    let current = refresh_token(&body);

    for (sql, token) in [
        // The first session reached its absolute end two hours ago.
        (
            "UPDATE sso_sessions SET expires_at = now() - interval '2 hours'
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
            &ended,
        ),
        // The second family went unused past its idle life; its session lives on.
        (
            "UPDATE refresh_tokens SET expires_at = now() - interval '2 hours'
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
            &idle,
        ),
        // The third family is in use; its rotated first token has expired.
        (
            "UPDATE refresh_tokens SET expires_at = now() - interval '2 hours'
             WHERE token_hash = $1",
            &first,
        ),
    ] {
        sqlx::query(sql)
            .bind(sha256(token.as_bytes()).to_vec())
            .execute(&t.pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO revocations (kind, value, reason, expires_at) VALUES
         ('jti', 'expired', 'test', now() - interval '2 hours'),
         ('jti', 'live', 'test', now() + interval '1 hour')",
    )
    .execute(&t.pool)
    .await
    .unwrap();

    // One session, one family's single token, one revocation (cascades not counted).
    assert_eq!(idp::housekeeping::purge(&t.pool).await.unwrap(), 3);

    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(&t.pool);
    assert_eq!(count("SELECT count(*) FROM sso_sessions").await.unwrap(), 2);
    assert_eq!(
        count("SELECT count(*) FROM authorization_codes")
            .await
            .unwrap(),
        2,
        "the ended session's code went with it"
    );
    assert_eq!(
        count("SELECT count(*) FROM refresh_tokens").await.unwrap(),
        2,
        "only the family in use is left, with its rotated token"
    );
    let revocations: Vec<String> = sqlx::query_scalar("SELECT value FROM revocations")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(revocations, ["live"]);

    // The family in use still works, and reuse of its old token is still caught.
    let (status, body) = t.refresh(&first).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("refresh token is no longer valid")
        )
    );
    let (status, _) = t.refresh(&current).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the reuse revoked the family"
    );
    // Purging again finds nothing new.
    assert_eq!(idp::housekeeping::purge(&t.pool).await.unwrap(), 0);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn purging_drops_throttle_counters_nobody_needs_any_more(pool: PgPool) {
    let t = spawn(pool).await;
    sqlx::query(
        "INSERT INTO auth_throttle (key, failures, window_start, locked_until, in_flight, in_flight_since) VALUES
         ('user:old', 3, now() - interval '2 hours', NULL, 0, NULL),
         ('user:lock-over', 9, now() - interval '2 hours', now() - interval '1 minute', 0, NULL),
         ('user:recent', 2, now() - interval '5 minutes', NULL, 0, NULL),
         ('user:locked', 9, now() - interval '2 hours', now() + interval '10 minutes', 0, NULL),
         ('user:in-flight', 0, now() - interval '2 hours', NULL, 1, now())",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    assert_eq!(idp::housekeeping::purge(&t.pool).await.unwrap(), 2);
    let mut left: Vec<String> =
        sqlx::query_scalar("SELECT key FROM auth_throttle WHERE key LIKE 'user:%'")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    left.sort();
    assert_eq!(left, ["user:in-flight", "user:locked", "user:recent"]);
}
