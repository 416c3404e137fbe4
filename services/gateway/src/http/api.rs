//! `/api/...`: the relay. For each request, in this order:
//!
//! 1. refuse ambiguous paths (dot segments, encoded slashes: 400);
//! 2. find the route and an allow rule for the method and path (else 404);
//! 3. rate limit by client address (429 + `Retry-After`);
//! 4. credentials ([`crate::caller`]): the caller's own `Authorization: Bearer` token (API
//!    clients; or `DPoP` with a proof for the gateway's URL), else the session cookie — CSRF-checked for
//!    state-changing methods, access token refreshed first when it expires
//!    within the margin — else 401 with a sign-in hint (pages: a redirect);
//! 5. validate the token with guard for the route's audience (401);
//! 6. coarse RBAC from the allow rule (403);
//! 7. the token to relay ([`crate::relay_token`]): exchanged for one naming the
//!    route's service alone (`relay = "exchange"`, and always for a DPoP-bound
//!    token), or the caller's as is;
//! 8. relay to the next instance whose circuit lets it through ([`crate::proxy`]):
//!    its answer passes through; unreachable 502, timeout 504; every circuit
//!    open: the route's fallback, else 503 `circuit_open` with `Retry-After`;
//! 9. a service's step-up answer (RFC 9470: 401 `insufficient_user_authentication`)
//!    passes through as is, and for a browser session it also names the
//!    step-up sign-in that would meet it (`x-baton-step-up: /auth/login?acr_values=…`):
//!    the page sends the person there and, back with the stronger session,
//!    sends the request again with the same `Idempotency-Key`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum_extra::extract::CookieJar;
use guard::{Principal, RelayMode, StepUpChallenge};
use http::{HeaderValue, Uri};
use platform::TraceContext;

use crate::AppState;
use crate::caller::{Credentials, TokenSource};
use crate::error::GatewayError;
use crate::http::auth::step_up_link;
use crate::http::request_trace;
use crate::proxy::Forwarding;
use crate::relay_token;
use crate::routes::Access;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api", any(relay))
        .route("/api/{*rest}", any(relay))
}

/// Anything that is not a page, an auth endpoint, a health check or a route.
pub async fn not_found(uri: Uri) -> GatewayError {
    GatewayError::NotFound(uri.path().to_owned())
}

async fn relay(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    request: Request,
) -> Result<Response, GatewayError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    check_path(&path)?;
    let (route, rest) = app
        .routes
        .find(&path)
        .ok_or_else(|| GatewayError::NotFound(path.clone()))?;
    let access = route
        .access(&parts.method, rest)
        .ok_or_else(|| GatewayError::NotFound(path.clone()))?;
    let client_ip = app
        .config
        .trusted_proxies
        .client_ip(peer.ip(), &parts.headers);
    if let Some(limiter) = &route.rate_limit {
        limiter
            .check(client_ip)
            .map_err(GatewayError::RateLimited)?;
    }
    let Some(guard) = app.guards.get(&route.audience) else {
        // Application::build makes one guard per route audience.
        return Err(GatewayError::NotFound(path));
    };
    let trace = request_trace(&parts);
    let credentials = Credentials::resolve(&app, &parts, &jar).await?;
    let (principal, source) = credentials.validate(&app, guard, &parts).await?;
    if let Access::Requires(requirement) = access {
        requirement.check(&principal)?;
    }

    let relayed = relay_token::for_route(&app.exchanger, route, &principal, source).await?;
    let mode = relay_token::mode(route, &principal, source);
    let host = app.config.public_host();
    let forwarding = Forwarding {
        token: &relayed,
        trace: &trace,
        client_ip,
        proto: app.config.public_url.scheme(),
        host: &host,
    };
    let route_name = route.name.clone();
    let relayed_aud: Vec<String> = match mode {
        RelayMode::Exchange => vec![route.audience.clone()],
        RelayMode::Plain => principal.aud().to_vec(),
    };
    let request = Request::from_parts(parts, body);
    let mut response = app
        .proxy
        .forward(
            route,
            app.routes.fallback_route(route),
            rest,
            request,
            &forwarding,
        )
        .await?;
    let relayed = Relayed {
        mode,
        aud: &relayed_aud,
    };
    if let Some(value) = relay_header(&route_name, &principal, source, &relayed, &trace) {
        response.headers_mut().insert("x-baton-relay", value);
    }
    if source == TokenSource::Session
        && let Some(link) = step_up(&response)
    {
        response.headers_mut().insert(STEP_UP_HEADER, link);
    }
    Ok(response.into_response())
}

/// Where the page finds the step-up sign-in a service asked for.
pub const STEP_UP_HEADER: &str = "x-baton-step-up";

/// The step-up sign-in link for a service's RFC 9470 answer, if it is one.
fn step_up(response: &Response) -> Option<HeaderValue> {
    if response.status() != http::StatusCode::UNAUTHORIZED {
        return None;
    }
    let challenge = response
        .headers()
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(StepUpChallenge::from_www_authenticate)?;
    HeaderValue::from_str(&step_up_link(&challenge)).ok()
}

/// What went on to the upstream.
struct Relayed<'a> {
    mode: RelayMode,
    aud: &'a [String],
}

/// `x-baton-relay`: what the gateway validated and relayed, for the page's
/// relay trace: the caller's identity, the validated token's `aud` and
/// actors, and the relayed token's `aud` and actors. Never a token.
fn relay_header(
    route: &str,
    principal: &Principal,
    source: TokenSource,
    relayed: &Relayed<'_>,
    trace: &TraceContext,
) -> Option<HeaderValue> {
    let mut relayed_actors: Vec<&str> = principal.actors();
    if relayed.mode == RelayMode::Exchange {
        relayed_actors.insert(0, "gateway");
    }
    let value = serde_json::json!({
        "hop": "gateway",
        "route": route,
        "token": source.as_str(),
        "sub": principal.sub(),
        "client_id": principal.client_id(),
        "roles": principal.roles(),
        "aud": principal.claims().aud,
        "actors": principal.actors(),
        "relay": relayed.mode,
        "relayed_aud": relayed.aud,
        "relayed_actors": relayed_actors,
        "trace_id": trace.trace_id(),
    });
    HeaderValue::from_str(&value.to_string()).ok()
}

/// Refuses paths whose meaning could differ between the gateway and an
/// upstream: dot segments (also percent-encoded), encoded slashes or
/// backslashes, empty segments, NUL.
fn check_path(path: &str) -> Result<(), GatewayError> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%00", "\\"]
        .iter()
        .any(|bad| lower.contains(bad))
    {
        return Err(GatewayError::BadPath(
            "encoded slashes, backslashes and NUL are not accepted",
        ));
    }
    if lower.contains("//") {
        return Err(GatewayError::BadPath(
            "empty path segments are not accepted",
        ));
    }
    let dots = lower.replace("%2e", ".");
    if dots
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(GatewayError::BadPath("dot segments are not accepted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_paths_are_refused() {
        assert!(check_path("/api/orders/123").is_ok());
        assert!(check_path("/api/orders/a.b").is_ok());
        for bad in [
            "/api/orders/../payments/x/refund",
            "/api/orders/%2e%2E/payments",
            "/api/orders/.",
            "/api/orders%2fx",
            "/api//orders",
            "/api/orders/%5c..",
            "/api/orders/%00",
        ] {
            assert!(
                matches!(check_path(bad), Err(GatewayError::BadPath(_))),
                "{bad}"
            );
        }
    }
}
