//! Start-up: [`Application::build`] connects the database, builds the guard,
//! starts the background tasks (the metrics listener, the idempotency-key and
//! reservation sweeps) and binds the listener; [`Application::run_until_stopped`]
//! serves until SIGTERM or Ctrl-C, then stops the tasks with the server.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::FromRef;
use guard::Guard;
use guard::resource_server::{StartError, resource_server, start_resource_server};
use platform::idempotency;
use platform::server::{Running, Server};
use platform::shutdown;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::{AppError, Config, expiry, http};

/// This service's resource name: the audience its tokens must name.
pub const SERVICE: &str = "inventory";

/// The inventory database's migrations: guard's (`migrations/guard`: the audit
/// and idempotency tables) then inventory's own (`migrations/inventory`), as one migrator.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/inventory"))
});

/// What every handler can reach (each field as its own `State`).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub guard: Guard,
}

/// The whole HTTP interface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(http::items::router())
        .merge(http::reservations::router());
    resource_server::<_, AppError>(api, state)
}

/// inventory, bound and ready to serve.
pub struct Application(Server);

impl Application {
    /// Connects to `config.database` (migrating it) and builds on that pool.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = config.database.connect(&MIGRATOR).await?;
        Self::with_pool(config, pool).await
    }

    /// Builds on `pool`, already migrated (tests pass a fresh database).
    pub async fn with_pool(config: Config, pool: PgPool) -> Result<Self, StartError> {
        let (guard, tasks) =
            start_resource_server(config.guard, config.metrics_bind, &pool).await?;
        tasks.spawn("idempotency sweep", idempotency::sweep(pool.clone()));
        tasks.spawn(
            "reservation expiry",
            expiry::sweep(pool.clone(), config.reservation_ttl),
        );
        let state = AppState {
            pool: pool.clone(),
            guard,
        };
        let server = Server::bind(config.bind, router(state), tasks, pool).await?;
        tracing::info!(addr = %server.addr(), "inventory listening");
        Ok(Self(server))
    }

    /// The port the API listens on (the one picked when `bind` named port 0).
    pub fn port(&self) -> u16 {
        self.0.addr().port()
    }

    /// Serves until SIGTERM or Ctrl-C, then drains requests and stops the tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.0.run_until(shutdown::signal()).await
    }

    /// Serves in the background until [`Running::stop`] (tests).
    pub fn spawn(self) -> Running {
        self.0.spawn()
    }
}
