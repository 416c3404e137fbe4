//! Deleting what can no longer matter, so the grant tables stay bounded:
//! sign-in sessions past their absolute end (their codes and refresh tokens
//! go with them: neither outlives its session), refresh-token families whose
//! every token has expired (idle timeout), and revocations of tokens that
//! have expired. A row is kept an hour past its expiry, well beyond any
//! validator's clock skew. A family with a live token keeps all its rotated
//! tokens: reuse of any of them must still be detected. Throttle counters go
//! once their window is long over and no lock-out or live attempt holds them
//! (a flood of random names or addresses leaves one row each). DPoP proofs
//! go once their acceptance window has passed, passkey ceremonies once their
//! challenge has expired. `auth_events`
//! is an audit trail and is left to the operator's retention policy.

use std::time::Duration;

use sqlx::PgPool;

/// Purges once; answers how many rows went (cascades not counted).
pub async fn purge(db: &PgPool) -> sqlx::Result<u64> {
    let done = [
        sqlx::query!("DELETE FROM sso_sessions WHERE expires_at < now() - interval '1 hour'")
            .execute(db)
            .await?,
        sqlx::query!(
            "DELETE FROM refresh_tokens WHERE family_id IN (
                 SELECT family_id FROM refresh_tokens GROUP BY family_id
                 HAVING max(expires_at) < now() - interval '1 hour')"
        )
        .execute(db)
        .await?,
        sqlx::query!(
            "DELETE FROM auth_throttle WHERE window_start < now() - interval '1 hour'
                 AND (locked_until IS NULL OR locked_until < now())
                 AND (in_flight = 0 OR in_flight_since < now() - interval '1 hour')"
        )
        .execute(db)
        .await?,
        // A proof past its acceptance window is refused by its `iat` alone.
        sqlx::query!("DELETE FROM dpop_proofs WHERE expires_at < now()")
            .execute(db)
            .await?,
        // A ceremony past its expiry can no longer be finished.
        sqlx::query!("DELETE FROM passkey_ceremonies WHERE expires_at < now()")
            .execute(db)
            .await?,
    ];
    let purged: u64 = done.iter().map(|r| r.rows_affected()).sum();
    Ok(purged + crate::revocations::purge(db).await?)
}

/// Purges every `period` for as long as the process runs.
pub async fn run(db: PgPool, period: Duration) {
    platform::db::every(
        period,
        "expired sessions, refresh tokens, revocations and throttle counters purged",
        || purge(&db),
    )
    .await;
}
