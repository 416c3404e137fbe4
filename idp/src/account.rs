//! What a signed-in person may see and change of their own account at
//! `/account` ([`crate::http::account`]): their live sessions (with the
//! applications each one signed in to), signing one out, and a new password
//! that ends every other session.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sessions;

/// One live session of the person, as the account page lists it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub auth_time: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The applications that redeemed a code in this session, by id.
    pub clients: Vec<String>,
}

/// The live sessions of `user`, most recently authenticated first.
#[tracing::instrument(name = "db.account.sessions", skip_all)]
pub async fn sessions_of(db: &PgPool, user: Uuid) -> sqlx::Result<Vec<SessionSummary>> {
    sqlx::query_as!(
        SessionSummary,
        r#"SELECT s.id, s.created_at, s.auth_time, s.expires_at,
                  ARRAY(SELECT DISTINCT a.client_id FROM authorization_codes a
                        WHERE a.session_id = s.id AND a.consumed_at IS NOT NULL
                        ORDER BY a.client_id) AS "clients!"
           FROM sso_sessions s
           WHERE s.user_id = $1 AND s.ended_at IS NULL AND s.expires_at > now()
           ORDER BY s.auth_time DESC, s.id"#,
        user,
    )
    .fetch_all(db)
    .await
}

/// Ends the live session `id` if it belongs to `user`; answers whether it did.
/// Someone else's session, or one already over, is left alone.
pub async fn end_own_session(
    db: &PgPool,
    user: Uuid,
    id: Uuid,
    access_ttl: Duration,
) -> sqlx::Result<bool> {
    let owned = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sso_sessions
                          WHERE id = $1 AND user_id = $2 AND ended_at IS NULL
                            AND expires_at > now()) AS "owned!""#,
        id,
        user,
    )
    .fetch_one(db)
    .await?;
    if !owned {
        return Ok(false);
    }
    sessions::end(db, id, "signed out from the account page", access_ttl).await
}

/// Ends every live session of `user` but `keep`; answers how many ended.
pub async fn end_other_sessions(
    db: &PgPool,
    user: Uuid,
    keep: Uuid,
    reason: &str,
    access_ttl: Duration,
) -> sqlx::Result<usize> {
    let others = sqlx::query_scalar!(
        "SELECT id FROM sso_sessions WHERE user_id = $1 AND id <> $2 AND ended_at IS NULL",
        user,
        keep,
    )
    .fetch_all(db)
    .await?;
    for id in &others {
        sessions::end(db, *id, reason, access_ttl).await?;
    }
    Ok(others.len())
}
