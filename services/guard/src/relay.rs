//! Calling other services on behalf of the caller.
//!
//! ```ignore
//! // once, in the state:
//! let relay = RelayClient::new()?;
//! let inventory = relay.upstream("inventory", config.inventory_url.clone());
//! // in a handler:
//! let reservation: Reservation = inventory
//!     .post("/reservations", &principal)
//!     .header(IDEMPOTENCY_KEY, key)
//!     .json(&request)
//!     .send_json()
//!     .await?; // RelayError answers for itself: 401/403/404/409/502/503/504
//! ```
//!
//! Every call carries `Authorization: Bearer <the caller's token>` and a W3C
//! `traceparent` continuing the caller's trace, has a timeout, follows no
//! redirect (a redirect would carry the token elsewhere), and reuses pooled
//! connections.
//!
//! **Identity across tasks** (the equivalent of Spring's
//! `DelegatingSecurityContextRunnable`): the identity is an explicit value,
//! [`RelayContext`] (or a [`Principal`]), `Clone + Send + 'static`, that you move
//! into spawned work. For code that cannot thread it through, [`RelayContext::scope`]
//! sets it for a future, [`RelayContext::current`] reads it back, and [`spawn`]
//! carries the current one into a new task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::Principal;
use platform::trace::{TRACEPARENT, TraceContext};

mod error;
pub use error::RelayError;
pub(crate) use error::{status_error, transport_error};

/// Default timeout of one relayed call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default TCP connect timeout: a stopped upstream fails fast.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whose token to relay and in which trace: `Clone + Send + 'static`.
#[derive(Clone)]
pub struct RelayContext {
    token: Arc<str>,
    trace: TraceContext,
}

tokio::task_local! {
    static CURRENT: RelayContext;
}

impl RelayContext {
    /// A raw bearer token (the gateway's session token), in `trace`.
    pub fn bearer(token: impl Into<Arc<str>>, trace: TraceContext) -> Self {
        Self {
            token: token.into(),
            trace,
        }
    }

    /// The token that will be relayed. Never log it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The trace the relayed calls continue.
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// Runs `future` with this context as the [`current`](Self::current) one.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// The context set by an enclosing [`scope`](Self::scope) (or carried
    /// over by [`spawn`]); `None` outside any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

impl From<&Principal> for RelayContext {
    fn from(principal: &Principal) -> Self {
        Self {
            token: principal.token().clone(),
            trace: *principal.trace(),
        }
    }
}

impl From<Principal> for RelayContext {
    fn from(principal: Principal) -> Self {
        Self::from(&principal)
    }
}

impl From<&RelayContext> for RelayContext {
    fn from(context: &RelayContext) -> Self {
        context.clone()
    }
}

impl std::fmt::Debug for RelayContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayContext")
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}

/// `tokio::spawn` that keeps the current [`RelayContext`] (if any) in the new task.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match RelayContext::current() {
        Some(context) => tokio::spawn(CURRENT.scope(context, future)),
        None => tokio::spawn(future),
    }
}

/// An HTTP client for service-to-service calls. Cheap to clone; make one per
/// process so connections are pooled.
#[derive(Clone, Debug)]
pub struct RelayClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl RelayClient {
    /// A client with the default timeouts (5 s per call, 1 s to connect).
    pub fn new() -> Result<Self, reqwest::Error> {
        Self::with_timeouts(DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)
    }

