//! The reverse proxy: forwards a request to the route's upstream with the
//! relayed token, streaming both bodies, and returns the upstream's answer.
//!
//! Header hygiene, both ways:
//! * hop-by-hop headers (RFC 9110 §7.6.1, plus those named in `Connection`) are dropped;
//! * the browser's `Cookie` never leaves the gateway, nor does its `Authorization`
//!   (replaced by the token the gateway validated);
//! * identity headers a client might forge (`X-User-Id`, `X-Forwarded-User`,
//!   `X-Auth-*`, …) are dropped: services never trust them anyway, and neither
//!   should anything behind them;
//! * `X-Forwarded-*`/`Forwarded` are rewritten from what the gateway saw, not passed on;
//! * `traceparent` is continued (or started) so the relay shows up as one trace;
//! * upstream `Set-Cookie` is dropped: only the gateway sets cookies on its origin;
//! * an answer without `Cache-Control` gets `no-store` (it is about a signed-in caller).

use std::net::IpAddr;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use platform::trace::TraceContext;
use tracing::Instrument;

use crate::circuit::Permit;
use crate::routes::{Fallback, Route};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway never forwards: credentials it replaces (a
/// DPoP proof is made for the gateway alone), and addressing it rewrites.
const REPLACED: [&str; 10] = [
    "host",
    "cookie",
    "authorization",
    "dpop",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "traceparent",
];

/// Prefixes of identity headers that upstream software might trust.
const IDENTITY_PREFIXES: [&str; 12] = [
    "x-user",
    "x-auth",
    "x-remote-",
    "remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-principal",
    "x-id-token",
    "x-baton-",
];

/// How long connecting to an upstream may take before it counts as down
/// (a route's own, shorter timeout still applies).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the upstream gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {route} is unreachable")]
    Unreachable { route: String },
    #[error("upstream {route} did not answer within {}ms", timeout.as_millis())]
    Timeout { route: String, timeout: Duration },
    /// Every instance's circuit is open (recent failures): failing fast.
    #[error("upstream {route} is failing; its circuit is open")]
    CircuitOpen {
        route: String,
        retry_after: Duration,
    },
}

/// Marks an answer given by a route's fallback (the value names the route that answered).
pub const FALLBACK_HEADER: &str = "x-baton-fallback";

/// The HTTP client for upstream calls.
#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
}

/// What the gateway adds to a relayed request.
pub struct Forwarding<'a> {
    /// The access token to relay (validated by the caller of `forward`).
    pub token: &'a str,
    pub trace: &'a TraceContext,
    /// For `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// `http` or `https`, as the browser used it.
    pub proto: &'a str,
    /// The public host (and port) the browser used.
    pub host: &'a str,
}

