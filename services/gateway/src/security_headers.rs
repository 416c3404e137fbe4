//! Security headers on every response the gateway sends, including relayed
//! API answers (the gateway owns its origin; upstream values are replaced).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::{self, HeaderName};

/// The header set, computed once from the configuration.
#[derive(Clone)]
pub struct SecurityHeaders(std::sync::Arc<Vec<(HeaderName, HeaderValue)>>);

impl SecurityHeaders {
    /// `issuer_origin` is allowed as a form target: signing out posts a form
    /// whose answer redirects to the IdP's end-session endpoint.
    pub fn new(issuer_origin: &str, https: bool) -> Self {
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; font-src 'self'; form-action 'self' {issuer_origin}; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        let mut headers = vec![
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (header::X_FRAME_OPTIONS, "DENY".into()),
            // `same-origin` rather than `no-referrer`: with `no-referrer` browsers
            // send `Origin: null` on POST, which the CSRF origin check must refuse.
            (header::REFERRER_POLICY, "same-origin".into()),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin".into(),
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin".into(),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                "camera=(), microphone=(), geolocation=()".into(),
            ),
        ];
        if https {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=31536000; includeSubDomains".into(),
            ));
        }
        Self(std::sync::Arc::new(
            headers
                .into_iter()
                .filter_map(|(k, v)| HeaderValue::from_str(&v).ok().map(|v| (k, v)))
                .collect(),
        ))
    }
}

/// Middleware adding the headers.
pub async fn add(State(set): State<SecurityHeaders>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in set.0.iter() {
        headers.insert(name.clone(), value.clone());
    }
    response
}
