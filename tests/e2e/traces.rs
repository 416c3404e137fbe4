//! OpenTelemetry traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the five
//! parts export their spans over OTLP/HTTP to an in-process receiver, and an
//! order placed through the gateway is one trace: gateway → order →
//! inventory + payment, the token exchanges and the gateway's token refresh
//! at the IdP, with the IdP's spans under the gateway's call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::happy_path::place_order;
use crate::harness::{Browser, Options, Stack, User};

/// One received span, reduced to what the test looks at.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// `POST /v1/traces`: an OTLP/HTTP receiver (protobuf), keeping every span.
async fn receive(State(spans): State<Spans>, body: Bytes) -> &'static [u8] {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut spans = spans.lock().expect("spans");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| {
                pairs(&r.attributes)
                    .into_iter()
                    .find(|(k, _)| k == "service.name")
            })
            .map(|(_, v)| v)
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: pairs(&span.attributes),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    b""
}

/// Starts the receiver on an ephemeral port; returns its base URL and the spans.
async fn collector() -> (String, Spans) {
    let spans = Spans::default();
    let router = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the collector");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, spans)
}

/// Whether the trace of the gateway's `POST /api/orders` is complete, and
/// what it lacks if not.
fn order_trace(spans: &[Received]) -> Result<(), String> {
    let root = spans
        .iter()
        .find(|s| {
            s.service == "gateway"
                && s.name == "request"
                && s.attribute("method") == Some("POST")
                && s.attribute("path") == Some("/api/orders")
        })
        .ok_or("no gateway span for POST /api/orders yet")?;
    let trace: Vec<&Received> = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    for service in ["gateway", "idp", "order", "inventory", "payment"] {
        if !trace.iter().any(|s| s.service == service) {
            return Err(format!("no {service} span in the order's trace yet"));
        }
    }
    let child_of = |parent: &Received, service: &str| {
        trace
            .iter()
            .any(|s| s.service == service && s.parent_span_id == parent.span_id)
    };
    let refresh = trace
        .iter()
        .find(|s| {
            s.service == "gateway"
                && s.name == "idp_token"
                && s.attribute("grant") == Some("refresh_token")
        })
        .ok_or("no refresh at the IdP in the order's trace yet")?;
    if !child_of(refresh, "idp") {
        return Err("the IdP's span of the refresh is not under the gateway's call yet".into());
    }
    let to_order = trace
        .iter()
        .find(|s| s.service == "gateway" && s.name == "proxy")
        .ok_or("no proxy span at the gateway yet")?;
    if !child_of(to_order, "order") {
        return Err("order's request span is not under the gateway's proxy span yet".into());
    }
    for service in ["inventory", "payment"] {
        let relayed = trace.iter().any(|relay| {
            relay.service == "order" && relay.name == "relay" && child_of(relay, service)
        });
        if !relayed {
            return Err(format!(
                "{service}'s span is not under order's relay span yet"
            ));
        }
    }
    if !trace
        .iter()
        .any(|s| s.service == "order" && s.name.starts_with("db."))
    {
        return Err("no database span at order yet".into());
    }
    Ok(())
}

#[tokio::test]
async fn an_order_is_one_trace_across_the_five_parts_including_the_refresh_at_the_idp() {
    let (endpoint, spans) = collector().await;
    let env = |part: &'static str, key: &str, value: &str| (part, key.to_owned(), value.to_owned());
    let stack = Stack::start_with(Options {
        env: vec![
            env("*", "OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            // Export every 100 ms, so the test need not wait for the default 5 s.
            env("*", "OTEL_BSP_SCHEDULE_DELAY", "100"),
            // The session's access token is refreshed on every API call.
            env("gateway", "GATEWAY_REFRESH_BEFORE_SECS", "100000"),
        ],
        ..Options::default()
    })
    .await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    place_order(&alice, "baton-mug", 1).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = spans.lock().expect("spans").clone();
        match order_trace(&seen) {
            Ok(()) => break,
            Err(missing) => assert!(
                Instant::now() < deadline,
                "{missing}; received {} spans: {:#?}",
                seen.len(),
                seen.iter()
                    .map(|s| format!("{} {} {:?}", s.service, s.name, s.attributes))
                    .collect::<Vec<_>>()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
