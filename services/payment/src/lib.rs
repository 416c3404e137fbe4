//! payment: charges and refunds.
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /charges` (`Idempotency-Key` required) | role `customer`, for the token's own `sub` only |
//! | `GET /charges[?limit=n]` | any valid token: own charges; `support`/`admin`: all |
//! | `POST /charges/{id}/refund` | `support` (refunded total up to the limit) or `admin` (any amount) |
//! | `GET /audit` | role `admin` |
//! | `GET /healthz`, `GET /readyz` | anyone |

/// payment's settings ([`Config`]), from the environment.
pub mod config;
/// Payment's own types: a charge's amount and states.
pub mod domain;
/// What can go wrong in a request, and its answer.
pub mod error;
/// The HTTP interface, one module per resource.
pub mod http;
/// The processor's business rules ([`Rules`]): declines and refund limits.
pub mod rules;
/// Start-up: [`Application::build`] wires the pool, guard, tasks and router.
pub mod startup;
/// Every SQL statement of payment, compile-checked.
pub mod store;

pub use config::Config;
pub use error::AppError;
pub use rules::Rules;
pub use startup::{AppState, Application, MIGRATOR, SERVICE, router};
