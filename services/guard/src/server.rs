//! Serving a resource server: its common routes and layers, graceful shutdown,
//! and a handle to run one in the background (tests start real servers this way).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use crate::health::Readiness;
use crate::metrics;
use crate::shutdown::Tasks;
use crate::trace::{self, TraceContext};
use crate::{AuthError, Guard};
use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::extract::rejection::QueryRejection;
use axum::http::header;
use axum::response::IntoResponse;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Largest request body a resource server reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Adds the layers every resource server has, outermost first: `Authorization`
/// and `Cookie` marked sensitive (never printed), then [`observe`] (request
/// span, trace context, metrics), a body size limit, and a panic turned into
/// a 500 rather than a dropped connection.
pub fn with_common_layers(router: Router) -> Router {
    observe(
        router
            .layer(CatchPanicLayer::new())
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
    )
    .layer(SetSensitiveRequestHeadersLayer::new([
        header::AUTHORIZATION,
        header::COOKIE,
    ]))
}

/// What every Baton part wraps its routes in to be observable, outermost
/// first: an `INFO` span per request ([`request_span`]: method, path, trace
/// id; the exported span's parent is the caller's `traceparent`) closed by a
/// log line with status and latency; inside it the request's [`TraceContext`]
/// ([`trace::attach`]), so the span, the [`Principal`](crate::Principal),
/// audit rows and relayed calls share one trace id, also when the caller sent
/// no `traceparent`; and the HTTP metrics per route ([`metrics::track`]).
pub fn observe(router: Router) -> Router {
    router
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(MapRequestLayer::new(trace::attach::<Body>))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span::<Body>)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// The span of one request; its `trace_id` is recorded by [`trace::attach`].
/// The query string is left out: it is not needed to follow a request, and
/// whatever a client put there (codes, states, hints) stays out of the logs.
pub fn request_span<B>(request: &http::Request<B>) -> Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        trace_id = tracing::field::Empty,
    );
    if crate::telemetry::exporting() {
        let remote = request
            .headers()
            .get(trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        if let Some(remote) = remote {
            let _ = span.set_parent(remote.otel_context());
        }
    }
    span
}

/// A resource server's whole HTTP interface: its `api` routes, `GET /audit`
/// (role `admin`; failures answered as `E`), `GET /healthz` and `GET /readyz`,
/// all under [`with_common_layers`].
pub fn resource_server<S, E>(api: Router<S>, state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Guard: FromRef<S>,
    E: From<AuthError> + From<QueryRejection> + From<sqlx::Error> + IntoResponse + 'static,
{
    let health = health_routes(&PgPool::from_ref(&state), &Guard::from_ref(&state));
    let api = api.merge(crate::audit::router::<S, E>()).with_state(state);
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
/// database pool and its revocation stream ([`metrics::Exporter`]).
pub async fn start_resource_server(
    config: crate::GuardConfig,
    metrics_bind: Option<SocketAddr>,
    pool: &PgPool,
) -> Result<(Guard, Tasks), StartError> {
    let guard = Guard::try_new(config)?;
    let tasks = Tasks::new();
    metrics::Exporter::new()
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
    Config(#[from] crate::ConfigError),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error("guard: {0}")]
    Guard(#[from] crate::BuildError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("metrics listener: {0}")]
    Metrics(io::Error),
    #[error(transparent)]
    Listen(#[from] io::Error),
}

/// A part ready to serve: its bound listener, its whole router, its
/// background [`Tasks`] and its database pool. What every part's
/// `startup::Application` runs.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    tasks: Tasks,
    pool: PgPool,
}

impl Server {
    /// Binds `addr` for `router`; `tasks` and `pool` stop with the server.
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
        tasks: Tasks,
        pool: PgPool,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener,
            router,
            tasks,
            pool,
        })
    }

    /// The address the listener is bound to (the port picked when `addr` named port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, lets the requests in flight
    /// finish, stops the background tasks and closes the pool (so that
    /// PostgreSQL sees the connections close).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let pool = self.pool.clone();
        let served = self.serve_until(shutdown).await;
        pool.close().await;
        served
    }

    /// Runs in a background task until [`Running::stop`] (tests start parts
    /// this way); the pool stays open, for the test to read what was written.
    pub fn spawn(self) -> Running {
        Running::spawn(self.addr, |stopped| self.serve_until(stopped))
    }

    /// Serves until `shutdown`, then stops the background tasks.
    async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let served = serve(self.listener, self.router, shutdown).await;
        self.tasks.stop().await;
        served
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes when a [`Running`] server is told to stop.
type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server running in the background.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Starts serving `router` on `listener` in a background task.
    pub fn start(listener: TcpListener, router: Router) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        Ok(Self::spawn(addr, |stopped| {
            serve(listener, router, stopped)
        }))
    }

    /// Spawns `run(stopped)`, a server on `addr` that stops when `stopped` completes.
    fn spawn<F>(addr: SocketAddr, run: impl FnOnce(StopSignal) -> F) -> Self
    where
        F: Future<Output = io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        Self { addr, stop, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(self) -> io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(io::Error::other)?
    }
}