impl Proxy {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // Relay upstream redirects to the caller as they are.
            .redirect(reqwest::redirect::Policy::none())
            // Upstreams are addressed directly, never through HTTP(S)_PROXY.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            // An address that does not answer at all (no refusal) counts as down.
            .connect_timeout(CONNECT_TIMEOUT)
            // A body that stalls this long mid-stream is cut.
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client })
    }

    /// Forwards the request to `route`; `rest` is the path after the route prefix.
    /// Bounded by the route's timeout up to the upstream's response head; the
    /// body then streams through.
    ///
    /// Instances are taken round robin, skipping those whose circuit is open;
    /// a bodiless idempotent request whose connection fails is retried once on
    /// each other instance. When every circuit is open the route's fallback
    /// answers (`fallback_route` is the route named by a `route` fallback),
    /// else [`UpstreamError::CircuitOpen`].
    pub async fn forward(
        &self,
        route: &Route,
        fallback_route: Option<&Route>,
        rest: &str,
        request: Request<Body>,
        forwarding: &Forwarding<'_>,
    ) -> Result<Response, UpstreamError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        strip_request_headers(&mut headers);
        if let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", forwarding.token)) {
            bearer.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, bearer);
        }
        // The call's span, named in the traceparent: the upstream's parent.
        let span = tracing::info_span!("proxy", route = %route.name);
        let trace = span.in_scope(|| forwarding.trace.child());
        headers.insert("traceparent", trace.header_value());
        if let Ok(ip) = HeaderValue::from_str(&forwarding.client_ip.to_string()) {
            headers.insert("x-forwarded-for", ip);
        }
        if let Ok(proto) = HeaderValue::from_str(forwarding.proto) {
            headers.insert("x-forwarded-proto", proto);
        }
        if let Ok(host) = HeaderValue::from_str(forwarding.host) {
            headers.insert("x-forwarded-host", host);
        }
        // A bodiless request stays bodiless (no chunked GET upstream), and
        // only a bodiless idempotent one can be sent again.
        let bodiless = body.size_hint().exact() == Some(0);
        let retry = bodiless && is_idempotent(&parts.method);
        let mut call = Call {
            method: parts.method,
            query: parts.uri.query(),
            rest,
            headers,
            body: (!bodiless).then_some(body),
            retry,
        };
        match self.send(route, &mut call).instrument(span).await {
            Err(UpstreamError::CircuitOpen { .. }) if route.fallback.is_some() => {
                match (&route.fallback, fallback_route) {
                    (Some(Fallback::Json(value)), _) => Ok(fallback_json(&route.name, value)),
                    (Some(Fallback::Route(_)), Some(other)) => {
                        let mut response = self.send(other, &mut call).await?;
                        mark_fallback(&mut response, &other.name);
                        Ok(response)
                    }
                    _ => Err(UpstreamError::CircuitOpen {
                        route: route.name.clone(),
                        retry_after: Duration::from_secs(1),
                    }),
                }
            }
            other => other,
        }
    }

    /// One call to one of `route`'s instances (several when a connection fails and
    /// the call may be repeated), each outcome reported to the instance's breaker.
    async fn send(&self, route: &Route, call: &mut Call<'_>) -> Result<Response, UpstreamError> {
        let mut tried = Vec::with_capacity(1);
        let mut last_error = None;
        loop {
            let (i, permit) = match route.acquire(&tried) {
                Ok(picked) => picked,
                Err(wait) => {
                    return Err(last_error.unwrap_or(UpstreamError::CircuitOpen {
                        route: route.name.clone(),
                        retry_after: wait,
                    }));
                }
            };
            tried.push(i);
            let url = route.upstream_url(i, call.rest, call.query);
            let mut request = self
                .client
                .request(call.method.clone(), url)
                .headers(call.headers.clone());
            if let Some(body) = call.body.take() {
                request = request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
            }
            let e = match tokio::time::timeout(route.timeout, request.send()).await {
                Ok(Ok(upstream)) => {
                    // Any answer, 5xx included, shows the instance is up: in
                    // Baton a service's 5xx reports a dependency further down
                    // (order's 503 while payment is down), and opening order's
                    // circuit for it would also cut off what order can serve.
                    if permit.success() {
                        tracing::info!(route = %route.name, instance = i, "circuit closed");
                    }
                    return Ok(relayed(upstream));
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    tracing::warn!(route = %route.name, instance = i, timeout_ms = route.timeout.as_millis() as u64, "upstream timed out");
                    report_failure(route, i, permit);
                    return Err(UpstreamError::Timeout {
                        route: route.name.clone(),
                        timeout: route.timeout,
                    });
                }
            };
            tracing::warn!(route = %route.name, instance = i, error = %e, "upstream request failed");
            report_failure(route, i, permit);
            // A connection that could not be made (refused, or no answer
            // within CONNECT_TIMEOUT) is a down upstream: 502. A timeout
            // after connecting is a slow one: 504.
            if e.is_timeout() && !e.is_connect() {
                return Err(UpstreamError::Timeout {
                    route: route.name.clone(),
                    timeout: route.timeout,
                });
            }
            let error = UpstreamError::Unreachable {
                route: route.name.clone(),
            };
            if !(call.retry && e.is_connect()) {
                return Err(error);
            }
            last_error = Some(error);
        }
    }
}

/// Counts a failed call against instance `i` of `route`, and says so when
/// that opens its circuit.
fn report_failure(route: &Route, i: usize, permit: Permit<'_>) {
    if permit.failure() {
        let cooldown = route.instances()[i].breaker.cooldown();
        tracing::warn!(route = %route.name, instance = i, cooldown_ms = cooldown.as_millis() as u64, "circuit opened");
    }
}

/// A request on its way to a route's instances.
struct Call<'a> {
    method: Method,
    query: Option<&'a str>,
    rest: &'a str,
    headers: HeaderMap,
    body: Option<Body>,
    /// Whether it may be sent to another instance when a connection fails.
    retry: bool,
}

/// RFC 9110 §9.2.2: repeating it has the same effect as sending it once.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The upstream's answer as the gateway relays it.
fn relayed(upstream: reqwest::Response) -> Response {
    let mut response = Response::builder().status(upstream.status());
    if let Some(h) = response.headers_mut() {
        *h = upstream.headers().clone();
        strip_response_headers(h);
        // Answers about a signed-in person must not land in shared caches
        // unless the service says otherwise.
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
    // Status and headers come from a parsed response: building cannot fail.
    response
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The static answer of a route whose circuits are all open.
fn fallback_json(route: &str, value: &serde_json::Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    mark_fallback(&mut response, route);
    response
}

/// `x-baton-fallback: <route>`: this answer is a fallback, from that route.
fn mark_fallback(response: &mut Response, route: &str) {
    if let Ok(value) = HeaderValue::from_str(route) {
        response.headers_mut().insert(FALLBACK_HEADER, value);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Cleans a request's headers before they go upstream.
pub fn strip_request_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    for name in REPLACED {
        headers.remove(name);
    }
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| IDENTITY_PREFIXES.iter().any(|p| k.as_str().starts_with(p)))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Cleans an upstream response's headers before they go to the caller.
pub fn strip_response_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::SET_COOKIE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_lose_cookies_credentials_hop_by_hop_and_identity_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("cookie", "baton_session=secret"),
            ("authorization", "Bearer forged"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("te", "trailers"),
            ("x-user-id", "admin"),
            ("x-forwarded-user", "bob"),
            ("x-auth-request-email", "bob@example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-baton-gateway", "forged"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("idempotency-key", "k1"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        strip_request_headers(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-type", "idempotency-key"]);
    }

    #[test]
    fn responses_lose_set_cookie_and_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("set-cookie", "baton_session=evil"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("www-authenticate", "Bearer error=\"invalid_token\""),
        ] {
            h.append(k, v.parse().unwrap());
        }
        strip_response_headers(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "www-authenticate"]);
    }
}
