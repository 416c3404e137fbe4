//! inventory: items, stock and reservations.
//!
//! | endpoint | who |
//! |---|---|
//! | `GET /items[?stock_below=n]` | any valid token |
//! | `PUT /items/{sku}` | role `admin` and scope `inventory:write` |
//! | `POST /reservations` (`Idempotency-Key` required) | role `customer`; the reservation belongs to the token's `sub` |
//! | `DELETE /reservations/{id}` (release) | the reservation's owner, or `admin` (others: 404) |
//! | `POST /reservations/{id}/commit` (sold: no release any more) | the reservation's owner, or `admin` (others: 404) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |
//!
//! A reservation still held after `INVENTORY_RESERVATION_TTL_SECS` (an order
//! that crashed half-way) is released by [`expiry::sweep`].

/// inventory's settings ([`Config`]), from the environment.
pub mod config;
/// Inventory's own types: the states of a reservation.
pub mod domain;
/// What can go wrong in a request, and its answer.
pub mod error;
/// Releasing the reservations an order left behind.
pub mod expiry;
/// The HTTP interface, one module per resource.
pub mod http;
/// Start-up: [`Application::build`] wires the pool, guard, tasks and router.
pub mod startup;
/// Every SQL statement of inventory, compile-checked.
pub mod store;

pub use config::Config;
pub use error::AppError;
pub use startup::{AppState, Application, MIGRATOR, SERVICE, router};
