//! A slow IdP: an HTTP proxy in front of the real IdP (which names the proxy
//! as its issuer, so everything reaches it through here) that can hold the
//! refresh grants at `/token` until the test lets them through. Nothing is
//! answered by the proxy itself: every request goes to the real IdP, only later.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use reqwest::header;
use tokio::sync::watch;

/// The proxy's switch and counter.
pub struct IdpProxy {
    open: watch::Sender<bool>,
    refreshes: watch::Sender<usize>,
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    gate: Arc<IdpProxy>,
}

impl IdpProxy {
    /// Serves on `listener`, forwarding to `upstream` (`http://host:port`); refresh grants pass.
    pub fn start(listener: tokio::net::TcpListener, upstream: String) -> Arc<Self> {
        let gate = Arc::new(Self {
            open: watch::Sender::new(true),
            refreshes: watch::Sender::new(0),
        });
        let proxy = Arc::new(Proxy {
            upstream,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            gate: gate.clone(),
        });
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, app).await });
        gate
    }

    /// From now on, refresh grants wait here until [`IdpProxy::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Lets every waiting and future refresh grant through.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Refresh grants received so far (held or passed).
    pub fn refreshes(&self) -> usize {
        *self.refreshes.borrow()
    }

    /// Waits until `n` refresh grants have arrived.
    pub async fn until_refreshes(&self, n: usize) {
        self.refreshes
            .subscribe()
            .wait_for(|seen| *seen >= n)
            .await
            .unwrap();
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let refresh = parts.uri.path() == "/token"
        && url::form_urlencoded::parse(&body)
            .any(|(k, v)| k == "grant_type" && v == "refresh_token");
    if refresh {
        let mut open = proxy.gate.open.subscribe();
        proxy.gate.refreshes.send_modify(|n| *n += 1);
        open.wait_for(|open| *open).await.unwrap();
    }
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut outgoing = proxy
        .client
        .request(parts.method, format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap();
    response.body(Body::from(body)).unwrap()
}
