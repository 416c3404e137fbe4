//! Serving one of the shop's resource servers (order, payment, inventory)
//! with what guard adds to platform's stack: `GET /audit`, readiness that
//! includes the guard's keys and revocation stream, and the guard's gauges.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::FromRef;
use axum::extract::rejection::QueryRejection;
use axum::response::IntoResponse;
use platform::health::Readiness;
use platform::metrics::Exporter;
use platform::server::with_common_layers;
use sqlx::PgPool;

use crate::monitoring::{GuardChecks, GuardGauges};
use crate::{AuthError, Guard, audit};

/// A resource server's whole HTTP interface: its `api` routes, `GET /audit`
/// (role `admin`; failures answered as `E`), `GET /healthz` and `GET /readyz`,
/// all under platform's [`with_common_layers`].
pub fn resource_server<S, E>(api: Router<S>, state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Guard: FromRef<S>,
    E: From<AuthError> + From<QueryRejection> + From<sqlx::Error> + IntoResponse + 'static,
{
    let health = health_routes(&PgPool::from_ref(&state), &Guard::from_ref(&state));
    let api = api.merge(audit::router::<S, E>()).with_state(state);
    with_common_layers(api.merge(health))
}

/// `GET /healthz` and `GET /readyz`: ready when the database answers and
/// signing keys are loaded; the revocation stream's state (and lag) is shown
/// when the guard subscribes to one.
fn health_routes(pool: &PgPool, guard: &Guard) -> Router {
    Readiness::new().database(pool.clone()).jwks(guard).router()
}

/// Serves a resource server's `GET /metrics` on `bind` (nothing when `None`)
/// in the background: the HTTP and guard series, its database pool and its
/// revocation stream ([`Exporter`]); returns the address bound.
pub async fn serve_metrics(
    bind: Option<SocketAddr>,
    pool: &PgPool,
    guard: &Guard,
) -> io::Result<Option<SocketAddr>> {
    Exporter::new().pool(pool).guard(guard).spawn(bind).await
}
