//! The test issuer itself: a real HTTP server on `127.0.0.1:0` serving the
//! discovery document, the JWKS, the revocation stream and a token-exchange
//! endpoint, with knobs for rotation, caching and outages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use super::keys::{KeyKind, TestKey};
use super::shared::Shared;
use super::stream::{STREAM_CLIENT_ID, STREAM_CLIENT_SECRET};
use super::token::TokenBuilder;
use super::{exchange, stream};
use crate::{GuardConfig, Revocation};

/// A running test issuer; stops when dropped.
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1:0` with one published key of each kind
    /// (`rsa-1`, `ec-1`, `ed-1`); tokens are signed with `rsa-1` by default.
    pub async fn start() -> Self {
        super::log::init();
        let rsa = TestKey::generate(KeyKind::Rsa, "rsa-1");
        let ec = TestKey::generate(KeyKind::Ec, "ec-1");
        let ed = TestKey::generate(KeyKind::Ed, "ed-1");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            published: Mutex::new(vec![rsa.clone(), ec, ed]),
            current: Mutex::new(rsa),
            jwks_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
            max_age: AtomicU64::new(300),
            revocations: Mutex::new(Vec::new()),
            live: broadcast::channel(1024).0,
            stopping: watch::channel(false).0,
            exchanges: AtomicUsize::new(0),
            exchange_ttl: AtomicU64::new(300),
        });
        let server = Self::serve(listener, shared.clone());
        Self {
            shared,
            addr,
            server: Mutex::new(Some(server)),
        }
    }

    fn serve(
        listener: tokio::net::TcpListener,
        shared: Arc<Shared>,
    ) -> (oneshot::Sender<()>, JoinHandle<()>) {
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/revocations/stream", get(stream::revocation_stream))
            .route("/token", axum::routing::post(exchange::token))
            .with_state(shared);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, server)
    }

    /// The issuer identifier (`http://127.0.0.1:<port>`), also its base URL.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Guard settings for tokens of this issuer meant for `audience`.
    /// The stream's client is [`STREAM_CLIENT_ID`] / [`STREAM_CLIENT_SECRET`].
    pub fn config(&self, audience: &str) -> GuardConfig {
        GuardConfig::new(self.issuer(), audience)
            .with_client_credentials(STREAM_CLIENT_ID, STREAM_CLIENT_SECRET)
    }

    /// A token builder with valid defaults: signed by the current key, `sub`
    /// `user-1`, `aud` `["order","payment","inventory"]`, `client_id`
    /// `gateway`, no roles or scopes, valid for 5 minutes, fresh `jti` and `sid`.
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(self.issuer(), &self.current_key())
    }

    /// The key tokens are signed with by default.
    pub fn current_key(&self) -> Arc<TestKey> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The published key `kid`.
    pub fn key(&self, kid: &str) -> Option<Arc<TestKey>> {
        self.published().into_iter().find(|k| k.kid() == kid)
    }

    /// The published key of `kind` (the first one).
    pub fn key_of(&self, kind: KeyKind) -> Arc<TestKey> {
        self.published()
            .into_iter()
            .find(|k| k.kind() == kind)
            .expect("a published key of this kind")
    }

    fn published(&self) -> Vec<Arc<TestKey>> {
        self.shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rotation: publishes a new key of `kind` (kid `<kind>-<n>`), makes it the
    /// signing key, keeps the old ones published. Returns the new key.
    pub fn rotate(&self, kind: KeyKind) -> Arc<TestKey> {
        let mut published = self
            .shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let kid = format!(
            "{}-{}",
            format!("{kind:?}").to_lowercase(),
            published.len() + 1
        );
        let key = TestKey::generate(kind, &kid);
        published.push(key.clone());
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = key.clone();
        key
    }

    /// Stops publishing the key `kid`.
    pub fn unpublish(&self, kid: &str) {
        self.shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| k.kid() != kid);
    }

    /// The `Cache-Control: max-age` of the JWKS response (default 300).
    pub fn set_max_age(&self, secs: u64) {
        self.shared.max_age.store(secs, Ordering::Relaxed);
    }

    /// The revocation stream's URL (`<issuer>/revocations/stream`).
    pub fn revocation_stream_url(&self) -> url::Url {
        format!("{}/revocations/stream", self.issuer())
            .parse()
            .expect("a valid URL")
    }

    /// Publishes a revocation on the stream (kept for replay); returns its event id.
    pub fn publish(&self, revocation: &Revocation) -> u64 {
        let mut data = serde_json::to_value(revocation).expect("a revocation serializes");
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        data["at"] = at.into();
        let mut log = self
            .shared
            .revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let id = log.len() as u64 + 1;
        log.push((id, data.to_string()));
        // Sent while holding the log lock, so a new subscriber sees each event
        // either in the backlog or live.
        let _ = self.shared.live.send((id, data.to_string()));
        id
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::Relaxed)
    }

    /// How many tokens `/token` issued by exchange (see [`exchange`]).
    pub fn exchanges(&self) -> usize {
        self.shared.exchanges.load(Ordering::Relaxed)
    }

    /// The longest life of a token issued by exchange (default 300 s).
    pub fn set_exchange_ttl(&self, secs: u64) {
        self.shared.exchange_ttl.store(secs, Ordering::Relaxed);
    }

    /// An [`Exchanger`](crate::Exchanger) acting as `client` at this issuer's `/token`.
    pub fn exchanger(&self, client: &str) -> crate::Exchanger {
        crate::Exchanger::new(
            format!("{}/token", self.issuer())
                .parse()
                .expect("a valid URL"),
            crate::ClientCredentials {
                id: client.to_owned(),
                secret: format!("{client}-dev-secret").into(),
            },
        )
        .expect("an HTTP client")
    }

    /// How many times the discovery document was fetched.
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::Relaxed)
    }

    /// Stops the server: the port refuses connections from now on.
    pub async fn stop(&self) {
        self.shared.stopping.send_replace(true);
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, handle)) = server {
            let _ = stop.send(());
            let _ = handle.await;
        }
    }
}

impl TestIssuer {
    /// Starts serving again on the same address, with the same keys.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the same address again");
        self.shared.stopping.send_replace(false);
        let server = Self::serve(listener, self.shared.clone());
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
            handle.abort();
        }
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.discovery_requests.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/jwks.json", shared.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.jwks_requests.fetch_add(1, Ordering::Relaxed);
    let keys: Vec<Value> = shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|k| k.jwk().clone())
        .collect();
    let max_age = format!("public, max-age={}", shared.max_age.load(Ordering::Relaxed));
    (
        [(http::header::CACHE_CONTROL, max_age)],
        Json(json!({ "keys": keys })),
    )
}
