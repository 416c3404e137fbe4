//! Revocations of self-contained access tokens — by `jti`, by `sid`, or by
//! subject ("issued before T") — as an append-only log in PostgreSQL.
//!
//! Every service learns about them through the revocation stream
//! (`GET /revocations/stream`, see `http::revocations`); the IdP itself
//! consults the log in `/userinfo` and `/introspect`. A `NOTIFY` on commit
//! wakes the stream of every IdP replica.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use guard::AccessClaims;

/// The PostgreSQL channel that announces new revocations.
pub const CHANNEL: &str = "baton_idp_revocations";

async fn notify(db: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// Records a revocation by `jti` or `sid` (`kind`), kept until `expires_at`
/// (when every token it concerns has expired). Revoking the same thing twice
/// records it once.
pub async fn record(
    db: &mut PgConnection,
    kind: &str,
    value: &str,
    reason: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO revocations (kind, value, reason, expires_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM revocations WHERE kind = $1 AND value = $2)
         RETURNING id",
    )
    .bind(kind)
    .bind(value)
    .bind(reason)
    .bind(expires_at)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(id) = id {
        notify(db, id).await?;
        tracing::info!(kind, value, reason, "token revoked");
    }
    Ok(())
}

/// Revokes every token of `sub` issued before now (password change, admin action).
pub async fn record_subject(
    db: &mut PgConnection,
    sub: &str,
    reason: &str,
    longest_token_life: Duration,
) -> sqlx::Result<()> {
    let now = OffsetDateTime::now_utc();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO revocations (kind, value, reason, issued_before, expires_at)
         VALUES ('sub', $1, $2, $3, $4) RETURNING id",
    )
    .bind(sub)
    .bind(reason)
    .bind(now)
    .bind(now + longest_token_life)
    .fetch_one(&mut *db)
    .await?;
    notify(db, id).await?;
    tracing::info!(sub, reason, "every token of a subject revoked");
    Ok(())
}

/// Whether an access token is revoked by any entry of the log.
pub async fn is_revoked(db: impl PgExecutor<'_>, claims: &AccessClaims) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revocations
         WHERE (kind = 'jti' AND value = $1) OR (kind = 'sid' AND value = $2)
            OR (kind = 'sub' AND value = $3 AND issued_before > to_timestamp($4)))",
    )
    .bind(&claims.jti)
    .bind(claims.sid.as_deref())
    .bind(&claims.sub)
    .bind(claims.iat as f64)
    .fetch_one(db)
    .await
}

/// One revocation as the stream sends it.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub id: i64,
    /// `guard::Revocation` JSON plus `at` (Unix milliseconds of the revocation).
    pub data: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    value: String,
    issued_before: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

impl From<Row> for StreamEvent {
    fn from(r: Row) -> Self {
        let at = (r.created_at.unix_timestamp_nanos() / 1_000_000) as i64;
        let data = match r.kind.as_str() {
            "jti" => json!({"kind": "token", "jti": r.value, "at": at}),
            "sid" => json!({"kind": "session", "sid": r.value, "at": at}),
            _ => json!({
                "kind": "subject",
                "sub": r.value,
                "issued_before": r.issued_before.map_or(0, |t| t.unix_timestamp()),
                "at": at,
            }),
        };
        StreamEvent {
            id: r.id,
            data: data.to_string(),
        }
    }
}

/// Revocations after `after` (every one that still matters when `None`), oldest first.
pub async fn after(db: &PgPool, after: Option<i64>, limit: i64) -> sqlx::Result<Vec<StreamEvent>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, value, issued_before, created_at FROM revocations
         WHERE id > $1 AND expires_at > now() ORDER BY id LIMIT $2",
    )
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(StreamEvent::from).collect())
}

/// Fans new revocations out to every open stream of this process: one
/// `LISTEN` connection and one query per batch, however many subscribers.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<StreamEvent>>,
}

/// How often the hub looks for new rows even without a notification (a
/// notification lost during a reconnect is then only late, never lost).
const POLL: Duration = Duration::from_secs(2);

impl Hub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamEvent>> {
        self.tx.subscribe()
    }

    /// Runs until `stopping` turns true.
    pub async fn run(self, db: PgPool, mut stopping: watch::Receiver<bool>) {
        let mut last: i64 = loop {
            match sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM revocations")
                .fetch_one(&db)
                .await
            {
                Ok(id) => break id,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation hub cannot read the log yet");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        _ = stopping.changed() => return,
                    }
                }
            }
        };
        let mut listener: Option<PgListener> = None;
        let mut tick = tokio::time::interval(POLL);
        loop {
            if *stopping.borrow() {
                return;
            }
            if listener.is_none() {
                listener = listen(&db).await;
            }
            tokio::select! {
                received = async {
                    match listener.as_mut() {
                        Some(l) => l.try_recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = received {
                        tracing::warn!(error = %e, "revocation LISTEN connection lost; polling until it is back");
                        listener = None;
                    }
                }
                _ = tick.tick() => {}
                _ = stopping.changed() => return,
            }
            match after(&db, Some(last), 1000).await {
                Ok(events) => {
                    for e in events {
                        last = e.id;
                        // No subscriber is fine: nobody to tell.
                        let _ = self.tx.send(Arc::new(e));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "revocation hub cannot read the log"),
            }
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut l = PgListener::connect_with(db).await.ok()?;
    l.listen(CHANNEL).await.ok()?;
    Some(l)
}
