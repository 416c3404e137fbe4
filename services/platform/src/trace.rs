//! W3C Trace Context (`traceparent`) carried from hop to hop.
//!
//! Each incoming request gets a [`TraceContext`]: the caller's `traceparent`
//! when it sent a valid one, otherwise a fresh trace. Outbound relay calls keep
//! the trace id and name a new parent (span) id, so one trace id follows a
//! request through gateway → order → inventory/payment.
//!
//! This is the one trace mechanism of Baton. When spans are exported
//! ([`crate::telemetry`], `OTEL_EXPORTER_OTLP_ENDPOINT`), the request span
//! ([`crate::server::request_span`]) takes the incoming `traceparent` as its
//! OpenTelemetry parent, the request's [`TraceContext`] is then that span's
//! (so logs, audit rows and exported spans share the trace id), and an
//! outbound call's context ([`TraceContext::child`], [`TraceContext::current`])
//! names the span that makes the call, so the next service's spans hang under it.

use std::convert::Infallible;
use std::fmt;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id, the current span id and the flags of a W3C `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceContext {
    /// A new trace (random trace and span ids, sampled flag set).
    pub fn new() -> Self {
        let mut ids = [0u8; 24];
        fill_random(&mut ids);
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        trace_id.copy_from_slice(&ids[..16]);
        span_id.copy_from_slice(&ids[16..]);
        Self {
            trace_id,
            span_id,
            flags: 0x01,
        }
    }

    /// The context from the request's `traceparent`, or a new trace when it is
    /// absent or invalid.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`); rejects
    /// all-zero ids and version `ff`, accepts later versions' first four fields.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let version = hex_array::<1>(version)?[0];
        if version == 0xff || (version == 0 && (parts.next().is_some() || value.len() != 55)) {
            return None;
        }
        let trace_id = hex_array::<16>(trace)?;
        let span_id = hex_array::<8>(span)?;
        let flags = hex_array::<1>(flags)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The context of an outbound call in this trace: the current span's when
    /// spans are exported (and it belongs to this trace), else this trace with
    /// a new span id.
    pub fn child(&self) -> Self {
        if let Some(current) = Self::current().filter(|c| c.trace_id == self.trace_id) {
            return current;
        }
        let mut span_id = [0u8; 8];
        fill_random(&mut span_id);
        Self { span_id, ..*self }
    }

    /// The current span's context, when spans are exported: what an outbound
    /// call that has no request context at hand (a token exchange, a refresh
    /// at the IdP) sends as `traceparent`.
    pub fn current() -> Option<Self> {
        if !crate::telemetry::exporting() {
            return None;
        }
        Self::of_span(&tracing::Span::current())
    }

    /// The OpenTelemetry context of `span`, if it has a valid one.
    fn of_span(span: &tracing::Span) -> Option<Self> {
        let context = span.context();
        let otel = context.span();
        let otel = otel.span_context();
        otel.is_valid().then(|| Self {
            trace_id: otel.trace_id().to_bytes(),
            span_id: otel.span_id().to_bytes(),
            flags: otel.trace_flags().to_u8(),
        })
    }

    /// This context as the remote parent of a span.
    pub fn otel_context(&self) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        ))
    }

    /// The trace id as 32 lowercase hex digits (for logs and audit rows).
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` header value.
    pub fn header_value(&self) -> HeaderValue {
        // Only hex digits and dashes: always a valid header value.
        HeaderValue::from_str(&self.to_string()).expect("hex is a valid header value")
    }
}

impl Default for TraceContext {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

/// The request's trace context: the one in its extensions, else its
/// `traceparent` (or a new trace), which is then put in its extensions so that
/// everything else that asks about this request gets the same one.
impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(of_request(&mut parts.extensions, &parts.headers))
    }
}

/// Gives a request its [`TraceContext`] in its extensions (unless it has one)
/// and records its trace id in the request span: the exported request span's
/// context, else its `traceparent`, or a new trace. Run inside the request
/// span (as [`server::observe`](crate::server::observe) does), it makes the
/// request's log span, its [`Principal`](crate::Principal), its audit rows and
/// its relayed calls share one trace id, also when the caller sent no `traceparent`.
pub fn attach<B>(request: http::Request<B>) -> http::Request<B> {
    let (mut parts, body) = request.into_parts();
    let trace = of_request(&mut parts.extensions, &parts.headers);
    tracing::Span::current().record("trace_id", tracing::field::display(trace.trace_id_hex()));
    http::Request::from_parts(parts, body)
}

/// The trace context in `extensions`, or else the current span's (when
/// exported) or the one `headers` give, stored there.
pub fn of_request(extensions: &mut Extensions, headers: &HeaderMap) -> TraceContext {
    if let Some(trace) = extensions.get::<TraceContext>() {
        return *trace;
    }
    let trace = TraceContext::current().unwrap_or_else(|| TraceContext::from_headers(headers));
    extensions.insert(trace);
    trace
}

/// The trace id in hex, formatted without allocating.
struct TraceIdHex([u8; 16]);

impl fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl TraceContext {
    fn trace_id_hex(&self) -> TraceIdHex {
        TraceIdHex(self.trace_id)
    }
}

/// Random bytes for ids, from a per-thread buffer filled 512 bytes at a time:
/// each call into aws-lc's DRBG costs a key schedule and RDRAND, which per id
/// was a tenth of the CPU time of a request validated from the cache.
fn fill_random(bytes: &mut [u8]) {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 512], usize)> =
            const { std::cell::RefCell::new(([0; 512], 512)) };
    }
    POOL.with_borrow_mut(|(pool, used)| {
        for b in bytes.iter_mut() {
            if *used == pool.len() {
                fill_random_now(pool);
                *used = 0;
            }
            *b = pool[*used];
            *used += 1;
        }
    });
}

fn fill_random_now(bytes: &mut [u8]) {
    // aws-lc's DRBG cannot fail once initialised; should it ever, ids stay
    // unique enough for tracing from the clock, and nothing secret depends on them.
    if aws_lc_rs::rand::fill(bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 | 1;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None, // W3C: lowercase only
    };
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let trace = TraceContext::parse(VALID).unwrap();
        assert_eq!(trace.to_string(), VALID);
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.span_id(), "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
        // A later version may append fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let parent = TraceContext::parse(VALID).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_ne!(
            TraceContext::new().trace_id(),
            TraceContext::new().trace_id()
        );
    }
}
