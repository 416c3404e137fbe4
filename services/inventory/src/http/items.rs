//! `GET /items` (any valid token) and `PUT /items/{sku}` (role `admin` and
//! scope `inventory:write`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use guard::Principal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shop::lines::{LineError, is_sku};
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;

use crate::{AppError, AppState};
use guard::audit::{self, Initiator};
use shop::text::fits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items", get(list))
        .route("/items/{sku}", axum::routing::put(put))
}

#[derive(Debug, Clone, Serialize, Deserialize, FromRow)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Only items with less stock than this (e.g. a "running low" view).
    stock_below: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ItemList {
    pub items: Vec<Item>,
}

async fn list(
    _caller: Principal,
    State(pool): State<PgPool>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ItemList>, AppError> {
    let Query(query) = query?;
    let items = sqlx::query_as::<_, Item>(
        "SELECT sku, name, description, price_cents, stock, updated_at FROM items
         WHERE $1::INTEGER IS NULL OR stock < $1 ORDER BY sku",
    )
    .bind(query.stock_below)
    .fetch_all(&pool)
    .await?;
    Ok(Json(ItemList { items }))
}

/// The full representation of an item, as `PUT` replaces it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemInput {
    name: String,
    #[serde(default)]
    description: String,
    price_cents: i64,
    stock: i32,
}

#[derive(FromRow)]
struct Upserted {
    #[sqlx(flatten)]
    item: Item,
    created: bool,
}

/// Creates or replaces an item: 201 when it is new, 200 when it existed.
async fn put(
    caller: Principal,
    State(pool): State<PgPool>,
    Path(sku): Path<String>,
    body: Result<Json<ItemInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Item>), AppError> {
    caller.require_role("admin")?;
    caller.require_scope("inventory:write")?;
    let Json(input) = body?;
    if !is_sku(&sku) {
        return Err(LineError::Sku(sku).into());
    }
    let name = input.name.trim();
    if name.is_empty() || !fits(name, 200) {
        return Err(AppError::Invalid("name must be 1 to 200 characters".into()));
    }
    if !fits(&input.description, 2000) {
        return Err(AppError::Invalid(
            "description must be at most 2000 characters".into(),
        ));
    }
    if input.price_cents < 0 || input.stock < 0 {
        return Err(AppError::Invalid(
            "price_cents and stock must not be negative".into(),
        ));
    }

    let mut tx = pool.begin().await?;
    let Upserted { item, created } = sqlx::query_as(
        "INSERT INTO items (sku, name, description, price_cents, stock) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
             price_cents = EXCLUDED.price_cents, stock = EXCLUDED.stock, updated_at = now()
         RETURNING sku, name, description, price_cents, stock, updated_at, (xmax = 0) AS created",
    )
    .bind(&sku)
    .bind(name)
    .bind(&input.description)
    .bind(input.price_cents)
    .bind(input.stock)
    .fetch_one(&mut *tx)
    .await?;
    let detail =
        json!({ "created": created, "price_cents": item.price_cents, "stock": item.stock });
    audit::record(&mut tx, &Initiator::new(&caller), "item.put", &sku, detail).await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)))
}
