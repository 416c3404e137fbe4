//! Start-up: [`Application::build`] connects the database, builds the guard,
//! the relay client and (with `ORDER_RELAY=exchange`) the token exchanger,
//! starts the background tasks (the metrics listener, the stale-order sweep)
//! and binds the listener; [`Application::run_until_stopped`] serves until
//! SIGTERM or Ctrl-C, then stops the tasks with the server.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::FromRef;
use guard::relay::{DEFAULT_CONNECT_TIMEOUT, RelayClient};
use guard::resource_server::{StartError, resource_server, start_resource_server};
use guard::{Exchanger, Guard, RelayMode};
use platform::ConfigError;
use platform::server::{Running, Server};
use platform::shutdown;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use url::Url;

use crate::{AppError, Config, Downstream, expiry, http};

/// This service's resource name: the audience its tokens must name.
pub const SERVICE: &str = "order";

/// The order database's migrations: guard's (`migrations/guard`: the audit
/// and idempotency tables) then order's own (`migrations/order`), as one migrator.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/order"))
});

/// What every handler can reach (each field as its own `State`).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub guard: Guard,
    pub downstream: Downstream,
}

impl AppState {
    /// `relay` calls inventory and payment at these base URLs, with tokens
    /// from `exchanger` (`None`: the caller's own token).
    pub fn new(
        pool: PgPool,
        guard: Guard,
        relay: &RelayClient,
        inventory: Url,
        payment: Url,
        exchanger: Option<Exchanger>,
    ) -> Self {
        Self {
            pool,
            guard,
            downstream: Downstream {
                inventory: relay.upstream("inventory", inventory),
                payment: relay.upstream("payment", payment),
                exchanger,
            },
        }
    }
}

/// The whole HTTP interface.
pub fn router(state: AppState) -> Router {
    let api = http::orders::router();
    resource_server::<_, AppError>(api, state)
}

/// order, bound and ready to serve.
pub struct Application(Server);

impl Application {
    /// Connects to `config.database` (migrating it) and builds on that pool.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = config.database.connect(&MIGRATOR).await?;
        Self::with_pool(config, pool).await
    }

    /// Builds on `pool`, already migrated (tests pass a fresh database).
    pub async fn with_pool(config: Config, pool: PgPool) -> Result<Self, StartError> {
        let exchanger = match config.relay {
            RelayMode::Plain => None,
            RelayMode::Exchange => Some(Exchanger::from_config(&config.guard).ok_or_else(
                || ConfigError {
                    var: "ORDER_RELAY",
                    reason: "exchange needs GUARD_CLIENT_ID and GUARD_CLIENT_SECRET".into(),
                },
            )??),
        };
        let (guard, tasks) =
            start_resource_server(config.guard, config.metrics_bind, &pool).await?;
        let relay = RelayClient::with_timeouts(config.relay_timeout, DEFAULT_CONNECT_TIMEOUT)?;
        tasks.spawn(
            "stale order expiry",
            expiry::sweep(pool.clone(), config.pending_ttl),
        );
        let state = AppState::new(
            pool.clone(),
            guard,
            &relay,
            config.inventory_url.clone(),
            config.payment_url.clone(),
            exchanger,
        );
        let server = Server::bind(config.bind, router(state), tasks, pool).await?;
        tracing::info!(addr = %server.addr(), inventory = %config.inventory_url,
            payment = %config.payment_url, relay = ?config.relay, "order listening");
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
