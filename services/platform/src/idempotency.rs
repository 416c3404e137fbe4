//! Idempotency keys (the `Idempotency-Key` header): a retried request gets the
//! first request's answer instead of doing the work twice.
//!
//! Keys are scoped to the caller's `sub`, so two users' keys never collide and
//! nobody can read another user's answer by guessing a key. The key row is
//! claimed at the start of the transaction that does the work: a concurrent
//! retry waits on that row and then replays the committed answer; if the first
//! attempt fails (its transaction rolls back) the retry simply does the work.
//! Only answers written with [`complete`] are kept, so a failed attempt (say,
//! out of stock) can be retried with the same key. Keys are forgotten after
//! [`RETENTION`] ([`sweep`] runs in the service). The table
//! (`idempotency_keys`) is in the shared set `migrations/guard`, applied in every
//! resource server's database by [`crate::db::with_guard_migrations`].

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

pub const HEADER: &str = "idempotency-key";

/// A syntactically valid `Idempotency-Key` (1 to 255 visible ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is required")]
    Missing,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    Invalid,
}

impl Key {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, KeyError> {
        Self::optional(headers)?.ok_or(KeyError::Missing)
    }

    pub fn optional(headers: &HeaderMap) -> Result<Option<Self>, KeyError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| KeyError::Invalid)?;
        if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::Invalid);
        }
        Ok(Some(Self(value.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Claim {
    /// First time: do the work, then [`complete`] on the same transaction.
    Fresh,
    /// Seen before with the same request: answer this again.
    Replay { status: StatusCode, body: Value },
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("this Idempotency-Key was already used with a different request")]
    Mismatch,
    #[error("the first request with this Idempotency-Key left no answer")]
    Incomplete,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Claims `key` for `owner` inside the caller's transaction. `request` is the
/// normalised request; reusing a key with another request is refused.
#[tracing::instrument(name = "db.idempotency.claim", skip_all)]
pub async fn claim(
    conn: &mut PgConnection,
    owner: &str,
    key: &Key,
    request: &Value,
) -> Result<Claim, ClaimError> {
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (owner_sub, key, request) VALUES ($1, $2, $3)
         ON CONFLICT (owner_sub, key) DO NOTHING",
        owner,
        key.as_str(),
        request,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query!(
        "SELECT request, status_code, response FROM idempotency_keys WHERE owner_sub = $1 AND key = $2",
        owner,
        key.as_str(),
    )
    .fetch_one(&mut *conn)
    .await?;
    let (stored, status, body) = (row.request, row.status_code, row.response);
    if &stored != request {
        return Err(ClaimError::Mismatch);
    }
    // A committed row always carries its answer (see the migration).
    let status = status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(ClaimError::Incomplete)?;
    Ok(Claim::Replay {
        status,
        body: body.unwrap_or(Value::Null),
    })
}

/// Stores the answer of a [`Claim::Fresh`] request, before its transaction commits.
#[tracing::instrument(name = "db.idempotency.complete", skip_all)]
pub async fn complete(
    conn: &mut PgConnection,
    owner: &str,
    key: &Key,
    status: StatusCode,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE owner_sub = $1 AND key = $2",
        owner,
        key.as_str(),
        status.as_u16() as i16,
        body,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How long a key is remembered: a retry must come within a day.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Deletes the keys older than `retention`; returns how many.
#[tracing::instrument(name = "db.idempotency.forget_older_than", skip_all)]
pub async fn forget_older_than(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let deleted = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < now() - $1::BIGINT * interval '1 second'",
        seconds,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Forgets expired keys once an hour, for as long as the process runs.
pub async fn sweep(pool: PgPool) {
    crate::db::every(
        Duration::from_secs(3600),
        "expired idempotency keys forgotten",
        move || {
            let pool = pool.clone();
            async move { forget_older_than(&pool, RETENTION).await }
        },
    )
    .await
}
