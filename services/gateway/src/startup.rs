//! Start-up: [`Application::build`] loads the route table, connects the
//! session database, builds the validators, the OIDC client and the proxy,
//! and binds the listener; [`Application::run_until_stopped`] serves until
//! SIGTERM or Ctrl-C. The background work (the session purge, the metrics
//! listener) runs under one [`Tasks`] and stops with the server.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use guard::Guard;
use guard::monitoring::GuardGauges;
use platform::shutdown::Tasks;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::oidc::{Oidc, OidcSettings};
use crate::proxy::Proxy;
use crate::routes::{self, RouteTable};
use crate::security_headers::{self, SecurityHeaders};
use crate::session::SessionStore;
use crate::{circuit, http};

/// The migrations of the gateway's database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/gateway");

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub routes: Arc<RouteTable>,
    /// The gateway's guard: the one JWKS cache and revocation-stream
    /// subscription every validator below shares, and the ID-token verifier's keys.
    pub guard: Guard,
    /// One validator per route audience (a guard checks one `aud`), each
    /// [`Guard::for_audience`] of `guard`.
    pub guards: Arc<HashMap<String, Guard>>,
    pub sessions: SessionStore,
    pub oidc: Oidc,
    /// Verifies the IdP's back-channel logout tokens for the gateway's client.
    pub logout_tokens: guard::LogoutTokenVerifier,
    pub proxy: Proxy,
    /// Per-route tokens by exchange, as the gateway's own client ([`relay_token`]).
    pub exchanger: guard::Exchanger,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] platform::ConfigError),
    #[error(transparent)]
    GuardClient(#[from] guard::BuildError),
    #[error(transparent)]
    Routes(#[from] routes::RouteTableError),
    #[error("cannot load the route table {path}: {source}")]
    RouteTable {
        path: std::path::PathBuf,
        source: routes::RouteTableError,
    },
    #[error(transparent)]
    Database(#[from] platform::db::DbError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
}

/// A bound, ready-to-serve gateway.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    tasks: Tasks,
}

impl Application {
    /// Loads the route table (`GATEWAY_ROUTES`), connects the database
    /// (creating it and applying migrations), binds `config.bind`, builds
    /// the gateway and serves its `GET /metrics` on `config.metrics_bind`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        for var in &config.dev_secrets {
            tracing::warn!(
                "{var} is not set: using the PUBLIC development default. Anyone can forge or read \
                 what it protects. Set it before exposing the gateway to anyone."
            );
        }
        let routes =
            RouteTable::load(&config.routes_path, |k| std::env::var(k).ok()).map_err(|source| {
                StartError::RouteTable {
                    path: config.routes_path.clone(),
                    source,
                }
            })?;
        let pool = config.database.connect(&MIGRATOR).await?;
        let listener = platform::server::listener(config.bind).await?;
        let metrics_bind = config.metrics_bind;
        let app = Self::new(config, routes, pool, listener)?;
        app.exporter().spawn(metrics_bind, &app.tasks).await?;
        tracing::info!(address = %app.local_addr(), "gateway listening");
        Ok(app)
    }

    /// Builds the gateway over a migrated `pool`, serving on `listener`
    /// (tests bind `127.0.0.1:0` first, to know the public URL).
    pub fn new(
        config: Config,
        routes: RouteTable,
        pool: PgPool,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        // One key cache and one revocation subscription for every audience.
        let guard = Guard::try_new(config.guard_config(&config.client_id)?)?;
        let mut guards = HashMap::new();
        for route in routes.routes() {
            if !guards.contains_key(&route.audience) {
                guards.insert(route.audience.clone(), guard.for_audience(&route.audience));
            }
        }
        let oidc = Oidc::new(OidcSettings {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri: config.redirect_uri(),
            post_logout_redirect_uri: format!("{}/", config.public_origin()),
            scopes: config.scopes.clone(),
            id_tokens: guard.id_token_verifier(&config.client_id),
            timeout: config.idp_timeout,
        })?;
        // The IdP's token endpoint is `<issuer>/token` (as its discovery says).
        let token_endpoint =
            url::Url::parse(&format!("{}/token", config.issuer.trim_end_matches('/')))
                .map_err(|e| platform::ConfigError::new("GATEWAY_ISSUER", e.to_string()))?;
        let exchanger = guard::Exchanger::new(
            token_endpoint,
            guard::ClientCredentials {
                id: config.client_id.clone(),
                secret: config.client_secret.clone(),
            },
        )?;
        let sessions = SessionStore::new(
            pool,
            config.session_key.clone(),
            config.session_idle,
            config.session_max,
            config.idp_timeout,
        );
        let logout_tokens = guard.logout_token_verifier(&config.client_id);
        let state = AppState {
            config: Arc::new(config),
            routes: Arc::new(routes),
            guard,
            guards: Arc::new(guards),
            sessions,
            oidc,
            logout_tokens,
            proxy: Proxy::new()?,
            exchanger,
        };
        let router = router(state.clone());
        let tasks = Tasks::new();
        tasks.spawn(
            "expired session purge",
            purge_sessions(state.sessions.clone()),
        );
        Ok(Self {
            listener,
            router,
            state,
            tasks,
        })
    }

    /// The shared state (tests reach the validators and the session store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// `GET /metrics` of this gateway: the HTTP and guard series, its session
    /// database pool and `gateway_circuit_state` per route and instance
    /// (0 closed, 1 half open, 2 open), sampled at each scrape.
    pub fn exporter(&self) -> platform::metrics::Exporter {
        let routes = self.state.routes.clone();
        platform::metrics::Exporter::new()
            .pool(self.state.sessions.pool())
            .guard(&self.state.guard)
            .sample(move || {
                for route in routes.routes() {
                    for (i, instance) in route.instances().iter().enumerate() {
                        let state = match instance.breaker.phase().0 {
                            circuit::Phase::Closed => 0,
                            circuit::Phase::HalfOpen => 1,
                            circuit::Phase::Open => 2,
                        };
                        let labels = [("route", route.name.clone()), ("instance", i.to_string())];
                        metrics::gauge!("gateway_circuit_state", &labels).set(state);
                    }
                }
            })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.bind)
    }

    /// The port the gateway listens on.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until SIGTERM or Ctrl-C, then drains connections and stops the tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(platform::shutdown::signal()).await
    }

    /// Serves until `shutdown` completes, then drains connections and stops
    /// the background tasks.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        self.tasks.stop().await;
        result
    }
}

/// Removes expired sessions every ten minutes.
async fn purge_sessions(sessions: SessionStore) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match sessions.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
        }
    }
}

/// The gateway's routes and middleware.
pub fn router(state: AppState) -> Router {
    let issuer_origin = url::Url::parse(&state.config.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let headers = SecurityHeaders::new(&issuer_origin, state.config.secure_cookies());
    let router = Router::new()
        .merge(http::page::router())
        .merge(http::auth::router())
        .merge(http::backchannel::router())
        .merge(http::dashboard::router())
        .merge(http::api::router())
        .merge(http::circuits::router())
        .fallback(http::api::not_found)
        .with_state(state.clone())
        .merge(http::health::router(&state))
        .layer(axum::middleware::from_fn_with_state(
            headers,
            security_headers::add,
        ));
    // Panics as 500, the request span, trace context (continued by the
    // relay), HTTP metrics, credentials never printed: platform's stack.
    platform::server::Stack::new().wrap(router)
}
