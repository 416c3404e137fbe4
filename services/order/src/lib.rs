//! order: places orders by reserving stock at inventory and charging at
//! payment, each call with a token for that service alone, exchanged from the
//! caller's (or, with `ORDER_RELAY=plain`, the caller's own token).
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /orders` (optional `Idempotency-Key`) | role `customer` |
//! | `GET /orders[?limit=n]` | any valid token: own orders; `support`/`admin`: all |
//! | `GET /orders/{id}` | the owner, `support` or `admin` (others: 404) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |
//!
//! An order still pending after `ORDER_PENDING_TTL_SECS` (a crash mid-order)
//! is marked failed by [`expiry::sweep`].

/// Placing an order: reserve, charge, commit, and undo what failed.
pub mod checkout;
/// order's settings ([`Config`]), from the environment.
pub mod config;
/// Order's own types: the states of an order.
pub mod domain;
/// The calls to inventory and payment.
pub mod downstream;
/// What can go wrong in a request, and its answer.
pub mod error;
/// Failing the orders a crash left pending.
pub mod expiry;
/// The HTTP interface, one module per resource.
pub mod http;
/// Start-up: [`Application::build`] wires the pool, guard, relay, tasks and router.
pub mod startup;
/// Every SQL statement of order, compile-checked.
pub mod store;

pub use config::Config;
pub use downstream::Downstream;
pub use error::AppError;
pub use startup::{AppState, Application, MIGRATOR, SERVICE, router};
