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

pub mod caller;
pub mod circuit;
pub mod config;
pub mod csrf;
pub mod error;
pub mod http;
pub mod oidc;
pub mod proxy;
pub mod rate_limit;
pub mod relay_token;
pub mod routes;
pub mod security_headers;
pub mod session;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use guard::Guard;
use guard::monitoring::GuardGauges;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use config::Config;
use oidc::{Oidc, OidcSettings};
use proxy::Proxy;
use routes::RouteTable;
use security_headers::SecurityHeaders;
use session::SessionStore;

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
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Guard(#[from] platform::ConfigError),
    #[error(transparent)]
    GuardClient(#[from] guard::BuildError),
    #[error(transparent)]
    Routes(#[from] routes::RouteTableError),
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
}

impl Application {
    /// Connects the database (creating it and applying migrations), binds
    /// `config.bind`, and builds the gateway.
    pub async fn build(config: Config, routes: RouteTable) -> Result<Self, StartError> {
        let pool = platform::db::connect_and_migrate(
            &config.database_url,
            config.db_max_connections,
            &MIGRATOR,
        )
        .await?;
        let listener = TcpListener::bind(config.bind).await?;
        Self::new(config, routes, pool, listener)
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
            url::Url::parse(&format!("{}/token", config.issuer.trim_end_matches('/'))).map_err(
                |e| config::ConfigError {
                    var: "GATEWAY_ISSUER",
                    reason: e.to_string(),
                },
            )?;
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
        Ok(Self {
            listener,
            router,
            state,
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

    /// Serves until `shutdown` completes, then drains connections.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sessions = self.state.sessions.clone();
        let purge = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                match sessions.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
                }
            }
        });
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        purge.abort();
        result
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
