//! Serving a resource server: its common routes and layers, graceful shutdown,
//! and a handle to run one in the background (tests start real servers this way).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use crate::health::Readiness;
use crate::trace::{self, TraceContext};
use crate::{AuthError, Guard};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Request};
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

/// Largest request body a resource server reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Adds the layers every resource server has, outermost first: `Authorization`
/// and `Cookie` marked sensitive (never printed), the request's
/// [`TraceContext`] put in its extensions ([`trace::attach`]: its `traceparent`
/// or a new trace), an `INFO` span per request (method, path, that trace id)
/// closed by a log line with status and latency, a body size limit, and a panic
/// turned into a 500 rather than a dropped connection. The span, the
/// [`Principal`](crate::Principal), audit rows and relayed calls therefore
/// share one trace id, also when the caller sent no `traceparent`.
pub fn with_common_layers(router: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    router
        .layer(CatchPanicLayer::new())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(trace)
        .layer(MapRequestLayer::new(trace::attach::<Body>))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// The span of one request. The query string is left out: it is not needed
/// to follow a request, and whatever a client put there stays out of the logs.
fn request_span(request: &Request) -> Span {
    let trace_id = request
        .extensions()
        .get::<TraceContext>()
        .map(TraceContext::trace_id);
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        trace_id = trace_id.as_deref().unwrap_or("-"),
    )
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
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
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
