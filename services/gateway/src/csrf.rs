//! CSRF defence for state-changing browser requests (those that ride on the
//! session cookie). Three layers, each enough against classic CSRF on its own:
//! * the cookie is `SameSite=Lax`, so other sites' POSTs arrive without it;
//! * a strict origin check: `Origin` must be exactly the gateway's public
//!   origin (or, where a browser sends no `Origin`, `Sec-Fetch-Site` must be
//!   `same-origin`); a request with neither is refused;
//! * a synchronizer token: the session's CSRF token must come back in the
//!   `X-CSRF-Token` header (API calls) or the `csrf_token` form field (sign-out).
//!
//! Requests that bring their own `Authorization: Bearer` token carry no
//! ambient credential and need none of this.

use http::{HeaderMap, Method};

use crate::error::GatewayError;
use platform::crypto::ct_eq;

/// The header the page sends the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `true` for methods that may change state (everything but GET, HEAD, OPTIONS, TRACE).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The strict origin check.
pub fn check_origin(headers: &HeaderMap, public_origin: &str) -> Result<(), GatewayError> {
    match headers.get(http::header::ORIGIN) {
        Some(origin) if origin.as_bytes() == public_origin.as_bytes() => Ok(()),
        Some(_) => Err(GatewayError::Csrf("the Origin header is not this site")),
        None => match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            Some(b"same-origin") => Ok(()),
            Some(_) => Err(GatewayError::Csrf("the request comes from another site")),
            None => Err(GatewayError::Csrf("the request has no Origin header")),
        },
    }
}

/// The synchronizer-token check; `presented` is what the request carried.
pub fn check_token(presented: Option<&str>, expected: &str) -> Result<(), GatewayError> {
    match presented {
        Some(token) if ct_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(GatewayError::Csrf("the CSRF token does not match")),
        None => Err(GatewayError::Csrf("the CSRF token is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn only_the_exact_public_origin_passes() {
        let me = "http://localhost:8080";
        assert!(check_origin(&headers(&[("origin", "http://localhost:8080")]), me).is_ok());
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-origin")]), me).is_ok());
        for bad in [
            headers(&[("origin", "http://evil.example")]),
            headers(&[("origin", "http://localhost:8080.evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[]),
        ] {
            assert!(
                matches!(check_origin(&bad, me), Err(GatewayError::Csrf(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(check_token(Some("abc"), "abc").is_ok());
        assert!(check_token(Some("abd"), "abc").is_err());
        assert!(check_token(None, "abc").is_err());
        assert!(is_state_changing(&Method::POST) && is_state_changing(&Method::DELETE));
        assert!(!is_state_changing(&Method::GET));
    }
}
