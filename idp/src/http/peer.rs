//! The client's network address, for throttling and audit: the TCP peer,
//! or — only when that peer is a configured trusted proxy — the rightmost
//! `X-Forwarded-For` entry that is not a trusted proxy. A client can put
//! anything in `X-Forwarded-For`, so it is never believed otherwise.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::state::AppState;

/// The address a request comes from (see the module documentation).
pub struct PeerAddr(pub String);

impl FromRequestParts<AppState> for PeerAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(PeerAddr(peer_addr(parts, &state.config.trusted_proxies)))
    }
}

pub fn peer_addr(parts: &Parts, trusted: &[IpAddr]) -> String {
    let Some(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "unknown".to_owned();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip.to_string(),
            // Garbage from the client side of the chain: stop at the last good hop.
            Err(_) => break,
        }
    }
    peer.to_string()
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
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            peer_addr(&parts("203.0.113.9", Some("1.2.3.4")), &[]),
            "203.0.113.9"
        );
        assert_eq!(
            peer_addr(&parts("203.0.113.9", Some("1.2.3.4")), &[proxy]),
            "203.0.113.9"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("6.6.6.6, 1.2.3.4")), &[proxy]),
            "1.2.3.4",
            "rightmost untrusted hop"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("1.2.3.4, 10.0.0.1")), &[proxy]),
            "1.2.3.4"
        );
        assert_eq!(
            peer_addr(&parts("10.0.0.1", Some("junk")), &[proxy]),
            "10.0.0.1"
        );
        assert_eq!(peer_addr(&parts("10.0.0.1", None), &[proxy]), "10.0.0.1");
    }
}
