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

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post};
use axum::{Json, Router};
use guard::Principal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shop::lines::{self, Line};
use shop::sku::Sku;
use shop::status::Status;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::ReservationStatus;
use crate::error::InventoryError;
use crate::store::{self, Reservation, ReservedLine};
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
    platform::json::Json(request): platform::json::Json<ReservationRequest>,
) -> Result<Response, AppError> {
    caller.require_role("customer")?;
    let key = Key::from_headers(&headers)?;
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
    let created_at =
        store::insert_reservation(&mut tx, id, caller.sub(), total_cents, &lines).await?;
    let reservation = Reservation {
        id,
        owner: caller.sub().to_owned(),
        status: ReservationStatus::Held,
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
async fn take_stock(
    conn: &mut PgConnection,
    requested: &[Line],
) -> Result<(Vec<ReservedLine>, i64), AppError> {
    let mut lines = Vec::with_capacity(requested.len());
    let mut total_cents: i64 = 0;
    for line in requested {
        let Some(unit_price_cents) = store::take(conn, &line.sku, line.quantity).await? else {
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

/// Why the conditional update matched nothing: no such item, or too little stock.
async fn why_not_reserved(conn: &mut PgConnection, sku: &Sku) -> AppError {
    match store::stock(conn, sku).await {
        Ok(Some(available)) => InventoryError::InsufficientStock {
            sku: sku.to_string(),
            available,
        }
        .into(),
        Ok(None) => InventoryError::UnknownSku(sku.to_string()).into(),
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
    match status {
        ReservationStatus::Held => {
            let who = Initiator::new(&caller);
            give_back(&mut tx, &who, id, "reservation.release").await?;
        }
        ReservationStatus::Committed => return Err(InventoryError::ReservationCommitted.into()),
        ReservationStatus::Released => {}
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
    match status {
        ReservationStatus::Held => {
            let who = Initiator::new(&caller);
            set_status(
                &mut tx,
                &who,
                id,
                ReservationStatus::Committed,
                "reservation.commit",
                json!({}),
            )
            .await?;
        }
        ReservationStatus::Released => return Err(InventoryError::ReservationReleased.into()),
        ReservationStatus::Committed => {}
    }
    answer(tx, &caller, id).await
}

/// Locks the reservation `id` for the rest of the transaction and returns its
/// status. Only its owner and admins may change it; for anyone else it does not
/// exist (404), so reservation ids do not leak.
async fn lock_own(
    conn: &mut PgConnection,
    caller: &Principal,
    id: &str,
) -> Result<(Uuid, ReservationStatus), AppError> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    match store::lock(conn, id).await? {
        Some((owner, status)) if owner == caller.sub() || caller.has_role("admin") => {
            Ok((id, status))
        }
        _ => Err(AppError::NotFound),
    }
}

/// Puts the stock of the held reservation `id` back on the shelf (in sku
/// order, like reserving) and marks it released, audited as `action` by `who`.
/// The caller holds the reservation's row lock.
pub(crate) async fn give_back(
    conn: &mut PgConnection,
    who: &Initiator,
    id: Uuid,
    action: &str,
) -> Result<(), sqlx::Error> {
    let lines = store::lines(&mut *conn, id).await?;
    for line in &lines {
        store::put_back(&mut *conn, &line.sku, line.quantity).await?;
    }
    let detail = json!({ "lines": lines });
    set_status(conn, who, id, ReservationStatus::Released, action, detail).await
}

/// Moves a held reservation to `status` (`released` or `committed`) and audits it.
async fn set_status(
    conn: &mut PgConnection,
    who: &Initiator,
    id: Uuid,
    status: ReservationStatus,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    store::set_status(&mut *conn, id, status).await?;
    audit::record(conn, who, action, &id.to_string(), detail).await?;
    tracing::info!(reservation = %id, status = status.as_str(), action, "reservation changed");
    Ok(())
}

/// Commits `tx` and answers the reservation as it now is.
async fn answer(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &Principal,
    id: Uuid,
) -> Result<Json<ReservationAnswer>, AppError> {
    let reservation = store::reservation(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(ReservationAnswer {
        reservation,
        validated: Hop::validated_by(SERVICE, caller),
    }))
}
