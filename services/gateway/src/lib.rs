//! gateway: the one address a person opens.
//!
//! * a backend-for-frontend: browser sign-in as a confidential OIDC client
//!   of the IdP, tokens kept server-side in sealed PostgreSQL sessions, the
//!   browser holding only an `HttpOnly` cookie ([`http::auth`], [`session`], [`oidc`]),
//!   ended too when the IdP session ends (back-channel logout, [`http::backchannel`]);
//! * an API gateway: a route table ([`routes`], `deploy/routes.toml`) with
//!   coarse RBAC, per-route timeouts and rate limits, relaying the caller's
//!   access token to the services ([`http::api`], [`proxy`]);
//! * aggregation: `GET /api/dashboard` fans out to several services at once
//!   with the caller's identity ([`http::dashboard`]);
//! * resilience: a circuit breaker per upstream instance, balancing across
//!   instances, fallbacks ([`circuit`], [`proxy`], `GET /circuits`);
//! * the demo page at `/` ([`http::page`]).

/// Who is calling: the session or bearer token behind a request.
pub mod caller;
/// A circuit breaker per upstream instance.
pub mod circuit;
/// The gateway's settings ([`Config`]), from the environment.
pub mod config;
/// CSRF protection of the browser's state-changing requests.
pub mod csrf;
/// What can go wrong in a request, and its answer.
pub mod error;
/// The HTTP interface, one module per resource.
pub mod http;
/// The gateway as an OpenID Connect client of the IdP.
pub mod oidc;
/// Forwarding requests to the upstream services.
pub mod proxy;
/// Per-route rate limits.
pub mod rate_limit;
/// The token relayed to a route's service.
pub mod relay_token;
/// The route table (`deploy/routes.toml`).
pub mod routes;
/// The security headers of every answer.
pub mod security_headers;
/// Server-side sessions in PostgreSQL.
pub mod session;
/// Start-up: [`Application::build`] wires the routes, pool, validators, tasks and router.
pub mod startup;
/// Every SQL statement of the gateway, compile-checked.
pub mod store;

pub use config::Config;
pub use startup::{AppState, Application, MIGRATOR, StartError, router};
