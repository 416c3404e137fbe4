//! Serving a Baton part over HTTP: the listener (inherited from a launcher
//! or bound), the middleware stack every part wraps its routes in, graceful
//! shutdown, and a handle to run a server in the background (tests start
//! real servers this way).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::metrics;
use crate::shutdown::Tasks;
use crate::trace::{self, TraceContext};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Largest request body a resource server reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Headers never printed by the request span or a debug log.
const SENSITIVE: [HeaderName; 3] = [header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE];

type PanicAnswer = Arc<dyn Fn() -> Response + Send + Sync>;

/// The one middleware stack every Baton part wraps its routes in; each part
/// chooses what it needs and may add its own layers around it (the gateway's
/// security headers and CORS, the IdP's HSTS). From the inside out: a panic
/// answered rather than a dropped connection, a body limit, a timeout, the
/// `x-request-id` copied to the answer, [`observe`] (request span, trace
/// context, metrics), a request id made when the caller sent none, and the
/// credentials headers marked sensitive (never printed).
#[derive(Clone, Default)]
pub struct Stack {
    panic_answer: Option<PanicAnswer>,
    body_limit: Option<usize>,
    timeout: Option<Duration>,
    request_id: bool,
}

impl Stack {
    /// A panic answers tower-http's default 500; nothing else but [`observe`]
    /// and the sensitive headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A panic answers `answer()` (the IdP's OAuth `server_error`).
    pub fn panic_answer(mut self, answer: impl Fn() -> Response + Send + Sync + 'static) -> Self {
        self.panic_answer = Some(Arc::new(answer));
        self
    }

    /// Bodies over `bytes` answer 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// Requests not answered within `after` answer 503.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.timeout = Some(after);
        self
    }

    /// Every request gets an `x-request-id` (the caller's, or a new UUID),
    /// returned in the answer.
    pub fn request_id(mut self) -> Self {
        self.request_id = true;
        self
    }

    /// `router` wrapped in the stack.
    pub fn wrap(self, router: Router) -> Router {
        let mut router = match self.panic_answer {
            Some(answer) => router.layer(CatchPanicLayer::custom(
                move |_: Box<dyn std::any::Any + Send>| answer(),
            )),
            None => router.layer(CatchPanicLayer::new()),
        };
        if let Some(bytes) = self.body_limit {
            router = router.layer(RequestBodyLimitLayer::new(bytes));
        }
        if let Some(after) = self.timeout {
            router = router.layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                after,
            ));
        }
        if self.request_id {
            router = router.layer(PropagateRequestIdLayer::new(REQUEST_ID));
        }
        router = observe(router);
        if self.request_id {
            router = router.layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
        }
        router.layer(SetSensitiveHeadersLayer::new(SENSITIVE))
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The [`Stack`] of a resource server: a body limit of [`MAX_BODY_BYTES`].
pub fn with_common_layers(router: Router) -> Router {
    Stack::new().body_limit(MAX_BODY_BYTES).wrap(router)
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

/// The file descriptor of the first socket a launcher passes
/// (`SD_LISTEN_FDS_START` of systemd's socket activation).
const LISTEN_FDS_START: RawFd = 3;

/// Whether this process has taken its inherited listener already.
static INHERITED_TAKEN: AtomicBool = AtomicBool::new(false);

/// The listener a part serves on: the socket its launcher passed
/// (`LISTEN_FDS=1`, the socket at descriptor 3, and `LISTEN_PID` this
/// process's id when set: systemd's socket activation, the `listenfd`
/// convention; the test and bench launcher `launch` passes sockets so), else
/// `bind` bound now. A launcher that binds first knows the port before the
/// part starts (an issuer or public URL can name it) and no other process
/// can take the port in between. Taken once per process: a second call binds.
pub async fn listener(bind: SocketAddr) -> io::Result<TcpListener> {
    if let Some(inherited) = inherited()? {
        tracing::info!(addr = %inherited.local_addr()?, "listening on the socket passed by the launcher");
        return Ok(inherited);
    }
    TcpListener::bind(bind)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {bind}: {e}")))
}

/// The socket passed by the launcher, if this process was given one.
fn inherited() -> io::Result<Option<TcpListener>> {
    let Ok(count) = std::env::var("LISTEN_FDS") else {
        return Ok(None);
    };
    if let Ok(pid) = std::env::var("LISTEN_PID")
        && pid.trim() != std::process::id().to_string()
    {
        // Meant for another process (our parent's socket activation).
        return Ok(None);
    }
    if count.trim() != "1" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count}: a Baton part takes exactly one listening socket"),
        ));
    }
    if INHERITED_TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    let not_a_listener = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "LISTEN_FDS=1 but descriptor {LISTEN_FDS_START} is not a listening TCP socket: {e}"
            ),
        )
    };
    // SAFETY: under LISTEN_FDS=1 the launcher passed this process descriptor 3
    // for it to own; it is taken once (INHERITED_TAKEN) and nothing else in a
    // part uses it by number. When it is not a socket (a launcher that set
    // LISTEN_FDS and passed nothing) it is given back unclosed: it belongs to
    // whatever opened it.
    let socket = unsafe { std::net::TcpListener::from_raw_fd(LISTEN_FDS_START) };
    if let Err(e) = socket.local_addr() {
        let _ = socket.into_raw_fd();
        return Err(not_a_listener(e));
    }
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket)
        .map(Some)
        .map_err(not_a_listener)
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
    /// Listens on `addr` (or the launcher's socket, see [`listener`]) for
    /// `router`; `tasks` and `pool` stop with the server.
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
        tasks: Tasks,
        pool: PgPool,
    ) -> io::Result<Self> {
        let listener = listener(addr).await?;
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
