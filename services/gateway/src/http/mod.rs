//! HTTP handlers, one module per resource.

pub mod api;
pub mod auth;
pub mod backchannel;
pub mod circuits;
pub mod dashboard;
pub mod health;
pub mod page;

use ::http::HeaderMap;
use ::http::request::Parts;
use platform::TraceContext;

/// The request's trace: attached by the router's outermost layer (the same
/// id is in the log span), else from its `traceparent`.
pub fn request_trace(parts: &Parts) -> TraceContext {
    parts
        .extensions
        .get::<TraceContext>()
        .copied()
        .unwrap_or_else(|| TraceContext::from_headers(&parts.headers))
}

/// `true` when the request is a browser page navigation (answer with a
/// redirect to sign in) rather than an API call (answer JSON).
pub fn is_navigation(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes() == b"navigate",
        None => headers
            .get(::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html")),
    }
}
