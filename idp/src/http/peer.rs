//! The client's network address, for throttling and audit: the TCP peer, or —
//! only when that peer is one of `IDP_TRUSTED_PROXIES` (addresses or CIDR
//! networks) — the rightmost `X-Forwarded-For` entry that is not a trusted
//! proxy. The rule lives in [`platform::client_ip`], shared with the gateway; a
//! client can put anything in `X-Forwarded-For`, so it is never believed
//! otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use platform::client_ip::TrustedProxies;

use crate::state::AppState;

/// The address a request comes from (see the module documentation).
pub struct PeerAddr(pub String);

impl FromRequestParts<AppState> for PeerAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(PeerAddr(peer_addr(parts, &state.config.trusted_proxies)))
    }
}

/// The client address of a request, as text (`unknown` without a TCP peer).
pub fn peer_addr(parts: &Parts, trusted: &TrustedProxies) -> String {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => trusted.client_ip(peer.ip(), &parts.headers).to_string(),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, xff: Option<&str>) -> Parts {
        let mut req = Request::builder();
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo(
            format!("{peer}:5000").parse::<SocketAddr>().unwrap(),
        ));
        parts
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::parse("10.0.0.0/24").unwrap();
        assert_eq!(
            peer_addr(&parts("203.0.113.9", Some("1.2.3.4")), &none),
            "203.0.113.9"
        );
        assert_eq!(
            peer_addr(&parts("203.0.113.9", Some("1.2.3.4")), &proxies),
            "203.0.113.9"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("6.6.6.6, 1.2.3.4")), &proxies),
            "1.2.3.4",
            "rightmost untrusted hop"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("1.2.3.4, 10.0.0.9")), &proxies),
            "1.2.3.4",
            "every address of the trusted network is skipped"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("junk")), &proxies),
            "10.0.0.1"
        );
        assert_eq!(peer_addr(&parts("10.0.0.1", None), &proxies), "10.0.0.1");
    }
}
