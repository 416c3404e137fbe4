//! platform: the plumbing every Baton part shares — the IdP, the gateway and
//! the shop's services alike — and that knows nothing of tokens, services or
//! the shop: the HTTP middleware stack, database start-up, logging and
//! telemetry, metrics, health, the client's address, error bodies.

/// [`ApiError`]: every way a request can fail, answered in one place.
pub mod api_error;
/// The client's address behind trusted proxies (CIDRs).
pub mod client_ip;
/// [`ConfigError`]: a setting that cannot be used.
pub mod config;
/// Sealing (AES-256-GCM), random tokens, hashes, constant-time comparison.
pub mod crypto;
/// Database start-up: create, connect, migrate; periodic housekeeping.
pub mod db;
/// The `{"error","error_description"}` body and database failures.
pub mod error_body;
/// `/healthz` and `/readyz`.
pub mod health;
/// `Idempotency-Key`: a retry gets the first answer.
pub mod idempotency;
/// [`json::Json`]: the JSON body extractor whose rejection answers `invalid_request`.
pub mod json;
/// Prometheus: the recorder, the HTTP layer, `GET /metrics`.
pub mod metrics;
/// The middleware stack, serving, and servers in the background.
pub mod server;
/// Graceful shutdown on a signal.
pub mod shutdown;
/// Logging and OpenTelemetry traces.
pub mod telemetry;
/// W3C `traceparent`.
pub mod trace;

pub use api_error::{ApiError, DomainError};
pub use config::ConfigError;
pub use trace::TraceContext;
