//! `POST /reservations` holds stock atomically (idempotent by `Idempotency-Key`);
//! `DELETE /reservations/{id}` gives it back; `POST /reservations/{id}/commit`
//! marks it sold, after which it cannot be released (both idempotent; owner or
//! admin). A reservation goes `held` → `released`, or `held` → `committed`.
//!
//! Overselling is impossible by construction: each line is one conditional
//! `UPDATE items SET stock = stock - q WHERE sku = $1 AND stock >= q`. Concurrent
//! updates of the same row queue on its row lock and re-check the condition on
//! the newest version, so the last unit goes to exactly one caller; the
//! `stock >= 0` check constraint backs this up. Lines are processed in sku order
//! (by creation and release alike), so two reservations never deadlock.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post};
use axum::{Json, Router};
use guard::Principal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shop::lines::{self, Line};
use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::InventoryError;
use crate::{AppError, AppState, SERVICE};
use guard::audit::{self, Initiator};
use guard::hop::{Hop, respond};
use platform::idempotency::{self, Claim, Key};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reservations", post(create))
        .route("/reservations/{id}", delete(release))
        .route("/reservations/{id}/commit", post(commit))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    pub owner: String,
    /// `held`, `committed` (sold) or `released`.
    pub status: String,
    pub total_cents: i64,
    pub lines: Vec<ReservedLine>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, FromRow)]
pub struct ReservedLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

/// The answer to `POST` and `DELETE`: the reservation and the identity this
/// service validated (for the caller's relay chain).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReservationAnswer {
    pub reservation: Reservation,
    pub validated: Hop,
}

/// Reserves every line for the caller, or nothing: 201 with the reservation
/// and the identity validated here; a retry with the same key gets the same
/// answer (`Idempotent-Replayed: true`).
async fn create(
    caller: Principal,
    headers: HeaderMap,
    State(pool): State<PgPool>,
    body: Result<Json<ReservationRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    caller.require_role("customer")?;
    let key = Key::from_headers(&headers)?;
    let Json(request) = body?;
    // The same goods in another line order are the same request.
    let request = ReservationRequest {
        lines: lines::normalise(request.lines)?,
    };
    let fingerprint = json!(request);
    let validated = Hop::validated_by(SERVICE, &caller);

    let mut tx = pool.begin().await?;
    if let Claim::Replay { status, body } =
        idempotency::claim(&mut tx, caller.sub(), &key, &fingerprint).await?
    {
        return Ok(respond(status, body, &validated, true));
    }

    let id = Uuid::now_v7();
    let (lines, total_cents) = take_stock(&mut tx, &request.lines).await?;
    let created_at = insert(&mut tx, id, caller.sub(), total_cents, &lines).await?;
    let reservation = Reservation {
        id,
        owner: caller.sub().to_owned(),
        status: "held".into(),
        total_cents,
        lines,
        created_at,
        released_at: None,
    };
    let detail = json!({ "total_cents": total_cents, "lines": &reservation.lines });
    let who = Initiator::new(&caller);
    audit::record(&mut tx, &who, "reservation.create", &id.to_string(), detail).await?;
    let stored = json!({ "reservation": reservation });
    idempotency::complete(&mut tx, caller.sub(), &key, StatusCode::CREATED, &stored).await?;
    tx.commit().await?;
    tracing::info!(reservation = %id, total_cents, "stock reserved");
    Ok(respond(StatusCode::CREATED, stored, &validated, false))
}

/// Takes each line's quantity off the shelf, in sku order, at the current
/// price; fails (and the transaction takes nothing) when an item is unknown or
/// short. Returns the reserved lines and their total.
#[tracing::instrument(name = "db.inventory.take_stock", skip_all)]
async fn take_stock(
    conn: &mut PgConnection,
    requested: &[Line],
) -> Result<(Vec<ReservedLine>, i64), AppError> {
    let mut lines = Vec::with_capacity(requested.len());
    let mut total_cents: i64 = 0;
    for line in requested {
        let price: Option<i64> = sqlx::query_scalar(
            "UPDATE items SET stock = stock - $2, updated_at = now()
             WHERE sku = $1 AND stock >= $2 RETURNING price_cents",
        )
        .bind(&line.sku)
        .bind(line.quantity)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(unit_price_cents) = price else {
            return Err(why_not_reserved(conn, &line.sku).await);
        };
        total_cents = unit_price_cents
            .checked_mul(i64::from(line.quantity))
            .and_then(|line_total| total_cents.checked_add(line_total))
            .ok_or_else(|| AppError::Invalid("the total is too large".into()))?;
        lines.push(ReservedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price_cents,
        });
    }
    Ok((lines, total_cents))
}

/// Writes a held reservation and its lines; returns its creation time.
#[tracing::instrument(name = "db.inventory.insert", skip_all)]
async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    total_cents: i64,
    lines: &[ReservedLine],
) -> Result<OffsetDateTime, sqlx::Error> {
    let created_at = sqlx::query_scalar(
        "INSERT INTO reservations (id, owner_sub, status, total_cents) VALUES ($1, $2, 'held', $3)
         RETURNING created_at",
    )
    .bind(id)
    .bind(owner)
    .bind(total_cents)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO reservation_lines (reservation_id, sku, quantity, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::TEXT[], $3::INTEGER[], $4::BIGINT[])",
    )
    .bind(id)
    .bind(lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.unit_price_cents).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(created_at)
}

