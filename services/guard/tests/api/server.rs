//! The resource servers' common layers (`guard::server`) over a real server:
//! one trace id per request, shared by its log span, its `Principal` and the
//! handler's `TraceContext`, whether or not the caller sent a `traceparent`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use guard::server::{Running, with_common_layers};
use guard::{Guard, Principal, TraceContext, require_role};
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

impl<S: tracing::Subscriber> Layer<S> for RequestSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        struct TraceId(Option<String>);
        impl Visit for TraceId {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "trace_id" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        if attrs.metadata().name() == "request" {
            let mut visitor = TraceId(None);
            attrs.record(&mut visitor);
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

// A current-thread runtime (the default): the server's tasks run on this
// thread, under the subscriber set for it.
#[tokio::test]
async fn the_log_span_the_principal_and_the_handler_share_one_trace_id() {
    let spans = RequestSpans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (issuer, guard) = issuer_and_guard().await;
    let router = Router::new()
        .route("/plain", get(traces))
        .route(
            "/guarded",
            get(traces).route_layer(require_role("customer")),
        )
        .layer(guard.layer())
        .with_state(AppState { guard });
    let server = Running::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        with_common_layers(router),
    )
    .unwrap();
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
