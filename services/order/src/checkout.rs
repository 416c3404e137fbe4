//! Placing an order: reserve the stock at inventory, charge the caller at
//! payment, commit the reservation (the stock is sold), record the order as
//! paid, all with the caller's own token.
//!
//! When anything fails after stock was reserved (the charge is declined,
//! payment is down, payment refuses the token) the reservation is released
//! before answering, and the pending order is deleted: no stock is lost and no
//! half-made order remains. Every step is audited.

use guard::Principal;
use guard::audit::Initiator;
use guard::hop::Hop;
use platform::idempotency::{ClaimError, Key};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::OrderStatus;
use crate::downstream::{ChargeError, Downstream};
use crate::error::OrderError;
use crate::store::{self, Order, OrderLine, Payment, Pending};
use crate::{AppError, SERVICE};

/// A placed order and the identity each hop validated, in call order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    pub order: Order,
    pub relay: Vec<Hop>,
}

/// The outcome of `POST /orders`.
pub enum Outcome {
    /// A new order, paid.
    Created(Placed),
    /// The order made earlier with the same `Idempotency-Key`.
    Replayed(Placed),
}

pub async fn place(
    pool: &PgPool,
    downstream: &Downstream,
    caller: &Principal,
    lines: Vec<OrderLine>,
    key: Option<Key>,
) -> Result<Outcome, AppError> {
    let who = Initiator::new(caller);
    let order = match store::insert_pending(pool, &who, caller.sub(), &lines, key.as_ref()).await? {
        Pending::New(order) => order,
        Pending::Existing(existing) => return replay(existing, &lines),
        // The first attempt just failed; a retry starts afresh.
        Pending::Gone => return Err(OrderError::InProgress.into()),
    };
    let id = order.id;
    let mut relay = vec![Hop::validated_by(SERVICE, caller)];

    let reserved = match downstream.reserve(caller, id, &lines).await {
        Ok(reserved) => reserved,
        Err(e) => {
            // Nothing was reserved (or, after a timeout, nothing we know of).
            let detail = json!({ "step": "reserve", "error": e.to_string() });
            discard(pool, &who, id, detail).await;
            // Out of stock is inventory's 409 `insufficient_stock`, passed on as is.
            return Err(OrderError::Relay(e).into());
        }
    };
    relay.push(reserved.validated.clone());
    let reservation = reserved.reservation;

    let charge = match downstream.charge(caller, id, reservation.total_cents).await {
        Ok(charged) => charged,
        Err(e) => {
            let failure = match e {
                ChargeError::Declined(reason) => OrderError::PaymentDeclined(reason).into(),
                ChargeError::Relay(e) => OrderError::Relay(e).into(),
            };
            return Err(undo(pool, downstream, caller, &who, id, reservation.id, failure).await);
        }
    };
    relay.push(charge.validated.clone());

    // Paid: the stock is sold and must not be released any more. Should this
    // fail, the order is still paid and the stock still held; only a later
    // release of the reservation would not be refused.
    let committed = downstream.commit(caller, reservation.id).await;
    if let Err(e) = &committed {
        tracing::warn!(order = %id, reservation = %reservation.id, error = %e, "reservation not committed");
    }

    let lines: Vec<OrderLine> = reservation
        .lines
        .iter()
        .map(|l| OrderLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_cents: Some(l.unit_price_cents),
        })
        .collect();
    let paid = Payment {
        lines: &lines,
        total_cents: reservation.total_cents,
        reservation_id: reservation.id,
        charge_id: charge.charge.id,
        reservation_committed: committed.is_ok(),
        relay: &relay,
    };
    let order = store::mark_paid(pool, &who, id, paid).await.inspect_err(|e| {
        // Reserved and charged, but not recorded: the pending row and the
        // downstream keys `order-{id}-*` let an operator reconcile it.
        tracing::error!(order = %id, reservation = %reservation.id, charge = %charge.charge.id, error = %e,
            "order paid but not recorded");
    })?;
    tracing::info!(order = %id, total_cents = reservation.total_cents, "order placed");
    Ok(Outcome::Created(Placed { order, relay }))
}

/// Gives the reservation back, deletes the pending order, and returns the
/// error the caller gets. A release that fails is logged and audited with the
/// reservation id (the stock stays held until an operator releases it); the
/// caller still gets the original error.
async fn undo(
    pool: &PgPool,
    downstream: &Downstream,
    caller: &Principal,
    who: &Initiator,
    order: Uuid,
    reservation: Uuid,
    failure: AppError,
) -> AppError {
    let released = match downstream.release(caller, reservation).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(%order, %reservation, error = %e, "could not release the reservation of a failed order");
            false
        }
    };
    let detail = json!({
        "step": "charge",
        "error": failure.to_string(),
        "reservation": reservation,
        "reservation_released": released,
    });
    discard(pool, who, order, detail).await;
    failure
}

/// Deletes a failed pending order. Should the database fail here, the order
/// stays `pending` (never `paid`) and the caller still learns why it failed.
async fn discard(pool: &PgPool, who: &Initiator, order: Uuid, detail: serde_json::Value) {
    if let Err(e) = store::discard(pool, who, order, detail).await {
        tracing::error!(%order, error = %e, "could not discard a failed order");
    }
}

/// A retry with an `Idempotency-Key` already used: the same order when the
/// request is the same and the order is complete.
fn replay(existing: Order, lines: &[OrderLine]) -> Result<Outcome, AppError> {
    let same = existing.lines.len() == lines.len()
        && existing
            .lines
            .iter()
            .zip(lines)
            .all(|(a, b)| a.sku == b.sku && a.quantity == b.quantity);
    if !same {
        return Err(ClaimError::Mismatch.into());
    }
    match existing.status {
        OrderStatus::Paid => {}
        OrderStatus::Failed => return Err(OrderError::Failed.into()),
        OrderStatus::Pending => return Err(OrderError::InProgress.into()),
    }
    let relay = existing.relay.clone();
    Ok(Outcome::Replayed(Placed {
        order: existing,
        relay,
    }))
}
