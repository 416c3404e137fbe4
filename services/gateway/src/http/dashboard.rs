//! `GET /api/dashboard`: one document composed from three services, called
//! concurrently with the caller's token (or, on `relay = "exchange"` routes,
//! a token exchanged for that route's service, see [`crate::relay_token`]).
//!
//! | key | route (table name) | upstream call | who |
//! |---|---|---|---|
//! | `orders` | `orders` | `GET <orders>?limit=5` | everyone (order filters by role) |
//! | `payments` | `payments` | `GET <payments>?limit=5` | everyone (payment filters by role) |
//! | `low_stock` | `inventory` | `GET <inventory>/items?stock_below=5` | admins only (absent for others) |
//!
//! Each part goes through the same relay as `/api/...` (route table, coarse
//! RBAC, balancing, circuit breakers, fallbacks, route timeout), in its own
//! task. The caller's identity reaches those tasks as guard's
//! [`RelayContext`], set with [`RelayContext::scope`] around each spawned
//! future and read back with [`RelayContext::current`] inside — nothing else
//! carries the token. A part that fails is marked (`{"unavailable":
//! "timeout"}`, `"unreachable"`, `"circuit_open"` with `retry_after`,
//! `"upstream_error"` with `status`; `{"denied": "insufficient_scope"}`),
//! and the others still come back: the page answers 200 whenever the caller
//! is signed in. A route answering from its fallback is marked `"fallback"`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use guard::relay::RelayContext;
use guard::{AuthError, Principal};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::AppState;
use crate::caller::{Credentials, TokenSource};
use crate::error::{GatewayError, retry_after_secs};
use crate::http::request_trace;
use crate::proxy::{FALLBACK_HEADER, Forwarding, UpstreamError};
use crate::relay_token;
use crate::routes::Access;

/// Items with less stock than this are "running low".
pub const LOW_STOCK_BELOW: u32 = 5;
/// How many recent orders and charges the dashboard shows.
pub const RECENT: u32 = 5;
/// Largest part body read.
const MAX_PART: usize = 1 << 20;

/// One call of the dashboard.
struct Part {
    key: &'static str,
    route: &'static str,
    rest: &'static str,
    query: String,
    admin_only: bool,
}

fn dashboard_parts() -> [Part; 3] {
    [
        Part {
            key: "orders",
            route: "orders",
            rest: "",
            query: format!("limit={RECENT}"),
            admin_only: false,
        },
        Part {
            key: "payments",
            route: "payments",
            rest: "",
            query: format!("limit={RECENT}"),
            admin_only: false,
        },
        Part {
            key: "low_stock",
            route: "inventory",
            rest: "/items",
            query: format!("stock_below={LOW_STOCK_BELOW}"),
            admin_only: true,
        },
    ]
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/dashboard", get(dashboard))
}

/// What the relay adds to every part's request (besides the token).
struct Origin {
    client_ip: IpAddr,
    proto: String,
    host: String,
}

