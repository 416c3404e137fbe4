//! Logs, metrics and traces for every Baton process.
//!
//! [`init`] installs the `tracing` subscriber (logs; `RUST_LOG`,
//! `LOG_FORMAT`), the Prometheus recorder ([`crate::metrics::install`]) and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, an OpenTelemetry layer that
//! exports every span over OTLP/HTTP (protobuf). The exporter reads the
//! standard `OTEL_*` variables itself (endpoint, headers, timeout,
//! `OTEL_BSP_*` batching, `OTEL_TRACES_SAMPLER`); the service name is the part's.
//!
//! Its HTTP client is a small adapter ([`OtlpClient`]) over the workspace's
//! reqwest rather than the exporter's own reqwest feature, which would build a
//! second, older reqwest; the adapter runs each export on the process's Tokio
//! runtime, since the batch processor exports from a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// The variable that turns trace export on.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint was configured and the
/// exporter started): then the request spans carry the W3C trace context and
/// [`TraceContext`](crate::TraceContext) follows them.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global `tracing` subscriber, the metrics recorder and, with
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, the span exporter (call it inside the Tokio
/// runtime). Safe to call more than once (later calls do nothing), which
/// tests rely on. Keep the returned value until the process ends: dropping it
/// flushes the spans not yet exported.
#[must_use = "dropping it flushes and stops the span exporter"]
pub fn init(service: &'static str) -> Telemetry {
    crate::metrics::install();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer().json().with_current_span(false).boxed()
    } else {
        fmt::layer().with_target(false).boxed()
    };
    let (traces, provider, problem) = match otlp(service) {
        Ok(Some(provider)) => {
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service))
                .boxed();
            (Some(layer), Some(provider), None)
        }
        Ok(None) => (None, None, None),
        Err(e) => (None, None, Some(e)),
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    if result.is_err() {
        return Telemetry { provider: None };
    }
    tracing::info!(service, "logging initialised");
    if let Some(e) = problem {
        tracing::warn!(error = %e, "{OTLP_ENDPOINT} is set but spans cannot be exported");
    }
    if provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!("exporting spans over OTLP/HTTP");
    }
    Telemetry { provider }
}

/// The exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and not blank).
fn otlp(service: &'static str) -> Result<Option<SdkTracerProvider>, String> {
    if std::env::var(OTLP_ENDPOINT).map_or(true, |v| v.trim().is_empty()) {
        return Ok(None);
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "not started inside the Tokio runtime".to_owned())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(OtlpClient { http, runtime })
        .build()
        .map_err(|e| e.to_string())?;
    let resource = Resource::builder().with_service_name(service).build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// Keeps the span exporter running; dropping it exports what is left.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                eprintln!("flushing spans: {e}");
            }
        }
    }
}

/// The OTLP exporter's HTTP client: the workspace's reqwest, each request run
/// on the Tokio runtime (the batch processor calls from its own thread).
#[derive(Debug)]
struct OtlpClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let http = self.http.clone();
        self.runtime
            .spawn(async move {
                let response = http.execute(request).await?;
                let mut answer = Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    *headers = response.headers().clone();
                }
                let body = response.bytes().await?;
                Ok::<_, HttpError>(answer.body(body)?)
            })
            .await?
    }
}
