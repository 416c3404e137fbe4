//! Checking a caller against a [`Requirement`], in handlers and as route layers.
//!
//! ```ignore
//! use guard::{require_role, require_scope, require_all, Requirement};
//! Router::new()
//!     .route("/items/{sku}", put(update_item).route_layer(require_all([
//!         Requirement::role("admin"),
//!         Requirement::scope("inventory:write"),
//!     ])))
//!     .route("/audit", get(audit).route_layer(require_role("admin")))
//!     .route("/items", get(list_items))
//!     .layer(guard.layer()) // the route layers find the Guard here
//!     .with_state(state);
//! ```
//!
//! Mind axum's scoping: `MethodRouter::route_layer` (on `get(..)`) guards that
//! route; `Router::route_layer` guards every route added *before* it.
//!
//! A route layer validates the bearer token itself (401 when it is missing or
//! invalid), checks the requirement (403 naming what is needed), and leaves the
//! [`Principal`] in the request extensions so the handler's `Principal`
//! extractor does not validate twice.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;

use crate::error::AuthError;
use crate::requirements::Requirement;
use crate::{Guard, Principal};

impl Requirement {
    /// Whether `principal` meets this requirement.
    pub fn is_met_by(&self, principal: &Principal) -> bool {
        match self {
            Self::Role(role) => principal.has_role(role),
            Self::Scope(scope) => principal.has_scope(scope),
            Self::AnyOf(all) => all.iter().any(|r| r.is_met_by(principal)),
            Self::AllOf(all) => all.iter().all(|r| r.is_met_by(principal)),
        }
    }

    /// `Ok` when met, else the 403 naming this requirement.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        if self.is_met_by(principal) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(self.clone()))
        }
    }
}

/// Route layer: the caller must have role `role`.
pub fn require_role(role: impl Into<Cow<'static, str>>) -> RequireLayer {
    require(Requirement::role(role))
}

/// Route layer: the caller must have scope `scope`.
pub fn require_scope(scope: impl Into<Cow<'static, str>>) -> RequireLayer {
    require(Requirement::scope(scope))
}

/// Route layer: the caller must have at least one of `roles`.
pub fn require_any_role(roles: &[&'static str]) -> RequireLayer {
    require(Requirement::any_of(
        roles.iter().map(|r| Requirement::role(*r)),
    ))
}

/// Route layer: the caller must have at least one of `scopes`.
pub fn require_any_scope(scopes: &[&'static str]) -> RequireLayer {
    require(Requirement::any_of(
        scopes.iter().map(|s| Requirement::scope(*s)),
    ))
}

/// Route layer: the caller must meet at least one of `requirements`.
pub fn require_any(requirements: impl IntoIterator<Item = Requirement>) -> RequireLayer {
    require(Requirement::any_of(requirements))
}

/// Route layer: the caller must meet all of `requirements`.
pub fn require_all(requirements: impl IntoIterator<Item = Requirement>) -> RequireLayer {
    require(Requirement::all_of(requirements))
}

/// Route layer for any [`Requirement`].
pub fn require(requirement: Requirement) -> RequireLayer {
    RequireLayer {
        requirement: Arc::new(requirement),
    }
}

/// A [`tower::Layer`] enforcing a [`Requirement`]; see [`require`].
#[derive(Debug, Clone)]
pub struct RequireLayer {
    requirement: Arc<Requirement>,
}

impl<S> tower::Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            requirement: self.requirement.clone(),
        }
    }
}

/// The service made by [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    inner: S,
    requirement: Arc<Requirement>,
}

impl<S> tower::Service<Request<Body>> for RequireService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // Take the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let requirement = self.requirement.clone();
        Box::pin(async move {
            let principal = match authenticated(&mut request).await {
                Ok(principal) => principal,
                Err(e) => return Ok(e.into_response()),
            };
            if let Err(e) = requirement.check(&principal) {
                return Ok(e.into_response());
            }
            inner.call(request).await
        })
    }
}

/// The request's principal: the one already validated, or validated now with
/// the [`Guard`] that `Guard::layer()` put into the extensions.
async fn authenticated(request: &mut Request<Body>) -> Result<Principal, AuthError> {
    if let Some(principal) = request.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    let guard = request
        .extensions()
        .get::<Guard>()
        .cloned()
        .ok_or(AuthError::NotConfigured)?;
    let (mut parts, body) = std::mem::take(request).into_parts();
    let principal = crate::extract::of_request(&mut parts, &guard).await;
    *request = Request::from_parts(parts, body);
    principal
}
