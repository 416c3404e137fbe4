//! The audit trail: one row per state change, written in the same transaction
//! as the change itself, so there is never a change without its audit row.
//! The table (`audit_log`) is guard's: `migrations/guard`, applied in every
//! resource server's database by [`platform::db::with_guard_migrations`].

use crate::{AuthError, Guard, Principal};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

/// Who initiated a change, as recorded in the audit trail.
#[derive(Debug, Clone)]
pub struct Initiator {
    sub: String,
    client_id: String,
    caller: String,
    jti: String,
    trace_id: String,
    actors: Vec<String>,
}

impl Initiator {
    /// The token's subject, client and `jti`; the calling service is the
    /// actor of an exchanged token (`act.sub`), else the token's client (a
    /// relayed token names the client the user signed in with); the trace id
    /// is the request's (W3C `traceparent`, or a fresh one guard started);
    /// the actors are the whole `act` chain, latest hop first.
    pub fn new(principal: &Principal) -> Self {
        Self {
            sub: principal.sub().to_owned(),
            client_id: principal.client_id().to_owned(),
            caller: principal
                .act()
                .map_or(principal.client_id(), |a| &a.sub)
                .to_owned(),
            jti: principal.jti().to_owned(),
            trace_id: principal.trace().trace_id(),
            actors: principal.actors().into_iter().map(str::to_owned).collect(),
        }
    }

    /// The service itself, for changes it makes on its own (expiring what a
    /// crashed request left behind): `sub`, client and caller are the
    /// service's name (as for a client-credentials token), there is no `jti`
    /// (empty), and the trace is new.
    pub fn service(name: &str) -> Self {
        Self {
            sub: name.to_owned(),
            client_id: name.to_owned(),
            caller: name.to_owned(),
            jti: String::new(),
            trace_id: platform::TraceContext::new().trace_id(),
            actors: Vec::new(),
        }
    }
}

/// Appends one audit row. Call it on the transaction that makes the change.
#[tracing::instrument(name = "db.audit.record", skip_all)]
pub async fn record(
    conn: &mut PgConnection,
    who: &Initiator,
    action: &str,
    resource: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (action, resource, sub, client_id, caller, jti, trace_id, detail, actors)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        action,
        resource,
        who.sub,
        who.client_id,
        who.caller,
        who.jti,
        who.trace_id,
        detail,
        &who.actors,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit row as `GET /audit` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub resource: String,
    pub sub: String,
    pub client_id: String,
    pub caller: String,
    pub jti: String,
    pub trace_id: String,
    pub detail: serde_json::Value,
    /// Who acted on the user's behalf, latest hop first (`act` chain).
    pub actors: Vec<String>,
}

/// `GET /audit?limit=&before=`: newest first, `before` pages back by id.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

/// Lists audit rows, newest first, at most 500 per page (default 100).
#[tracing::instrument(name = "db.audit.list", skip_all)]
pub async fn list(pool: &PgPool, page: &Page) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as!(
        Entry,
        "SELECT id, at, action, resource, sub, client_id, caller, jti, trace_id, detail, actors
         FROM audit_log WHERE $1::BIGINT IS NULL OR id < $1
         ORDER BY id DESC LIMIT $2",
        page.before,
        page.limit.unwrap_or(100).clamp(1, 500),
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Entries {
    pub entries: Vec<Entry>,
}

/// `GET /audit` for role `admin`; errors are answered by the service's own
/// error type `E`.
pub fn router<S, E>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Guard: FromRef<S>,
    E: From<AuthError> + From<QueryRejection> + From<sqlx::Error> + IntoResponse + 'static,
{
    Router::new().route("/audit", get(list_handler::<E>))
}

async fn list_handler<E>(
    caller: Principal,
    State(pool): State<PgPool>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Entries>, E>
where
    E: From<AuthError> + From<QueryRejection> + From<sqlx::Error>,
{
    caller.require_role("admin")?;
    let Query(page) = page?;
    Ok(Json(Entries {
        entries: list(&pool, &page).await?,
    }))
}
