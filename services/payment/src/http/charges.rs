//! `POST /charges` (role `customer`, for the token's own `sub`, idempotent by
//! `Idempotency-Key`), `GET /charges` (own; `support` and `admin` see all) and
//! `POST /charges/{id}/refund` (`support` up to a limit, `admin` any amount;
//! a large refund needs a recent second factor, RFC 9470 step-up).
//!
//! Declines are a rule of this (demo) payment processor, applied to real
//! requests and recorded like any charge: an amount above
//! `PAYMENT_DECLINE_ABOVE_CENTS` is declined, answered with 402 and kept, so a
//! retry with the same key gets the same decline.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use guard::Principal;
use guard::audit::{self, Initiator};
use guard::hop::{Hop, respond};
use platform::idempotency::{self, Claim, Key};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shop::status::Status;
use shop::text::fits;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{ChargeAmount, ChargeStatus};
use crate::error::PaymentError;
use crate::store::{self, Charge, NewCharge, Refund};
use crate::{AppError, AppState, Rules, SERVICE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/charges", post(create).get(list))
        .route("/charges/{id}/refund", post(refund))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    /// Whom to charge; when given it must be the token's own `sub`.
    #[serde(default)]
    sub: Option<String>,
    amount_cents: ChargeAmount,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reference: Option<String>,
}

/// The answer to `POST /charges` (201 succeeded, 402 declined).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChargeAnswer {
    pub charge: Charge,
    pub validated: Hop,
}

