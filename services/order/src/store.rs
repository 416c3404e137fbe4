//! Every SQL statement of order, compile-checked: the orders table. An order is written `pending` before any downstream
//! call, becomes `paid` when stock is reserved and the charge succeeded, and is
//! deleted when it fails (its reservation released): see `checkout`. One left
//! `pending` by a crash becomes `failed` (see `expiry`).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use guard::audit::{self, Initiator};
use guard::hop::Hop;
use platform::idempotency::Key;
use shop::quantity::Quantity;
use shop::sku::Sku;
use shop::status::Status;

use crate::domain::OrderStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub owner: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total_cents: Option<i64>,
    pub reservation_id: Option<Uuid>,
    pub charge_id: Option<Uuid>,
    /// The identity each hop validated when the order was placed.
    pub relay: Vec<Hop>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
    /// The price inventory reserved at; absent while the order is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_cents: Option<i64>,
}

/// An order as stored; [`Order`] once its status is parsed.
struct Row {
    id: Uuid,
    owner_sub: String,
    status: String,
    lines: Json<Vec<OrderLine>>,
    total_cents: Option<i64>,
    reservation_id: Option<Uuid>,
    charge_id: Option<Uuid>,
    relay: Json<Vec<Hop>>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<Row> for Order {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.id,
            owner: row.owner_sub,
            status: OrderStatus::parse(&row.status)?,
            lines: row.lines.0,
            total_cents: row.total_cents,
            reservation_id: row.reservation_id,
            charge_id: row.charge_id,
            relay: row.relay.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// `query_as!` into a [`Row`], the SQL being `$before`, the row's columns,
/// `$after` (`query_as!` takes only literals, so the column list is spliced
/// in here rather than formatted into a string).
macro_rules! rows {
    ($before:literal, $after:literal, $($arg:tt)*) => {
        sqlx::query_as!(
            Row,
            $before
                + r#" id, owner_sub, status, lines AS "lines: Json<Vec<OrderLine>>", total_cents,
                    reservation_id, charge_id, relay AS "relay: Json<Vec<Hop>>", created_at, updated_at "#
                + $after,
            $($arg)*
        )
    };
}

/// What [`insert_pending`] found.
pub enum Pending {
    /// A new pending order.
    New(Order),
    /// The caller's order made earlier with the same idempotency key.
    Existing(Order),
    /// The earlier order with this key failed and was deleted meanwhile.
    Gone,
}

/// Writes a new pending order, or finds the caller's order already made with
/// the same idempotency key.
#[tracing::instrument(name = "db.order.insert_pending", skip_all)]
pub async fn insert_pending(
    pool: &PgPool,
    who: &Initiator,
    owner: &str,
    lines: &[OrderLine],
    key: Option<&Key>,
) -> Result<Pending, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = rows!(
        "INSERT INTO orders (id, owner_sub, status, lines, idempotency_key) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner_sub, idempotency_key) DO NOTHING RETURNING",
        "",
        Uuid::now_v7(),
        owner,
        OrderStatus::Pending.as_str(),
        Json(lines) as _,
        key.map(Key::as_str),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = inserted else {
        let existing = rows!(
            "SELECT",
            "FROM orders WHERE owner_sub = $1 AND idempotency_key = $2",
            owner,
            key.map(Key::as_str),
        )
        .fetch_optional(&mut *tx)
        .await?;
        return Ok(match existing {
            Some(row) => Pending::Existing(row.try_into()?),
            None => Pending::Gone,
        });
    };
    let order = Order::try_from(row)?;
    let detail = serde_json::json!({ "lines": lines });
    audit::record(&mut tx, who, "order.create", &order.id.to_string(), detail).await?;
    tx.commit().await?;
    Ok(Pending::New(order))
}

/// What a paid order records.
pub struct Payment<'a> {
    pub lines: &'a [OrderLine],
    pub total_cents: i64,
    pub reservation_id: Uuid,
    pub charge_id: Uuid,
    /// Whether inventory confirmed the stock as sold.
    pub reservation_committed: bool,
    pub relay: &'a [Hop],
}

#[tracing::instrument(name = "db.order.mark_paid", skip_all)]
pub async fn mark_paid(
    pool: &PgPool,
    who: &Initiator,
    id: Uuid,
    paid: Payment<'_>,
) -> Result<Order, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = rows!(
        "UPDATE orders SET status = $2, lines = $3, total_cents = $4, reservation_id = $5, charge_id = $6,
             relay = $7, updated_at = now()
         WHERE id = $1 RETURNING",
        "",
        id,
        OrderStatus::Paid.as_str(),
        Json(paid.lines) as _,
        paid.total_cents,
        paid.reservation_id,
        paid.charge_id,
        Json(paid.relay) as _,
    )
    .fetch_one(&mut *tx)
    .await?;
    let detail = serde_json::json!({
        "total_cents": paid.total_cents,
        "reservation": paid.reservation_id,
        "charge": paid.charge_id,
        "reservation_committed": paid.reservation_committed,
    });
    audit::record(&mut tx, who, "order.paid", &id.to_string(), detail).await?;
    tx.commit().await?;
    row.try_into()
}

