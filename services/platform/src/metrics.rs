//! Prometheus metrics for every Baton process: the recorder, the HTTP layer
//! and the separate listener that serves `GET /metrics`.
//!
//! Series are recorded through the `metrics` facade (one global recorder per
//! process, [`install`]) and rendered by `metrics-exporter-prometheus`; this
//! module adds what those crates leave to the application:
//!
//! * [`track`] — the HTTP layer: `http_requests_total` and
//!   `http_request_duration_seconds` per matched route template (never the raw
//!   path: `/items/{sku}`, `unmatched` when no route matched), method and
//!   status class. The handles of each (route, method, class) are looked up
//!   once and kept, so a request costs two atomic updates and no allocation.
//! * [`Exporter`] — `GET /metrics` on its own listener (`<PART>_METRICS_BIND`,
//!   [`parse_bind`]), sampling at scrape time what is a state rather than an
//!   event: database pool use, and whatever a part adds with
//!   [`Exporter::sample`] (guard: the revocation stream's lag; the gateway:
//!   its circuit breakers).
//!
//! The series guard records (token refusals per reason, JWKS fetches, the
//! verified-token cache, the revocation stream) are guard's
//! (`guard::monitoring`), listed in the README's "Operating Baton".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::ConfigError;
use crate::shutdown::Tasks;

/// Latency buckets (seconds) of every `*_seconds` histogram: from a cached
/// validation (well under a millisecond) to a request that hits a timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (the first call; later
/// calls return the same handle) and describes the shared series. Call it
/// before anything records — [`crate::telemetry::init`] does. If another
/// recorder was installed first, the handle renders an empty page.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
                // Histogram samples wait in a buffer until upkeep folds them
                // in: do it every few seconds, scraped or not, so the buffer
                // stays small (it would grow without bound otherwise).
                let upkeep = handle.clone();
                let started = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = started {
                    tracing::warn!(error = %e, "no metrics upkeep thread: histograms are folded in at each scrape only");
                }
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, per route template, method and status class"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, per route template, method and status class"
    );
    describe_gauge!(
        "db_pool_connections",
        "Database connections of the pool, per state (idle, in_use)"
    );
    describe_gauge!("db_pool_max_connections", "The pool's maximum size");
}

/// The HTTP methods given their own label value; any other is `OTHER`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The handles of one route template, per method and status class, made on first use.
#[derive(Default)]
struct RouteSeries([[OnceLock<(Counter, Histogram)>; CLASSES.len()]; METHODS.len()]);

/// Route template → its series. Templates come from the code (or `unmatched`),
/// so this map is as small as the route table.
static ROUTES: LazyLock<RwLock<HashMap<Box<str>, Arc<RouteSeries>>>> =
    LazyLock::new(Default::default);

fn route_series(route: &str) -> Arc<RouteSeries> {
    if let Some(series) = ROUTES.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return series.clone();
    }
    ROUTES
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route.into())
        .or_default()
        .clone()
}

fn method_index(method: &http::Method) -> usize {
    METHODS[..7]
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(7)
}

