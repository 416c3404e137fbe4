//! `POST /charges` (role `customer`, for the token's own `sub`, idempotent by
//! `Idempotency-Key`), `GET /charges` (own; `support` and `admin` see all) and
//! `POST /charges/{id}/refund` (`support` up to a limit, `admin` any amount).
//!
//! Declines are a rule of this (demo) payment processor, applied to real
//! requests and recorded like any charge: an amount above
//! `PAYMENT_DECLINE_ABOVE_CENTS` is declined, answered with 402 and kept, so a
//! retry with the same key gets the same decline.

use axum::extract::rejection::{JsonRejection, QueryRejection};
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
use shop::text::fits;
use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::PaymentError;
use crate::{AppError, AppState, Rules, SERVICE};

/// The largest single charge accepted at all (ten million cents).
const MAX_AMOUNT_CENTS: i64 = 10_000_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/charges", post(create).get(list))
        .route("/charges/{id}/refund", post(refund))
}

#[derive(Debug, Clone, Serialize, Deserialize, FromRow)]
pub struct Charge {
    pub id: Uuid,
    /// The charged user (`sub`).
    pub owner: String,
    pub amount_cents: i64,
    /// `succeeded` or `declined`.
    pub status: String,
    pub decline_reason: Option<String>,
    pub description: String,
    pub reference: Option<String>,
    pub refunded_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

const CHARGE_COLUMNS: &str = "id, owner_sub AS owner, amount_cents, status, decline_reason, description, \
                              reference, refunded_cents, created_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    /// Whom to charge; when given it must be the token's own `sub`.
    #[serde(default)]
    sub: Option<String>,
    amount_cents: i64,
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
    body: Result<Json<ChargeRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    caller.require_role("customer")?;
    let key = Key::from_headers(&headers)?;
    let Json(request) = body?;
    if request
        .sub
        .as_deref()
        .is_some_and(|sub| sub != caller.sub())
    {
        return Err(PaymentError::OtherSubject.into());
    }
    if !(1..=MAX_AMOUNT_CENTS).contains(&request.amount_cents) {
        return Err(AppError::Invalid(format!(
            "amount_cents must be 1 to {MAX_AMOUNT_CENTS}"
        )));
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
    let decline_reason = rules.decline_reason(request.amount_cents);
    let status = if decline_reason.is_some() {
        "declined"
    } else {
        "succeeded"
    };
    let charge: Charge = sqlx::query_as(&format!(
        "INSERT INTO charges (id, owner_sub, amount_cents, status, decline_reason, description, reference)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CHARGE_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(caller.sub())
    .bind(request.amount_cents)
    .bind(status)
    .bind(&decline_reason)
    .bind(&request.description)
    .bind(&request.reference)
    .fetch_one(&mut *tx)
    .await?;
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
    let charges = sqlx::query_as(&format!(
        "SELECT {CHARGE_COLUMNS} FROM charges WHERE $1 OR owner_sub = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(everyone)
    .bind(caller.sub())
    .bind(query.limit.unwrap_or(50).clamp(1, 200))
    .fetch_all(&pool)
    .await?;
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

#[derive(Debug, Clone, Serialize, Deserialize, FromRow)]
pub struct Refund {
    pub id: Uuid,
    pub charge_id: Uuid,
    pub amount_cents: i64,
    pub refunded_by: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
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
/// round the limit). An optional `Idempotency-Key` makes retries safe.
async fn refund(
    caller: Principal,
    headers: HeaderMap,
    State(pool): State<PgPool>,
    State(rules): State<Rules>,
    Path(id): Path<String>,
    body: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    caller.require_any_role(&["support", "admin"])?;
    let key = Key::optional(&headers)?;
    let Json(request) = body?;
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
    let charge = lock_charge(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if charge.status != "succeeded" {
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
    let refund: Refund = sqlx::query_as(
        "INSERT INTO refunds (id, charge_id, amount_cents, refunded_by, reason) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, charge_id, amount_cents, refunded_by, reason, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(amount_cents)
    .bind(caller.sub())
    .bind(&request.reason)
    .fetch_one(&mut *tx)
    .await?;
    let charge: Charge = sqlx::query_as(&format!(
        "UPDATE charges SET refunded_cents = refunded_cents + $2 WHERE id = $1 RETURNING {CHARGE_COLUMNS}"
    ))
    .bind(id)
    .bind(amount_cents)
    .fetch_one(&mut *tx)
    .await?;
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

#[tracing::instrument(name = "db.payment.lock_charge", skip_all)]
async fn lock_charge(conn: &mut PgConnection, id: Uuid) -> Result<Option<Charge>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}
