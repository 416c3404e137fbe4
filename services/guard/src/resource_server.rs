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
use platform::shutdown::Tasks;
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

/// What every resource server starts with: its [`Guard`] for `config`, and
/// its background [`Tasks`] with `GET /metrics` served among them on
/// `metrics_bind` (nothing when `None`): the HTTP and guard series, its
/// database pool and its revocation stream ([`Exporter`]).
pub async fn start_resource_server(
    config: crate::GuardConfig,
    metrics_bind: Option<SocketAddr>,
    pool: &PgPool,
) -> Result<(Guard, Tasks), StartError> {
    let guard = Guard::try_new(config)?;
    let tasks = Tasks::new();
    Exporter::new()
        .pool(pool)
        .guard(&guard)
        .spawn(metrics_bind, &tasks)
        .await
        .map_err(StartError::Metrics)?;
    Ok((guard, tasks))
}

/// Why a resource server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] platform::ConfigError),
    #[error(transparent)]
    Database(#[from] platform::db::DbError),
    #[error("guard: {0}")]
    Guard(#[from] crate::BuildError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("metrics listener: {0}")]
    Metrics(io::Error),
    #[error(transparent)]
    Listen(#[from] io::Error),
}