/// Why the conditional update matched nothing: no such item, or too little stock.
async fn why_not_reserved(conn: &mut PgConnection, sku: &str) -> AppError {
    let stock: Result<Option<i32>, _> =
        sqlx::query_scalar("SELECT stock FROM items WHERE sku = $1")
            .bind(sku)
            .fetch_optional(conn)
            .await;
    match stock {
        Ok(Some(available)) => InventoryError::InsufficientStock {
            sku: sku.to_owned(),
            available,
        }
        .into(),
        Ok(None) => InventoryError::UnknownSku(sku.to_owned()).into(),
        Err(e) => e.into(),
    }
}

/// Releases a held reservation: its stock goes back on the shelf. Releasing a
/// released reservation changes nothing and answers the same; a committed one
/// (sold) cannot be released (409).
async fn release(
    caller: Principal,
    State(pool): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<ReservationAnswer>, AppError> {
    let mut tx = pool.begin().await?;
    let (id, status) = lock_own(&mut tx, &caller, &id).await?;
    match status.as_str() {
        "held" => {
            let who = Initiator::new(&caller);
            give_back(&mut tx, &who, id, "reservation.release").await?;
        }
        "committed" => return Err(InventoryError::ReservationCommitted.into()),
        _ => {}
    }
    answer(tx, &caller, id).await
}

/// Commits a held reservation: the stock is sold (the order that made it is
/// paid) and can no longer be released. Committing twice changes nothing; a
/// released reservation cannot be committed (409).
async fn commit(
    caller: Principal,
    State(pool): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<ReservationAnswer>, AppError> {
    let mut tx = pool.begin().await?;
    let (id, status) = lock_own(&mut tx, &caller, &id).await?;
    match status.as_str() {
        "held" => {
            let who = Initiator::new(&caller);
            set_status(
                &mut tx,
                &who,
                id,
                "committed",
                "reservation.commit",
                json!({}),
            )
            .await?;
        }
        "released" => return Err(InventoryError::ReservationReleased.into()),
        _ => {}
    }
    answer(tx, &caller, id).await
}

/// Locks the reservation `id` for the rest of the transaction and returns its
/// status. Only its owner and admins may change it; for anyone else it does not
/// exist (404), so reservation ids do not leak.
#[tracing::instrument(name = "db.inventory.lock_own", skip_all)]
async fn lock_own(
    conn: &mut PgConnection,
    caller: &Principal,
    id: &str,
) -> Result<(Uuid, String), AppError> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT owner_sub, status FROM reservations WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    match row {
        Some((owner, status)) if owner == caller.sub() || caller.has_role("admin") => {
            Ok((id, status))
        }
        _ => Err(AppError::NotFound),
    }
}

/// Puts the stock of the held reservation `id` back on the shelf (in sku
/// order, like reserving) and marks it released, audited as `action` by `who`.
/// The caller holds the reservation's row lock.
#[tracing::instrument(name = "db.inventory.give_back", skip_all)]
pub(crate) async fn give_back(
    conn: &mut PgConnection,
    who: &Initiator,
    id: Uuid,
    action: &str,
) -> Result<(), sqlx::Error> {
    let lines = load_lines(&mut *conn, id).await?;
    for line in &lines {
        sqlx::query("UPDATE items SET stock = stock + $2, updated_at = now() WHERE sku = $1")
            .bind(&line.sku)
            .bind(line.quantity)
            .execute(&mut *conn)
            .await?;
    }
    let detail = json!({ "lines": lines });
    set_status(conn, who, id, "released", action, detail).await
}

/// Moves a held reservation to `status` (`released` or `committed`) and audits it.
#[tracing::instrument(name = "db.inventory.set_status", skip_all)]
async fn set_status(
    conn: &mut PgConnection,
    who: &Initiator,
    id: Uuid,
    status: &'static str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reservations SET status = $2,
             released_at = CASE WHEN $2 = 'released' THEN now() END
         WHERE id = $1 AND status = 'held'",
    )
    .bind(id)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    audit::record(conn, who, action, &id.to_string(), detail).await?;
    tracing::info!(reservation = %id, status, action, "reservation changed");
    Ok(())
}

/// Commits `tx` and answers the reservation as it now is.
async fn answer(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &Principal,
    id: Uuid,
) -> Result<Json<ReservationAnswer>, AppError> {
    let reservation = load(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(ReservationAnswer {
        reservation,
        validated: Hop::validated_by(SERVICE, caller),
    }))
}

#[tracing::instrument(name = "db.inventory.load_lines", skip_all)]
async fn load_lines(conn: &mut PgConnection, id: Uuid) -> Result<Vec<ReservedLine>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sku, quantity, unit_price_cents FROM reservation_lines WHERE reservation_id = $1 ORDER BY sku",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.inventory.load", skip_all)]
async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<(String, String, i64, OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT owner_sub, status, total_cents, created_at, released_at FROM reservations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((owner, status, total_cents, created_at, released_at)) = row else {
        return Ok(None);
    };
    Ok(Some(Reservation {
        id,
        owner,
        status,
        total_cents,
        lines: load_lines(conn, id).await?,
        created_at,
        released_at,
    }))
}