    /// A client with these timeouts.
    pub fn with_timeouts(
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { http, timeout })
    }

    /// A named upstream at `base` (e.g. `inventory`, `http://127.0.0.1:8083`).
    /// Paths are resolved below `base`'s path, with or without a leading `/`.
    pub fn upstream(&self, name: impl Into<Arc<str>>, mut base: Url) -> Upstream {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Upstream {
            client: self.clone(),
            name: name.into(),
            base,
        }
    }

    /// A request to any URL; errors name the upstream by its host and port.
    pub fn request(
        &self,
        method: Method,
        url: Url,
        caller: impl Into<RelayContext>,
    ) -> RelayRequest {
        let name: Arc<str> = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}").into(),
            _ => url.as_str().into(),
        };
        self.build(name, method, url, caller.into())
    }

    fn build(
        &self,
        service: Arc<str>,
        method: Method,
        url: Url,
        caller: RelayContext,
    ) -> RelayRequest {
        // The call's span: the parent of the next service's request span.
        let span =
            tracing::info_span!("relay", service = %service, method = %method, path = url.path());
        let trace = span.in_scope(|| caller.trace.child());
        let inner = match HeaderValue::from_str(&format!("Bearer {}", caller.token)) {
            Ok(mut authorization) => {
                authorization.set_sensitive(true);
                Ok(self
                    .http
                    .request(method, url)
                    .timeout(self.timeout)
                    .header(header::AUTHORIZATION, authorization)
                    .header(TRACEPARENT, trace.header_value()))
            }
            Err(_) => Err(RelayError::Unauthorized {
                service: service.clone(),
                description: Some("the caller's token cannot be sent in a header".into()),
            }),
        };
        RelayRequest {
            inner,
            service,
            span,
        }
    }
}

/// A named upstream service with a base URL.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: RelayClient,
    name: Arc<str>,
    base: Url,
}

impl Upstream {
    /// The upstream's name, used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upstream's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A request to `path` below the base URL (`"items"` and `"/items"` alike).
    /// A path that would leave the upstream's origin (`"http://elsewhere/"`)
    /// is refused: the caller's token only ever goes to this upstream.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        caller: impl Into<RelayContext>,
    ) -> RelayRequest {
        match self.base.join(path.trim_start_matches('/')) {
            Ok(url) if url.origin() == self.base.origin() => {
                self.client
                    .build(self.name.clone(), method, url, caller.into())
            }
            _ => RelayRequest {
                inner: Err(RelayError::InvalidPath {
                    service: self.name.clone(),
                }),
                service: self.name.clone(),
                span: tracing::Span::none(),
            },
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str, caller: impl Into<RelayContext>) -> RelayRequest {
        self.request(Method::GET, path, caller)
    }

    /// `POST path`.
    pub fn post(&self, path: &str, caller: impl Into<RelayContext>) -> RelayRequest {
        self.request(Method::POST, path, caller)
    }

    /// `PUT path`.
    pub fn put(&self, path: &str, caller: impl Into<RelayContext>) -> RelayRequest {
        self.request(Method::PUT, path, caller)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str, caller: impl Into<RelayContext>) -> RelayRequest {
        self.request(Method::DELETE, path, caller)
    }
}

/// A relayed call being built.
#[must_use = "a request does nothing until sent"]
pub struct RelayRequest {
    inner: Result<reqwest::RequestBuilder, RelayError>,
    service: Arc<str>,
    span: tracing::Span,
}

impl RelayRequest {
    fn map(mut self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.inner = self.inner.map(f);
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        self.map(|r| r.json(body))
    }

    /// Query parameters.
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|r| r.query(query))
    }

    /// An extra header (e.g. `Idempotency-Key`). `Authorization` and
    /// `traceparent` are already set.
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.map(|r| r.header(name, value))
    }

    /// Overrides the client's timeout for this call.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|r| r.timeout(timeout))
    }

    /// Sends, and returns the response whatever its status; only transport
    /// failures are errors. For proxies that pass answers through.
    pub async fn send_raw(self) -> Result<reqwest::Response, RelayError> {
        let service = self.service;
        let request = self.inner?;
        request
            .send()
            .instrument(self.span)
            .await
            .map_err(|e| transport_error(service, &e))
    }

    /// Sends, and turns any non-2xx answer into a [`RelayError`].
    pub async fn send(self) -> Result<reqwest::Response, RelayError> {
        let service = self.service.clone();
        let response = self.send_raw().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(service, response).await)
    }

    /// Sends and decodes a 2xx JSON answer.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, RelayError> {
        let service = self.service.clone();
        let response = self.send().await?;
        response.json().await.map_err(|e| {
            if e.is_timeout() {
                RelayError::Timeout { service }
            } else {
                RelayError::InvalidResponse {
                    service,
                    reason: "answer is not the expected JSON".into(),
                }
            }
        })
    }
}
