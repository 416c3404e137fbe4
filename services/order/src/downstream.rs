//! The two services an order needs: inventory reserves and releases stock,
//! payment charges. Each call carries a token for that service alone
//! (`ORDER_RELAY=exchange`, the default: the caller's token exchanged at the
//! IdP by guard's [`Exchanger`], `aud` = the target, `act` = order, scope
//! narrowed to the call's, cached per caller's `jti` and target), or the
//! caller's own token (`ORDER_RELAY=plain`). guard's relay client attaches it
//! and continues the trace.
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
use guard::relay::{RelayContext, RelayError, Upstream};
use guard::{Exchanger, Subject};
use platform::idempotency;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::OrderLine;
use shop::quantity::Quantity;
use shop::sku::Sku;

/// Where inventory and payment are, and how calls to them get their token.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub inventory: Upstream,
    pub payment: Upstream,
    /// `Some`: exchange the caller's token per target; `None`: relay it as is.
    pub exchanger: Option<Exchanger>,
}

/// The scope a call to inventory or payment carries: the one the call needs
/// (`inventory:write` to reserve, `payments:write` to charge) when the caller
/// holds it, else `orders:write` (the scope the order is placed under); a
/// token never gains a scope the caller's lacks (the IdP refuses that).
fn scope_for(caller: &Principal, needed: &'static str) -> &'static str {
    if !caller.has_scope(needed) && caller.has_scope("orders:write") {
        return "orders:write";
    }
    needed
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
    pub sku: Sku,
    pub quantity: Quantity,
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
    /// What to send to `upstream` on behalf of `caller`.
    async fn token_for(
        &self,
        caller: &Principal,
        upstream: &Upstream,
        scope: &'static str,
    ) -> Result<RelayContext, RelayError> {
        let Some(exchanger) = &self.exchanger else {
            return Ok(RelayContext::from(caller));
        };
        let token = exchanger
            .token(
                &Subject::of(caller),
                upstream.name(),
                scope_for(caller, scope),
            )
            .await?;
        Ok(RelayContext::bearer(token, *caller.trace()))
    }

    async fn for_inventory(&self, caller: &Principal) -> Result<RelayContext, RelayError> {
        self.token_for(caller, &self.inventory, "inventory:write")
            .await
    }

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
        let as_caller = self.for_inventory(caller).await?;
        self.inventory
            .post("reservations", as_caller)
            .header(key_header(), key_value(order, "reservation"))
            .json(&json!({ "lines": lines }))
            .send_json()
            .await
    }

    /// `DELETE {inventory}/reservations/{id}`, as `caller`.
    pub async fn release(&self, caller: &Principal, reservation: Uuid) -> Result<(), RelayError> {
        let as_caller = self.for_inventory(caller).await?;
        self.inventory
            .delete(&format!("reservations/{reservation}"), as_caller)
            .send()
            .await
            .map(drop)
    }

    /// `POST {inventory}/reservations/{id}/commit`: the stock is sold.
    pub async fn commit(&self, caller: &Principal, reservation: Uuid) -> Result<(), RelayError> {
        let as_caller = self.for_inventory(caller).await?;
        self.inventory
            .post(&format!("reservations/{reservation}/commit"), as_caller)
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
        let as_caller = self
            .token_for(caller, &self.payment, "payments:write")
            .await
            .map_err(ChargeError::Relay)?;
        self.payment
            .post("charges", as_caller)
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
