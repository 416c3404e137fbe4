//! Every SQL statement of payment, compile-checked: charges and their refunds.

use serde::{Deserialize, Serialize};
use shop::status::Status;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ChargeStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Charge {
    pub id: Uuid,
    /// The charged user (`sub`).
    pub owner: String,
    pub amount_cents: i64,
    pub status: ChargeStatus,
    pub decline_reason: Option<String>,
    pub description: String,
    pub reference: Option<String>,
    pub refunded_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub id: Uuid,
    pub charge_id: Uuid,
    pub amount_cents: i64,
    pub refunded_by: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A charge as stored; [`Charge`] once its status is parsed.
struct Row {
    id: Uuid,
    owner: String,
    amount_cents: i64,
    status: String,
    decline_reason: Option<String>,
    description: String,
    reference: Option<String>,
    refunded_cents: i64,
    created_at: OffsetDateTime,
}

impl TryFrom<Row> for Charge {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.id,
            owner: row.owner,
            amount_cents: row.amount_cents,
            status: ChargeStatus::parse(&row.status)?,
            decline_reason: row.decline_reason,
            description: row.description,
            reference: row.reference,
            refunded_cents: row.refunded_cents,
            created_at: row.created_at,
        })
    }
}

/// `query_as!` into a [`Row`], the SQL being `$before`, the charge's columns,
/// `$after` (`query_as!` takes only literals, so the column list is spliced
/// in here rather than formatted into a string).
macro_rules! rows {
    ($before:literal, $after:literal, $($arg:tt)*) => {
        sqlx::query_as!(
            Row,
            $before
                + " id, owner_sub AS owner, amount_cents, status, decline_reason, description,
                    reference, refunded_cents, created_at "
                + $after,
            $($arg)*
        )
    };
}

/// What a new charge records.
pub struct NewCharge<'a> {
    pub owner: &'a str,
    pub amount_cents: i64,
    pub decline_reason: Option<&'a str>,
    pub description: &'a str,
    pub reference: Option<&'a str>,
}

/// Records a charge: `declined` when it has a decline reason, else `succeeded`.
#[tracing::instrument(name = "db.payment.insert_charge", skip_all)]
pub async fn insert_charge(
    conn: &mut PgConnection,
    new: NewCharge<'_>,
) -> Result<Charge, sqlx::Error> {
    let status = if new.decline_reason.is_some() {
        ChargeStatus::Declined
    } else {
        ChargeStatus::Succeeded
    };
    rows!(
        "INSERT INTO charges (id, owner_sub, amount_cents, status, decline_reason, description, reference)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING",
        "",
        Uuid::now_v7(),
        new.owner,
        new.amount_cents,
        status.as_str(),
        new.decline_reason,
        new.description,
        new.reference,
    )
    .fetch_one(conn)
    .await?
    .try_into()
}

/// Newest first, at most `limit`; everyone's when `everyone`, else `owner`'s.
#[tracing::instrument(name = "db.payment.list_charges", skip_all)]
pub async fn list_charges(
    pool: &PgPool,
    everyone: bool,
    owner: &str,
    limit: i64,
) -> Result<Vec<Charge>, sqlx::Error> {
    // One statement per case, as order's list does (see there why).
    let rows = if everyone {
        rows!(
            "SELECT",
            "FROM charges ORDER BY created_at DESC, id DESC LIMIT $1",
            limit,
        )
        .fetch_all(pool)
        .await?
    } else {
        rows!(
            "SELECT",
            "FROM charges WHERE owner_sub = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            owner,
            limit,
        )
        .fetch_all(pool)
        .await?
    };
    rows.into_iter().map(Charge::try_from).collect()
}

/// The charge `id`, locked for the rest of the transaction.
#[tracing::instrument(name = "db.payment.lock_charge", skip_all)]
pub async fn lock_charge(conn: &mut PgConnection, id: Uuid) -> Result<Option<Charge>, sqlx::Error> {
    rows!("SELECT", "FROM charges WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await?
        .map(Charge::try_from)
        .transpose()
}

/// Records a refund of `amount_cents` of the charge `charge_id` by `by` and
/// adds it to the charge's refunded total; returns both.
#[tracing::instrument(name = "db.payment.refund", skip_all)]
pub async fn refund(
    conn: &mut PgConnection,
    charge_id: Uuid,
    amount_cents: i64,
    by: &str,
    reason: &str,
) -> Result<(Refund, Charge), sqlx::Error> {
    let refund = sqlx::query_as!(
        Refund,
        "INSERT INTO refunds (id, charge_id, amount_cents, refunded_by, reason) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, charge_id, amount_cents, refunded_by, reason, created_at",
        Uuid::now_v7(),
        charge_id,
        amount_cents,
        by,
        reason,
    )
    .fetch_one(&mut *conn)
    .await?;
    let charge = rows!(
        "UPDATE charges SET refunded_cents = refunded_cents + $2 WHERE id = $1 RETURNING",
        "",
        charge_id,
        amount_cents,
    )
    .fetch_one(conn)
    .await?
    .try_into()?;
    Ok((refund, charge))
}