/// The HTTP metrics layer: `axum::middleware::from_fn(platform::metrics::track)`
/// as a `Router::layer` (so that the matched route is known).
pub async fn track(route: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let method = method_index(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let series = route_series(route);
    let (requests, latency) = series.0[method][class].get_or_init(|| {
        let labels = [
            ("route", route.to_owned()),
            ("method", METHODS[method].to_owned()),
            ("status", CLASSES[class].to_owned()),
        ];
        (
            counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        )
    });
    requests.increment(1);
    latency.record(started.elapsed().as_secs_f64());
    response
}

/// `<var>` (`<PART>_METRICS_BIND`, `None`: unset): where `GET /metrics`
/// listens. Unset: `127.0.0.1` on the service's own port + 1000 (port 0 stays
/// 0: an ephemeral port), so the metrics are never on the public listener and
/// reach no other host unless configured; `off` disables them.
pub fn parse_bind(
    name: &'static str,
    value: Option<&str>,
    service: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    match value.unwrap_or_default().trim() {
        "off" => Ok(None),
        "" => {
            let port = match service.port() {
                0 => Some(0),
                p => p.checked_add(1000),
            };
            port.map(|p| Some(SocketAddr::from(([127, 0, 0, 1], p))))
                .ok_or_else(|| ConfigError {
                    var: name,
                    reason: format!(
                        "no default: the service's port {} + 1000 is not a port; set it or `off`",
                        service.port()
                    ),
                })
        }
        text => text.parse().map(Some).map_err(|e| ConfigError {
            var: name,
            reason: format!("{e} (an address like 0.0.0.0:10000, or `off`)"),
        }),
    }
}

type Sampler = Box<dyn Fn() + Send + Sync>;

/// `GET /metrics`, with the states sampled when it is scraped.
pub struct Exporter {
    handle: PrometheusHandle,
    samplers: Vec<Sampler>,
}

impl Default for Exporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Exporter {
    /// Over the process-wide recorder ([`install`]).
    pub fn new() -> Self {
        Self {
            handle: install(),
            samplers: Vec::new(),
        }
    }

    /// Samples `f` before every scrape (to set gauges from a state).
    pub fn sample(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.samplers.push(Box::new(f));
        self
    }

    /// `db_pool_connections{state="idle"|"in_use"}` and `db_pool_max_connections`.
    pub fn pool(self, pool: &PgPool) -> Self {
        let pool = pool.clone();
        self.sample(move || {
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(size);
            gauge!("db_pool_connections", "state" => "idle").set(idle);
            gauge!("db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle));
            gauge!("db_pool_max_connections").set(pool.options().get_max_connections());
        })
    }

    /// The Prometheus text exposition of every series, sampled now.
    pub fn render(&self) -> String {
        for sample in &self.samplers {
            sample();
        }
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// A router answering `GET /metrics`.
    pub fn router(self) -> Router {
        let exporter = Arc::new(self);
        Router::new().route(
            "/metrics",
            get(move || {
                let exporter = exporter.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        exporter.render(),
                    )
                }
            }),
        )
    }

    /// Serves `GET /metrics` on `bind` among the part's background `tasks`
    /// (nothing when `None`); returns the address bound.
    pub async fn spawn(
        self,
        bind: Option<SocketAddr>,
        tasks: &Tasks,
    ) -> std::io::Result<Option<SocketAddr>> {
        let Some(bind) = bind else {
            tracing::info!("metrics disabled");
            return Ok(None);
        };
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "metrics listening (GET /metrics)");
        let router = self.router();
        tasks.spawn("metrics listener", async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "the metrics listener stopped");
            }
        });
        Ok(Some(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_loopback_on_the_port_plus_1000() {
        const VAR: &str = "X_METRICS_BIND";
        let service = SocketAddr::from(([0, 0, 0, 0], 8081));
        let loopback = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(parse_bind(VAR, None, service).unwrap(), loopback(9081));
        assert_eq!(parse_bind(VAR, Some(" "), service).unwrap(), loopback(9081));
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
        assert_eq!(parse_bind(VAR, None, ephemeral).unwrap(), loopback(0));
        let high = SocketAddr::from(([127, 0, 0, 1], 65000));
        assert_eq!(parse_bind(VAR, None, high).unwrap_err().var, VAR);
    }

    #[test]
    fn an_explicit_address_or_off_is_taken_and_garbage_refused() {
        const VAR: &str = "X_METRICS_BIND";
        let service = SocketAddr::from(([127, 0, 0, 1], 8081));
        assert_eq!(
            parse_bind(VAR, Some("0.0.0.0:10000"), service).unwrap(),
            Some(SocketAddr::from(([0, 0, 0, 0], 10000)))
        );
        assert_eq!(parse_bind(VAR, Some("off"), service).unwrap(), None);
        assert_eq!(
            parse_bind(VAR, Some("localhost"), service).unwrap_err().var,
            VAR
        );
    }

    #[test]
    fn methods_outside_the_list_share_one_label() {
        assert_eq!(METHODS[method_index(&http::Method::PUT)], "PUT");
        let custom = http::Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(METHODS[method_index(&custom)], "OTHER");
    }
}
