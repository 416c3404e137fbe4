//! `GET /items` (any valid token) and `PUT /items/{sku}` (role `admin` and
//! scope `inventory:write`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use guard::Principal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shop::cents::Cents;
use shop::sku::Sku;
use sqlx::PgPool;

use crate::store::{self, Item, Put};
use crate::{AppError, AppState};
use guard::audit::{self, Initiator};
use shop::text::fits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items", get(list))
        .route("/items/{sku}", axum::routing::put(put))
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
    let items = store::list_items(&pool, query.stock_below).await?;
    Ok(Json(ItemList { items }))
}

/// The full representation of an item, as `PUT` replaces it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemInput {
    name: String,
    #[serde(default)]
    description: String,
    price_cents: Cents,
    stock: i32,
}

/// Creates or replaces an item: 201 when it is new, 200 when it existed.
async fn put(
    caller: Principal,
    State(pool): State<PgPool>,
    Path(sku): Path<String>,
    platform::json::Json(input): platform::json::Json<ItemInput>,
) -> Result<(StatusCode, Json<Item>), AppError> {
    caller.require_role("admin")?;
    caller.require_scope("inventory:write")?;
    let sku = Sku::try_from(sku)?;
    let name = input.name.trim();
    if name.is_empty() || !fits(name, 200) {
        return Err(AppError::Invalid("name must be 1 to 200 characters".into()));
    }
    if !fits(&input.description, 2000) {
        return Err(AppError::Invalid(
            "description must be at most 2000 characters".into(),
        ));
    }
    if input.stock < 0 {
        return Err(AppError::Invalid(
            "price_cents and stock must not be negative".into(),
        ));
    }

    let mut tx = pool.begin().await?;
    let Put { item, created } = store::put_item(
        &mut tx,
        &sku,
        name,
        &input.description,
        input.price_cents,
        input.stock,
    )
    .await?;
    let detail =
        json!({ "created": created, "price_cents": item.price_cents, "stock": item.stock });
    audit::record(
        &mut tx,
        &Initiator::new(&caller),
        "item.put",
        sku.as_str(),
        detail,
    )
    .await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)))
}
