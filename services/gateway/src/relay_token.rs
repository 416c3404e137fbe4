//! Which token the gateway sends to a route's service: the one place that
//! decides, for `/api/...` and for the dashboard's parts alike.
//!
//! A route with `relay = "exchange"` (`bearer_relay` for API clients' own
//! tokens) gets a token the gateway obtained by RFC 8693 token exchange with
//! its own client credentials: subject = the caller's validated token, `aud`
//! = the route's audience alone, `scope` = the route's `scopes`, `act` =
//! `{"sub": "gateway"}`. guard's [`Exchanger`] keeps it per (the caller's
//! token `jti`, audience) until shortly before it ends and asks the IdP once
//! however many requests need it at the same moment; a session's refreshed
//! token has a new `jti`, so it is exchanged afresh. `relay = "plain"`
//! relays the caller's token as is.
//!
//! A DPoP-bound token (an API client's, RFC 9449) is always exchanged,
//! whatever the route says: the gateway verified the client's proof, but it
//! cannot make one for the next hop (it does not hold the client's key), so
//! the token could not be used downstream as it is; the exchanged token is
//! an unbound one for that service alone.
//!
//! The IdP decides whether the gateway may exchange a token: its session
//! tokens were issued to it; an API client's token only if it names the
//! gateway in `aud` (`idp seed` registers `cli` and `reporter` so).

use std::borrow::Cow;
use std::sync::Arc;

use guard::{Exchanger, Principal, RelayMode, Subject};

use crate::caller::TokenSource;
use crate::error::GatewayError;
use crate::routes::Route;

/// How `route` relays `principal`'s token, which came from `source`.
pub fn mode(route: &Route, principal: &Principal, source: TokenSource) -> RelayMode {
    match source {
        _ if principal.dpop_bound() => RelayMode::Exchange,
        TokenSource::Session => route.relay,
        TokenSource::Bearer => route.bearer_relay,
    }
}

/// The token to relay to `route` for `principal` (whose token came from `source`).
pub async fn for_route(
    exchanger: &Exchanger,
    route: &Route,
    principal: &Principal,
    source: TokenSource,
) -> Result<Arc<str>, GatewayError> {
    match mode(route, principal, source) {
        RelayMode::Plain => Ok(principal.token().clone()),
        RelayMode::Exchange => exchanger
            .token(
                &Subject::of(principal),
                &route.audience,
                &scope(route, principal),
            )
            .await
            .map_err(GatewayError::Exchange),
    }
}

/// The route's scopes the caller holds; all of them when it holds none (the
/// IdP then refuses the exchange: 403), so a token never gains a scope.
/// Borrowed from the route when the caller holds them all (the usual case:
/// nothing is allocated per request).
fn scope<'a>(route: &'a Route, principal: &Principal) -> Cow<'a, str> {
    let wanted = || route.scope.split_ascii_whitespace();
    if wanted().all(|s| principal.has_scope(s)) {
        return Cow::Borrowed(&route.scope);
    }
    let held: Vec<&str> = wanted().filter(|s| principal.has_scope(s)).collect();
    if held.is_empty() {
        return Cow::Borrowed(&route.scope);
    }
    Cow::Owned(held.join(" "))
}