/// Deletes a pending order that failed (after its reservation was released)
/// and records why.
#[tracing::instrument(name = "db.order.discard", skip_all)]
pub async fn discard(
    pool: &PgPool,
    who: &Initiator,
    id: Uuid,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "DELETE FROM orders WHERE id = $1 AND status = $2",
        id,
        OrderStatus::Pending.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    audit::record(&mut tx, who, "order.fail", &id.to_string(), detail).await?;
    tx.commit().await
}

/// Newest first, at most `limit`; everyone's orders when `owner` is `None`.
#[tracing::instrument(name = "db.order.list", skip_all)]
pub async fn list(
    pool: &PgPool,
    owner: Option<&str>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    // Two statements rather than `$1 IS NULL OR owner_sub = $1`: a prepared
    // statement's generic plan serves both cases with one plan, and one
    // settled on while the table was small (a scan and a sort) makes every
    // customer's list read the whole table. With one statement per case, the
    // owner's index serves a customer and the time index everyone.
    let rows = match owner {
        Some(owner) => {
            rows!(
                "SELECT",
                "FROM orders WHERE owner_sub = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                owner,
                limit,
            )
            .fetch_all(pool)
            .await?
        }
        None => {
            rows!(
                "SELECT",
                "FROM orders ORDER BY created_at DESC, id DESC LIMIT $1",
                limit,
            )
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter().map(Order::try_from).collect()
}

#[tracing::instrument(name = "db.order.get", skip_all)]
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = rows!("SELECT", "FROM orders WHERE id = $1", id)
        .fetch_optional(pool)
        .await?;
    row.map(Order::try_from).transpose()
}

/// Marks the orders pending for longer than `ttl` failed, each audited as
/// `order.expire` by `who`; returns how many.
#[tracing::instrument(name = "db.order.fail_pending_older_than", skip_all)]
pub async fn fail_pending_older_than(
    pool: &PgPool,
    who: &Initiator,
    ttl: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let failed = sqlx::query_scalar!(
        "UPDATE orders SET status = $2, updated_at = now()
         WHERE status = $3 AND created_at < now() - $1::BIGINT * interval '1 second'
         RETURNING id",
        seconds,
        OrderStatus::Failed.as_str(),
        OrderStatus::Pending.as_str(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let detail =
        serde_json::json!({ "reason": "left pending", "pending_longer_than_secs": seconds });
    for id in &failed {
        audit::record(
            &mut tx,
            who,
            "order.expire",
            &id.to_string(),
            detail.clone(),
        )
        .await?;
        tracing::warn!(order = %id, "pending order left unfinished marked failed");
    }
    tx.commit().await?;
    Ok(failed.len() as u64)
}
