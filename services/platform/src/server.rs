//! Serving a Baton part over HTTP: the middleware stack every part wraps its
//! routes in, graceful shutdown, and a handle to run a server in the
//! background (tests start real servers this way).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use crate::metrics;
use crate::trace::{self, TraceContext};
use axum::Router;
use axum::body::Body;
use axum::http::header;
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
/// ([`trace::attach`]), so the span, the caller's identity (guard's `Principal`),
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
