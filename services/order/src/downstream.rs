//! The two services an order needs, called with the caller's own token
//! (guard's relay client attaches it and continues the trace): inventory
//! reserves and releases stock, payment charges.
//!
//! Every call is safe to repeat: reservations and charges carry an
//! `Idempotency-Key` derived from the order id; committing and releasing are
//! idempotent.
//!
//! Only the fields order uses are read from the answers (a tolerant reader:
//! inventory and payment may add fields without breaking order).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use guard::Principal;
use guard::hop::Hop;
use guard::idempotency;
use guard::relay::{RelayError, Upstream};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::OrderLine;

/// Where inventory and payment are.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub inventory: Upstream,
    pub payment: Upstream,
}

#[derive(Debug, Deserialize)]
pub struct Reserved {
    pub reservation: Reservation,
    pub validated: Hop,
}

#[derive(Debug, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    pub total_cents: i64,
    pub lines: Vec<ReservedLine>,
}

#[derive(Debug, Deserialize)]
pub struct ReservedLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(Debug, Deserialize)]
pub struct Charged {
    pub charge: Charge,
    pub validated: Hop,
}

#[derive(Debug, Deserialize)]
pub struct Charge {
    pub id: Uuid,
}

/// Why a charge did not succeed.
#[derive(Debug)]
pub enum ChargeError {
    /// Payment recorded the charge as declined (402); the description says why.
    Declined(String),
    /// Payment could not be asked, or refused the call.
    Relay(RelayError),
}

impl Downstream {
    /// `POST {inventory}/reservations` for `lines`, as `caller`.
    pub async fn reserve(
        &self,
        caller: &Principal,
        order: Uuid,
        lines: &[OrderLine],
    ) -> Result<Reserved, RelayError> {
        let lines: Vec<_> = lines
            .iter()
            .map(|l| json!({ "sku": l.sku, "quantity": l.quantity }))
            .collect();
        self.inventory
            .post("reservations", caller)
            .header(key_header(), key_value(order, "reservation"))
            .json(&json!({ "lines": lines }))
            .send_json()
            .await
    }

    /// `DELETE {inventory}/reservations/{id}`, as `caller`.
    pub async fn release(&self, caller: &Principal, reservation: Uuid) -> Result<(), RelayError> {
        self.inventory
            .delete(&format!("reservations/{reservation}"), caller)
            .send()
            .await
            .map(drop)
    }

    /// `POST {inventory}/reservations/{id}/commit`: the stock is sold.
    pub async fn commit(&self, caller: &Principal, reservation: Uuid) -> Result<(), RelayError> {
        self.inventory
            .post(&format!("reservations/{reservation}/commit"), caller)
            .send()
            .await
            .map(drop)
    }

    /// `POST {payment}/charges` of `amount_cents` for the caller's own `sub`.
    pub async fn charge(
        &self,
        caller: &Principal,
        order: Uuid,
        amount_cents: i64,
    ) -> Result<Charged, ChargeError> {
        let body = json!({
            "sub": caller.sub(),
            "amount_cents": amount_cents,
            "description": format!("Baton order {order}"),
            "reference": format!("order:{order}"),
        });
        self.payment
            .post("charges", caller)
            .header(key_header(), key_value(order, "charge"))
            .json(&body)
            .send_json()
            .await
            .map_err(|e| match e {
                RelayError::Rejected {
                    status: StatusCode::PAYMENT_REQUIRED,
                    description,
                    ..
                } => ChargeError::Declined(description.unwrap_or_else(|| "declined".into())),
                other => ChargeError::Relay(other),
            })
    }
}

fn key_header() -> HeaderName {
    HeaderName::from_static(idempotency::HEADER)
}

/// `order-<uuid>-<step>`: the same key whenever this order's step is retried.
fn key_value(order: Uuid, step: &'static str) -> HeaderValue {
    HeaderValue::try_from(format!("order-{order}-{step}"))
        .expect("letters, hex digits and dashes are a valid header value")
}
