//! Client authentication at the token, revocation and introspection
//! endpoints: `client_secret_basic`, `client_secret_post`, and `none` for
//! public clients (who then must prove possession with PKCE).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::OAuthError;
use crate::http::params::Params;
use crate::realm::Client;
use crate::state::AppState;
use crate::throttle;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basic,
    Post,
    None,
}

/// Authenticates the client of a request coming from `addr`. Every failure
/// is `invalid_client` (401 with `WWW-Authenticate`), without saying whether
/// the client exists. A right secret always passes; repeated failures lock
/// the (client id, address) pair and the address for a growing time (see
/// [`throttle`]), never the client id as a whole.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    addr: &str,
) -> Result<(Arc<Client>, Method), OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let (id, secret, method) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method",
            ));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Authorization header",
                ));
            }
            (id, Some(secret), Method::Basic)
        }
        (None, Some(secret)) => {
            let id = body_id
                .ok_or_else(|| OAuthError::invalid_request("missing parameter client_id"))?;
            (id.to_owned(), Some(secret.to_owned()), Method::Post)
        }
        (None, None) => match body_id {
            Some(id) => (id.to_owned(), None, Method::None),
            None => return Err(OAuthError::invalid_client("client authentication required")),
        },
    };
    if id.len() > 64 {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    let cache = &state.auth_cache;
    let client = cache.client_or_load(&state.db, &id).await?;
    // The secret first: a right one is never refused, whatever anybody else
    // sent. A secret made by `idp clients create` is 256 random bits: it
    // cannot be guessed, so a lock on the client id would only let anyone
    // lock the real client out.
    let ok = match (client, secret) {
        (Some(c), Some(secret)) if !c.public && c.secret_matches(&secret) => Some((c, method)),
        (Some(c), None) if c.public => Some((c, Method::None)),
        (None, Some(secret)) => {
            // Same work as for a known client: the answer time says nothing.
            let _ = platform::crypto::sha256(secret.as_bytes());
            None
        }
        _ => None,
    };
    if let Some(found) = ok {
        return Ok(found);
    }
    // Failures are counted per (client, address) and per address, so they
    // only ever lock out where they come from. Both keys whether or not the
    // client exists: the answers read the same.
    let (pair_key, addr_key) = (
        throttle::client_addr_key(&id, addr),
        throttle::client_net_key(addr),
    );
    let keys = [pair_key.as_str(), addr_key.as_str()];
    let event = |kind| throttle::AuthEvent {
        kind,
        username: None,
        client_id: Some(&id),
        addr,
    };
    if throttle::is_locked(&state.db, cache, &keys).await? {
        throttle::audit(&state.db, event("client_auth_locked")).await?;
        return Err(OAuthError::invalid_client(
            "too many failed attempts: try again later",
        ));
    }
    throttle::failed(
        &state.db,
        cache,
        &[
            (&pair_key, throttle::CLIENT),
            (&addr_key, throttle::ADDRESS),
        ],
        event("client_auth_failed"),
    )
    .await?;
    Err(OAuthError::invalid_client("client authentication failed"))
}

/// `Authorization: Basic` credentials, form-urlencoded inside (RFC 6749 §2.3.1).
pub(super) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported authentication scheme",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Option<String> {
        let raw = format!("v={s}");
        url::form_urlencoded::parse(raw.as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (
        unescape(id).ok_or_else(bad)?,
        unescape(secret).ok_or_else(bad)?,
    );
    if id.is_empty() || id.contains('\0') || secret.contains('\0') {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let enc = STANDARD.encode("my%20client:s%3Acret+x");
        let got = basic_credentials(&with_auth(&format!("Basic {enc}")))
            .unwrap()
            .unwrap();
        assert_eq!(got, ("my client".to_owned(), "s:cret x".to_owned()));
        assert!(basic_credentials(&HeaderMap::new()).unwrap().is_none());
        assert!(basic_credentials(&with_auth("Basic !!!")).is_err());
        assert!(basic_credentials(&with_auth("Bearer abc")).is_err());
        assert!(
            basic_credentials(&with_auth(&format!("Basic {}", STANDARD.encode("nocolon"))))
                .is_err()
        );
    }
}
