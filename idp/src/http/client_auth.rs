//! Client authentication at the token, revocation and introspection
//! endpoints: `client_secret_basic`, `client_secret_post`, and `none` for
//! public clients (who then must prove possession with PKCE).
//!
//! Handlers take one of the extractors: [`ClientForm`] (the authenticated
//! client with its form request: `/revoke`, `/introspect`),
//! [`AuthenticatedClient`] (credentials in the header only: the revocation
//! stream), or [`ClientRequest`] and then [`ClientRequest::authenticate`]
//! (`/token`, which refuses an unknown grant type before it looks at the client).

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::OAuthError;
use crate::http::authorization::Authorization;
use crate::http::params::{Form, Params};
use crate::http::peer::peer_addr;
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

/// A client that authenticated, and how.
pub struct AuthenticatedClient {
    pub client: Arc<Client>,
    pub method: Method,
}

/// A form request to a client endpoint, its client not yet authenticated.
pub struct ClientRequest {
    /// Where it comes from (see [`super::peer`]), for throttling.
    pub addr: String,
    pub headers: HeaderMap,
    pub params: Params,
}

/// An authenticated client with its form request.
pub struct ClientForm(pub AuthenticatedClient, pub ClientRequest);

impl FromRequest<AppState> for ClientRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, OAuthError> {
        let (parts, body) = req.into_parts();
        let addr = peer_addr(&parts, &state.config.trusted_proxies);
        let headers = parts.headers.clone();
        let Form(params) = Form::from_request(Request::from_parts(parts, body), state).await?;
        Ok(ClientRequest {
            addr,
            headers,
            params,
        })
    }
}

impl ClientRequest {
    /// Authenticates the client of this request (see [`authenticate`]).
    pub async fn authenticate(&self, state: &AppState) -> Result<AuthenticatedClient, OAuthError> {
        authenticate(state, &self.headers, &self.params, &self.addr).await
    }
}

impl FromRequest<AppState> for ClientForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, OAuthError> {
        let request = ClientRequest::from_request(req, state).await?;
        Ok(ClientForm(request.authenticate(state).await?, request))
    }
}

/// For requests without a body: the credentials come in the header.
impl FromRequestParts<AppState> for AuthenticatedClient {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let addr = peer_addr(parts, &state.config.trusted_proxies);
        authenticate(state, &parts.headers, &Params::default(), &addr).await
    }
}

/// Authenticates the client of a request coming from `addr`. Every failure
/// is `invalid_client` (401 with `WWW-Authenticate`), without saying whether
/// the client exists. A right secret always passes; repeated failures lock
/// the (client id, address) pair and the address for a growing time (see
/// [`throttle`]), never the client id as a whole.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    addr: &str,
) -> Result<AuthenticatedClient, OAuthError> {
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
    let ok = match (client.as_ref(), secret) {
        (Some(c), Some(secret)) if !c.public && c.secret_matches(&secret) => Some(method),
        (Some(c), None) if c.public => Some(Method::None),
        (None, Some(secret)) => {
            // Same work as for a known client: the answer time says nothing.
            let _ = platform::crypto::sha256(secret.as_bytes());
            None
        }
        _ => None,
    };
    if let (Some(client), Some(method)) = (client, ok) {
        return Ok(AuthenticatedClient { client, method });
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
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let Some(auth) = Authorization::of(headers).map_err(|_| bad())? else {
        return Ok(None);
    };
    let encoded = auth.credentials.ok_or_else(bad)?;
    if !auth.is("basic") {
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
    use axum::http::header;

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
