//! `POST /orders` (role `customer`; optional `Idempotency-Key`), `GET /orders`
//! (own; `support` and `admin` see all) and `GET /orders/{id}` (owner, `support`
//! or `admin`; anyone else gets 404 so order ids do not leak).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use guard::Principal;
use platform::idempotency::Key;
use serde::{Deserialize, Serialize};
use shop::lines::{self, Line};
use sqlx::PgPool;
use uuid::Uuid;

use crate::checkout::{self, Outcome};
use crate::downstream::Downstream;
use crate::store::{self, Order, OrderLine};
use crate::{AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(show))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRequest {
    lines: Vec<Line>,
}

/// Checks the lines by inventory's rules (so that an order inventory would
/// refuse is refused before anything is written) and sorts them by sku.
fn normalise(request: OrderRequest) -> Result<Vec<OrderLine>, AppError> {
    let lines = lines::normalise(request.lines)?;
    Ok(lines
        .into_iter()
        .map(|line| OrderLine {
            sku: line.sku,
            quantity: line.quantity,
            unit_price_cents: None,
        })
        .collect())
}

/// 201 with `{"order": …, "relay": [order, inventory, payment hops]}`; a retry
/// with the same `Idempotency-Key` gets the same answer, marked `Idempotent-Replayed`.
async fn create(
    caller: Principal,
    headers: HeaderMap,
    State(pool): State<PgPool>,
    State(downstream): State<Downstream>,
    platform::json::Json(request): platform::json::Json<OrderRequest>,
) -> Result<Response, AppError> {
    caller.require_role("customer")?;
    let key = Key::optional(&headers)?;
    let lines = normalise(request)?;
    Ok(
        match checkout::place(&pool, &downstream, &caller, lines, key).await? {
            Outcome::Created(placed) => (StatusCode::CREATED, Json(placed)).into_response(),
            Outcome::Replayed(placed) => {
                let mut response = (StatusCode::CREATED, Json(placed)).into_response();
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                response
            }
        },
    )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OrderList {
    pub orders: Vec<Order>,
}

/// Newest first, at most 200 (default 50).
async fn list(
    caller: Principal,
    State(pool): State<PgPool>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<OrderList>, AppError> {
    let Query(query) = query?;
    let owner = (!sees_all(&caller)).then(|| caller.sub());
    let orders = store::list(&pool, owner, query.limit.unwrap_or(50).clamp(1, 200)).await?;
    Ok(Json(OrderList { orders }))
}

async fn show(
    caller: Principal,
    State(pool): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    match store::get(&pool, id).await? {
        Some(order) if order.owner == caller.sub() || sees_all(&caller) => Ok(Json(order)),
        _ => Err(AppError::NotFound),
    }
}

fn sees_all(caller: &Principal) -> bool {
    caller.has_role("support") || caller.has_role("admin")
}
