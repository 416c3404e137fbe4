//! The resource servers' common layers (`platform::server`) over a real server:
//! one trace id per request, shared by its log span, its `Principal` and the
//! handler's `TraceContext`, whether or not the caller sent a `traceparent`;
//! and the HTTP metrics the same layers record, served by `platform::metrics`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use guard::{Guard, Principal, require_role};
use platform::TraceContext;
use platform::server::{Running, with_common_layers};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::helpers::issuer_and_guard;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Records the `trace_id` field of every `request` span.
#[derive(Clone, Default)]
struct RequestSpans(Arc<Mutex<Vec<String>>>);

/// The `trace_id` of a span's fields (recorded when the span is made or later).
struct TraceId(Option<String>);

impl Visit for TraceId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for RequestSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "request" {
            let mut visitor = TraceId(None);
            attrs.record(&mut visitor);
            self.0.lock().unwrap().extend(visitor.0);
        }
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if ctx.span(id).is_some_and(|s| s.name() == "request") {
            let mut visitor = TraceId(None);
            values.record(&mut visitor);
            self.0.lock().unwrap().extend(visitor.0);
        }
    }
}

impl RequestSpans {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[derive(Clone, FromRef)]
struct AppState {
    guard: Guard,
}

/// The trace ids the handler sees through each extractor.
async fn traces(caller: Principal, trace: TraceContext) -> axum::Json<Value> {
    axum::Json(json!({
        "principal": caller.trace().trace_id(),
        "extractor": trace.trace_id(),
    }))
}

/// `routes` with `guard`, under the common layers, on a real server.
async fn start(routes: Router<AppState>, guard: Guard) -> Running {
    let router = routes.layer(guard.layer()).with_state(AppState { guard });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Running::start(listener, with_common_layers(router)).unwrap()
}

// A current-thread runtime (the default): the server's tasks run on this
// thread, under the subscriber set for it.
#[tokio::test]
async fn the_log_span_the_principal_and_the_handler_share_one_trace_id() {
    let spans = RequestSpans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (issuer, guard) = issuer_and_guard().await;
    let routes = Router::new().route("/plain", get(traces)).route(
        "/guarded",
        get(traces).route_layer(require_role("customer")),
    );
    let server = start(routes, guard).await;
    let token = issuer.token().roles(&["customer"]).sign();
    let http = reqwest::Client::new();

    for path in ["/plain", "/guarded"] {
        for traceparent in [None, Some(TRACEPARENT)] {
            let mut request = http
                .get(format!("{}{path}", server.url()))
                .bearer_auth(&token);
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let seen: Value = response.json().await.unwrap();
            let principal = seen["principal"].as_str().unwrap();
            assert_eq!(principal.len(), 32, "{path}");
            assert_eq!(seen["extractor"], principal, "{path} {traceparent:?}");
            assert_eq!(spans.take(), [principal], "{path} {traceparent:?}");
            if traceparent.is_some() {
                assert_eq!(principal, "4bf92f3577b34da6a3ce929d0e0e4736");
            }
        }
    }
    server.stop().await.unwrap();
}

fn sample_line<'a>(page: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    page.lines().find(|line| {
        line.starts_with(&format!("{name}{{")) && labels.iter().all(|l| line.contains(l))
    })
}

#[tokio::test]
async fn requests_are_counted_per_route_template_method_and_status_class() {
    let exporter = platform::metrics::Exporter::new();
    let (issuer, guard) = issuer_and_guard().await;
    let routes = Router::new().route("/items/{sku}", get(traces).put(traces));
    let server = start(routes, guard).await;
    let token = issuer.token().roles(&["customer"]).sign();
    let http = reqwest::Client::new();
    for sku in ["mug", "cap"] {
        let url = format!("{}/items/{sku}", server.url());
        assert_eq!(
            http.get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let url = format!("{}/items/mug", server.url());
    assert_eq!(http.put(&url).send().await.unwrap().status(), 401);
    let url = format!("{}/nowhere/at/all", server.url());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);

    let page = exporter.render();
    let expected: [(&str, &[&str], &str); 4] = [
        (
            "http_requests_total",
            &[
                r#"route="/items/{sku}""#,
                r#"method="GET""#,
                r#"status="2xx""#,
            ],
            " 2",
        ),
        (
            "http_requests_total",
            &[
                r#"route="/items/{sku}""#,
                r#"method="PUT""#,
                r#"status="4xx""#,
            ],
            " 1",
        ),
        (
            "http_requests_total",
            &[r#"route="unmatched""#, r#"status="4xx""#],
            " 1",
        ),
        (
            "http_request_duration_seconds_bucket",
            &[r#"route="/items/{sku}""#, r#"method="GET""#, r#"le="+Inf""#],
            " 2",
        ),
    ];
    for (name, labels, value) in expected {
        let line = sample_line(&page, name, labels);
        assert!(
            line.is_some_and(|l| l.ends_with(value)),
            "{name}{labels:?}: {page}"
        );
    }
    assert!(
        !page.contains("/items/mug") && !page.contains("/nowhere"),
        "raw paths: {page}"
    );
    // The guard's own series: one token verified, then taken from the cache;
    // one request without a token.
    for (name, label) in [
        ("guard_verified_cache_misses_total", None),
        ("guard_verified_cache_hits_total", None),
        (
            "guard_token_refusals_total",
            Some(r#"reason="missing_token""#),
        ),
    ] {
        let found = match label {
            Some(label) => sample_line(&page, name, &[label]),
            None => page.lines().find(|l| l.starts_with(&format!("{name} "))),
        };
        assert!(found.is_some_and(|l| l.ends_with(" 1")), "{name}: {page}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_metrics_listener_serves_the_prometheus_text_format() {
    let pool_free = platform::metrics::Exporter::new().sample(|| {
        metrics::gauge!("a_sampled_gauge").set(42.0);
    });
    let tasks = platform::shutdown::Tasks::new();
    let addr = pool_free
        .spawn(Some("127.0.0.1:0".parse().unwrap()), &tasks)
        .await
        .unwrap()
        .expect("an address");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let page = response.text().await.unwrap();
    assert!(page.lines().any(|l| l == "a_sampled_gauge 42"), "{page}");
    let elsewhere = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(
        platform::metrics::Exporter::new()
            .spawn(None, &tasks)
            .await
            .unwrap(),
        None,
        "off: nothing listens"
    );
    tasks.stop().await;
    assert!(
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .is_err(),
        "the listener stops with the tasks"
    );
}