async fn dashboard(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    request: Request,
) -> Result<Response, GatewayError> {
    let (parts, _) = request.into_parts();
    let trace = request_trace(&parts);
    let client_ip = app
        .config
        .trusted_proxies
        .client_ip(peer.ip(), &parts.headers);
    let credentials = Credentials::resolve(&app, &parts, &jar).await?;

    // Validate the token for each part's audience (a cache hit after the
    // first); the caller is whoever the first valid one names.
    let mut checked = Vec::new();
    for part in dashboard_parts() {
        let guard = app
            .routes
            .named(part.route)
            .and_then(|route| app.guards.get(&route.audience));
        let validated = match guard {
            None => None,
            Some(guard) => match credentials.validate(&app, guard, &parts).await {
                Ok((principal, source)) => Some(Ok((principal, source))),
                Err(GatewayError::Auth(e)) => Some(Err(e)),
                // The session ended (revoked), the store is down: the whole page.
                Err(e) => return Err(e),
            },
        };
        checked.push((part, validated));
    }
    let caller = checked
        .iter()
        .find_map(|(_, v)| v.as_ref().and_then(|r| r.as_ref().ok()))
        .cloned();
    let Some((principal, source)) = caller else {
        let first_error = checked
            .into_iter()
            .find_map(|(_, v)| v.and_then(Result::err));
        return Err(first_error.map_or_else(
            || GatewayError::NotFound("/api/dashboard".into()),
            GatewayError::Auth,
        ));
    };
    let admin = principal.has_role("admin");
    let context = RelayContext::bearer(principal.token().clone(), trace);
    let origin = Arc::new(Origin {
        client_ip,
        proto: app.config.public_url.scheme().to_owned(),
        host: app.config.public_host(),
    });

    let mut document = serde_json::Map::new();
    let mut tasks = JoinSet::new();
    for (part, validated) in checked {
        if part.admin_only && !admin {
            continue;
        }
        if let Err(marker) = admit(&app, &part, validated, client_ip) {
            document.insert(part.key.into(), marker);
            continue;
        }
        let (app, origin, principal) = (app.clone(), origin.clone(), principal.clone());
        let context = context.clone();
        // The identity travels into the task as the task-local relay context,
        // with the route's own token when it relays exchanged tokens.
        tasks.spawn(async move {
            let Some(route) = app.routes.named(part.route) else {
                return (part.key, json!({"unavailable": "not_configured"}));
            };
            let context =
                match relay_token::for_route(&app.exchanger, route, &principal, source).await {
                    Ok(token) => RelayContext::bearer(token, *context.trace()),
                    Err(GatewayError::Exchange(guard::ExchangeError::Refused(_))) => {
                        return (part.key, json!({"denied": "invalid_token"}));
                    }
                    Err(GatewayError::Exchange(guard::ExchangeError::NotAllowed(_))) => {
                        return (part.key, json!({"denied": "insufficient_scope"}));
                    }
                    Err(_) => return (part.key, json!({"unavailable": "idp"})),
                };
            let value = context.scope(fetch(&app, &part, &origin)).await;
            (part.key, value)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((key, value)) => {
                document.insert(key.into(), value);
            }
            Err(e) => tracing::error!(error = %e, "dashboard part panicked"),
        }
    }
    for part in dashboard_parts() {
        if (admin || !part.admin_only) && !document.contains_key(part.key) {
            document.insert(part.key.into(), json!({"unavailable": "internal_error"}));
        }
    }
    document.insert(
        "user".into(),
        json!({
            "sub": principal.sub(),
            "roles": principal.roles(),
            "token": source.as_str(),
        }),
    );
    document.insert("trace_id".into(), trace.trace_id().into());
    let mut response = Json(Value::Object(document)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What `/api/...` would check before relaying the part's call: the token
/// for the route's audience, its allow rule, its rate limit. Else the marker
/// that replaces the part.
fn admit(
    app: &AppState,
    part: &Part,
    validated: Option<Result<(Principal, TokenSource), AuthError>>,
    client_ip: IpAddr,
) -> Result<(), Value> {
    let (Some(route), Some(validated)) = (app.routes.named(part.route), validated) else {
        return Err(json!({"unavailable": "not_configured"}));
    };
    let (principal, _) = validated.map_err(|e| json!({"denied": denied_code(&e)}))?;
    let access = route
        .access(&Method::GET, part.rest)
        .ok_or_else(|| json!({"unavailable": "not_exposed"}))?;
    if let Some(limiter) = &route.rate_limit
        && limiter.check(client_ip).is_err()
    {
        return Err(json!({"unavailable": "rate_limited"}));
    }
    if let Access::Requires(requirement) = access {
        requirement
            .check(&principal)
            .map_err(|e| json!({"denied": denied_code(&e)}))?;
    }
    Ok(())
}

fn denied_code(e: &AuthError) -> &'static str {
    match e.clone().into_response().status() {
        StatusCode::FORBIDDEN => "insufficient_scope",
        StatusCode::UNAUTHORIZED => "invalid_token",
        _ => "unavailable",
    }
}

/// One part, relayed with the identity of the enclosing [`RelayContext`].
async fn fetch(app: &AppState, part: &Part, origin: &Origin) -> Value {
    let Some(caller) = RelayContext::current() else {
        return json!({"unavailable": "no_identity"});
    };
    let Some(route) = app.routes.named(part.route) else {
        return json!({"unavailable": "not_configured"});
    };
    let forwarding = Forwarding {
        token: caller.token(),
        trace: caller.trace(),
        client_ip: origin.client_ip,
        proto: &origin.proto,
        host: &origin.host,
    };
    let uri = format!("{}{}?{}", route.prefix, part.rest, part.query);
    let Ok(request) = http::Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
    else {
        return json!({"unavailable": "internal_error"});
    };
    let call = async {
        let response = app
            .proxy
            .forward(
                route,
                app.routes.fallback_route(route),
                part.rest,
                request,
                &forwarding,
            )
            .await?;
        let status = response.status();
        let fallback = response.headers().get(FALLBACK_HEADER).cloned();
        let body = axum::body::to_bytes(response.into_body(), MAX_PART).await;
        Ok::<_, UpstreamError>((status, fallback, body))
    };
    // The route timeout bounds the answer's head in the relay; this bounds the body too.
    let (status, fallback, body) = match tokio::time::timeout(route.timeout, call).await {
        Err(_) | Ok(Err(UpstreamError::Timeout { .. })) => {
            return json!({"unavailable": "timeout"});
        }
        Ok(Err(UpstreamError::Unreachable { .. })) => {
            return json!({"unavailable": "unreachable"});
        }
        Ok(Err(UpstreamError::CircuitOpen { retry_after, .. })) => {
            return json!({"unavailable": "circuit_open", "retry_after": retry_after_secs(retry_after)});
        }
        Ok(Ok(answer)) => answer,
    };
    let parsed = body
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match (status, parsed) {
        (StatusCode::UNAUTHORIZED, _) => json!({"denied": "invalid_token"}),
        (StatusCode::FORBIDDEN, _) => json!({"denied": "insufficient_scope"}),
        (s, Some(mut value)) if s.is_success() => {
            if let (Some(route), Some(object)) = (
                fallback.as_ref().and_then(|v| v.to_str().ok()),
                value.as_object_mut(),
            ) {
                object.insert("fallback".into(), route.into());
            }
            value
        }
        (s, _) if s.is_success() => json!({"unavailable": "invalid_response"}),
        (s, _) => json!({"unavailable": "upstream_error", "status": s.as_u16()}),
    }
}
