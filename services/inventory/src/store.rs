//! Every SQL statement of inventory, compile-checked against the schema: the
//! items and their stock, reservations and their lines.
//!
//! Stock is taken with one conditional update per line
//! (`stock = stock - q WHERE stock >= q`), so concurrent reservations never
//! oversell; the handlers call these functions inside their transactions.

use serde::{Deserialize, Serialize};
use shop::cents::Cents;
use shop::quantity::Quantity;
use shop::sku::Sku;
use shop::status::Status;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ReservationStatus;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price_cents: Cents,
    pub stock: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    pub owner: String,
    pub status: ReservationStatus,
    pub total_cents: i64,
    pub lines: Vec<ReservedLine>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReservedLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price_cents: i64,
}

/// Items by sku; only those with less stock than `stock_below` when given.
#[tracing::instrument(name = "db.inventory.list_items", skip_all)]
pub async fn list_items(pool: &PgPool, stock_below: Option<i32>) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query_as!(
        Item,
        r#"SELECT sku AS "sku: Sku", name, description, price_cents AS "price_cents: Cents", stock, updated_at
           FROM items WHERE $1::INTEGER IS NULL OR stock < $1 ORDER BY sku"#,
        stock_below,
    )
    .fetch_all(pool)
    .await
}

/// What an item looks like after [`put_item`], and whether it is new.
pub struct Put {
    pub item: Item,
    pub created: bool,
}

/// Creates or replaces the item `sku`.
#[tracing::instrument(name = "db.inventory.put_item", skip_all)]
pub async fn put_item(
    conn: &mut PgConnection,
    sku: &Sku,
    name: &str,
    description: &str,
    price_cents: Cents,
    stock: i32,
) -> Result<Put, sqlx::Error> {
    let row = sqlx::query!(
        r#"INSERT INTO items (sku, name, description, price_cents, stock) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
               price_cents = EXCLUDED.price_cents, stock = EXCLUDED.stock, updated_at = now()
           RETURNING sku AS "sku: Sku", name, description, price_cents AS "price_cents: Cents", stock,
               updated_at, (xmax = 0) AS "created!""#,
        sku.as_str(),
        name,
        description,
        price_cents.get(),
        stock,
    )
    .fetch_one(conn)
    .await?;
    Ok(Put {
        item: Item {
            sku: row.sku,
            name: row.name,
            description: row.description,
            price_cents: row.price_cents,
            stock: row.stock,
            updated_at: row.updated_at,
        },
        created: row.created,
    })
}

/// Takes `quantity` of `sku` off the shelf if there is that much; returns its
/// unit price, or `None` when the item is unknown or short.
#[tracing::instrument(name = "db.inventory.take", skip_all)]
pub async fn take(
    conn: &mut PgConnection,
    sku: &Sku,
    quantity: Quantity,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE items SET stock = stock - $2, updated_at = now()
         WHERE sku = $1 AND stock >= $2 RETURNING price_cents",
        sku.as_str(),
        quantity.get(),
    )
    .fetch_optional(conn)
    .await
}

/// Puts `quantity` of `sku` back on the shelf.
#[tracing::instrument(name = "db.inventory.put_back", skip_all)]
pub async fn put_back(
    conn: &mut PgConnection,
    sku: &Sku,
    quantity: Quantity,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE items SET stock = stock + $2, updated_at = now() WHERE sku = $1",
        sku.as_str(),
        quantity.get(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The stock of `sku`, `None` when there is no such item.
#[tracing::instrument(name = "db.inventory.stock", skip_all)]
pub async fn stock(conn: &mut PgConnection, sku: &Sku) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!("SELECT stock FROM items WHERE sku = $1", sku.as_str())
        .fetch_optional(conn)
        .await
}

/// Writes a held reservation and its lines; returns its creation time.
#[tracing::instrument(name = "db.inventory.insert_reservation", skip_all)]
pub async fn insert_reservation(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    total_cents: i64,
    lines: &[ReservedLine],
) -> Result<OffsetDateTime, sqlx::Error> {
    let created_at = sqlx::query_scalar!(
        "INSERT INTO reservations (id, owner_sub, status, total_cents) VALUES ($1, $2, $3, $4)
         RETURNING created_at",
        id,
        owner,
        ReservationStatus::Held.as_str(),
        total_cents,
    )
    .fetch_one(&mut *conn)
    .await?;
    let skus: Vec<String> = lines.iter().map(|l| l.sku.to_string()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity.get()).collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.unit_price_cents).collect();
    sqlx::query!(
        "INSERT INTO reservation_lines (reservation_id, sku, quantity, unit_price_cents)
         SELECT $1, * FROM UNNEST($2::TEXT[], $3::INTEGER[], $4::BIGINT[])",
        id,
        &skus,
        &quantities,
        &prices,
    )
    .execute(conn)
    .await?;
    Ok(created_at)
}

/// Locks the reservation `id` for the rest of the transaction; returns its
/// owner and status.
#[tracing::instrument(name = "db.inventory.lock", skip_all)]
pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(String, ReservationStatus)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT owner_sub, status FROM reservations WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await?;
    row.map(|row| Ok((row.owner_sub, ReservationStatus::parse(&row.status)?)))
        .transpose()
}

/// Moves the held reservation `id` to `status` (released ones get their
/// `released_at`).
#[tracing::instrument(name = "db.inventory.set_status", skip_all)]
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: ReservationStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE reservations SET status = $2,
             released_at = CASE WHEN $2 = 'released' THEN now() END
         WHERE id = $1 AND status = 'held'",
        id,
        status.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest reservation held since before `seconds` ago, locked (one being
/// changed right now is skipped, not waited for).
#[tracing::instrument(name = "db.inventory.lock_expired", skip_all)]
pub async fn lock_expired(
    conn: &mut PgConnection,
    seconds: i64,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM reservations
         WHERE status = 'held' AND created_at < now() - $1::BIGINT * interval '1 second'
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        seconds,
    )
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.inventory.lines", skip_all)]
pub async fn lines(conn: &mut PgConnection, id: Uuid) -> Result<Vec<ReservedLine>, sqlx::Error> {
    sqlx::query_as!(
        ReservedLine,
        r#"SELECT sku AS "sku: Sku", quantity AS "quantity: Quantity", unit_price_cents
           FROM reservation_lines WHERE reservation_id = $1 ORDER BY sku"#,
        id
    )
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.inventory.reservation", skip_all)]
pub async fn reservation(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT owner_sub, status, total_cents, created_at, released_at FROM reservations WHERE id = $1",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Reservation {
        id,
        owner: row.owner_sub,
        status: ReservationStatus::parse(&row.status)?,
        total_cents: row.total_cents,
        lines: lines(conn, id).await?,
        created_at: row.created_at,
        released_at: row.released_at,
    }))
}