async fn create(
    caller: Principal,
    headers: HeaderMap,
    State(pool): State<PgPool>,
    State(rules): State<Rules>,
    platform::json::Json(request): platform::json::Json<ChargeRequest>,
) -> Result<Response, AppError> {
    caller.require_role("customer")?;
    let key = Key::from_headers(&headers)?;
    if request
        .sub
        .as_deref()
        .is_some_and(|sub| sub != caller.sub())
    {
        return Err(PaymentError::OtherSubject.into());
    }
    if !fits(&request.description, 500) || request.reference.as_ref().is_some_and(|r| !fits(r, 200))
    {
        return Err(AppError::Invalid(
            "description is at most 500, reference at most 200 characters".into(),
        ));
    }
    let fingerprint = json!({
        "amount_cents": request.amount_cents,
        "description": request.description,
        "reference": request.reference,
    });
    let validated = Hop::validated_by(SERVICE, &caller);

    let mut tx = pool.begin().await?;
    if let Claim::Replay { status, body } =
        idempotency::claim(&mut tx, caller.sub(), &key, &fingerprint).await?
    {
        return Ok(respond(status, body, &validated, true));
    }
    let decline_reason = rules.decline_reason(request.amount_cents.cents());
    let new = NewCharge {
        owner: caller.sub(),
        amount_cents: request.amount_cents.cents(),
        decline_reason: decline_reason.as_deref(),
        description: &request.description,
        reference: request.reference.as_deref(),
    };
    let charge = store::insert_charge(&mut tx, new).await?;
    let status = charge.status.as_str();
    let detail = json!({ "status": status, "amount_cents": charge.amount_cents, "reference": charge.reference });
    audit::record(
        &mut tx,
        &Initiator::new(&caller),
        "charge.create",
        &charge.id.to_string(),
        detail,
    )
    .await?;
    let http_status = if decline_reason.is_some() {
        StatusCode::PAYMENT_REQUIRED
    } else {
        StatusCode::CREATED
    };
    let stored = match &decline_reason {
        // OAuth-style error fields, so a relaying caller can pass the reason on.
        Some(reason) => {
            json!({ "error": "card_declined", "error_description": reason, "charge": charge })
        }
        None => json!({ "charge": charge }),
    };
    idempotency::complete(&mut tx, caller.sub(), &key, http_status, &stored).await?;
    tx.commit().await?;
    tracing::info!(charge = %charge.id, status, amount_cents = charge.amount_cents, "charge recorded");
    Ok(respond(http_status, stored, &validated, false))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChargeList {
    pub charges: Vec<Charge>,
}

/// Newest first, at most 200 (default 50). Customers see their own charges,
/// `support` and `admin` everyone's.
async fn list(
    caller: Principal,
    State(pool): State<PgPool>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ChargeList>, AppError> {
    let Query(query) = query?;
    let everyone = caller.has_role("support") || caller.has_role("admin");
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let charges = store::list_charges(&pool, everyone, caller.sub(), limit).await?;
    Ok(Json(ChargeList { charges }))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// Default: whatever is left of the charge.
    #[serde(default)]
    amount_cents: Option<i64>,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RefundAnswer {
    pub refund: Refund,
    pub charge: Charge,
    pub validated: Hop,
}

/// Refunds part or all of a succeeded charge. `admin` may refund anything;
/// `support` only while the charge's refunded total stays within
/// `PAYMENT_SUPPORT_REFUND_LIMIT_CENTS` (so splitting a refund does not get
/// round the limit). Past `PAYMENT_STEP_UP_ABOVE_CENTS` in total, anyone needs
/// a second factor shown within `PAYMENT_STEP_UP_MAX_AGE_SECS` (else 401
/// `insufficient_user_authentication`). An optional `Idempotency-Key` makes
/// retries safe.
async fn refund(
    caller: Principal,
    headers: HeaderMap,
    State(pool): State<PgPool>,
    State(rules): State<Rules>,
    Path(id): Path<String>,
    platform::json::Json(request): platform::json::Json<RefundRequest>,
) -> Result<Response, AppError> {
    caller.require_any_role(&["support", "admin"])?;
    let key = Key::optional(&headers)?;
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    if request.amount_cents.is_some_and(|a| a <= 0) || !fits(&request.reason, 500) {
        return Err(AppError::Invalid(
            "amount_cents must be positive, reason at most 500 characters".into(),
        ));
    }
    let validated = Hop::validated_by(SERVICE, &caller);

    let mut tx = pool.begin().await?;
    if let Some(key) = &key {
        let fingerprint =
            json!({ "charge": id, "amount_cents": request.amount_cents, "reason": request.reason });
        if let Claim::Replay { status, body } =
            idempotency::claim(&mut tx, caller.sub(), key, &fingerprint).await?
        {
            return Ok(respond(status, body, &validated, true));
        }
    }
    let charge = store::lock_charge(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if charge.status != ChargeStatus::Succeeded {
        return Err(PaymentError::NotRefundable.into());
    }
    let left_cents = charge.amount_cents - charge.refunded_cents;
    let amount_cents = request.amount_cents.unwrap_or(left_cents);
    if amount_cents <= 0 || amount_cents > left_cents {
        return Err(PaymentError::RefundTooLarge { left_cents }.into());
    }
    if !caller.has_role("admin") && !rules.support_may_refund(charge.refunded_cents, amount_cents) {
        return Err(PaymentError::AboveSupportLimit {
            limit_cents: rules.support_refund_limit_cents,
        }
        .into());
    }
    // Step-up (RFC 9470): a large refund needs a recent second factor. The
    // 401 rolls the transaction back, idempotency claim included, so the
    // same request with a stepped-up token is refunded once.
    if let Some(need) = rules.refund_authentication(charge.refunded_cents, amount_cents) {
        caller.require_authentication(&need)?;
    }
    let (refund, charge) =
        store::refund(&mut tx, id, amount_cents, caller.sub(), &request.reason).await?;
    let detail = json!({ "refund": refund.id, "amount_cents": amount_cents, "refunded_cents": charge.refunded_cents });
    audit::record(
        &mut tx,
        &Initiator::new(&caller),
        "charge.refund",
        &id.to_string(),
        detail,
    )
    .await?;
    let stored = json!({ "refund": refund, "charge": charge });
    if let Some(key) = &key {
        idempotency::complete(&mut tx, caller.sub(), key, StatusCode::CREATED, &stored).await?;
    }
    tx.commit().await?;
    tracing::info!(charge = %id, amount_cents, "charge refunded");
    Ok(respond(StatusCode::CREATED, stored, &validated, false))
}
