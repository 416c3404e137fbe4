//! A real issuer for tests (feature `test-issuer`): serves a discovery
//! document and a JWKS over HTTP on `127.0.0.1:0`, holds real RSA (RS256),
//! EC P-256 (ES256) and Ed25519 (EdDSA) keys, and mints valid tokens — and
//! forged ones, for the negative tests.
//!
//! ```ignore
//! let issuer = TestIssuer::start().await;
//! let guard = Guard::new(issuer.config("order"));
//! let token = issuer.token().sub("alice").roles(&["customer"]).scope("orders:write").sign();
//! let forged = issuer.token().header("alg", "none").sign_unsigned();
//! ```
//!
//! Until the real IdP is wired into a crate's tests, services can use it in
//! their `[dev-dependencies]`: `guard = { workspace = true, features = ["test-issuer"] }`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::jwks::unix_now;
use crate::{GuardConfig, Revocation};

mod exchange;

/// Seconds since the epoch, as in `exp`/`iat`/`nbf`.
pub fn now() -> i64 {
    unix_now()
}

/// The `sub` of the demo realm's alice (customer), carol (customer, support)
/// and bob (admin) in the services' tests.
pub const ALICE: &str = "7b0c5a7e-0000-4000-8000-00000000a11c";
pub const CAROL: &str = "7b0c5a7e-0000-4000-8000-0000000ca201";
pub const BOB: &str = "7b0c5a7e-0000-4000-8000-000000000b0b";

/// Asserts that `response` has `status` (showing the body when not) and
/// returns its JSON body (`Null` when it has none).
pub async fn expect(response: reqwest::Response, status: http::StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The kind of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048, RS256.
    Rsa,
    /// EC P-256, ES256.
    Ec,
    /// Ed25519, EdDSA.
    Ed,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key with its `kid` and public JWK.
pub struct TestKey {
    kid: String,
    kind: KeyKind,
    pair: Pair,
    jwk: Value,
}

impl TestKey {
    /// A fresh key (not published anywhere).
    pub fn generate(kind: KeyKind, kid: &str) -> Arc<Self> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (pair, jwk) = match kind {
            KeyKind::Rsa => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                                 "n": b64(&public.n), "e": b64(&public.e)});
                (Pair::Rsa(pair), jwk)
            }
            KeyKind::Ec => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("EC key generation");
                let point = pair.public_key().as_ref(); // 0x04 || x || y
                let jwk = json!({"kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                                 "x": b64(&point[1..33]), "y": b64(&point[33..65])});
                (Pair::Ec(pair), jwk)
            }
            KeyKind::Ed => {
                let pair = Ed25519KeyPair::generate().expect("Ed25519 key generation");
                let jwk = json!({"kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": kid, "crv": "Ed25519",
                                 "x": b64(pair.public_key().as_ref())});
                (Pair::Ed(pair), jwk)
            }
        };
        Arc::new(Self {
            kid: kid.to_owned(),
            kind,
            pair,
            jwk,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The JOSE algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa => "RS256",
            KeyKind::Ec => "ES256",
            KeyKind::Ed => "EdDSA",
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`): what an
    /// algorithm-confusion attacker uses as an HMAC secret.
    pub fn public_key_pem(&self) -> String {
        let der = match &self.pair {
            Pair::Rsa(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ec(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ed(p) => p.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .expect("public key DER");
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Pair::Ec(p) => p
                .sign(&SystemRandom::new(), message)
                .expect("EC signing")
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
        }
    }
}

struct Shared {
    issuer: String,
    /// Published keys, in JWKS order.
    published: Mutex<Vec<Arc<TestKey>>>,
    /// The key `token()` signs with by default.
    current: Mutex<Arc<TestKey>>,
    jwks_requests: AtomicUsize,
    discovery_requests: AtomicUsize,
    max_age: AtomicU64,
    /// Every published revocation event: (id, JSON data).
    revocations: Mutex<Vec<(u64, String)>>,
    live: broadcast::Sender<(u64, String)>,
    /// `true` while stopped: ends open event streams so shutdown completes.
    stopping: watch::Sender<bool>,
    /// Tokens issued by exchange at `/token`.
    exchanges: AtomicUsize,
    /// Longest life of an exchanged token, seconds (default 300).
    exchange_ttl: AtomicU64,
}

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
            .route("/revocations/stream", get(revocation_stream))
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
        self.published().into_iter().find(|k| k.kid == kid)
    }

    /// The published key of `kind` (the first one).
    pub fn key_of(&self, kind: KeyKind) -> Arc<TestKey> {
        self.published()
            .into_iter()
            .find(|k| k.kind == kind)
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
            .retain(|k| k.kid != kid);
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
                secret: format!("{client}-dev-secret"),
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
        .map(|k| k.jwk.clone())
        .collect();
    let max_age = format!("public, max-age={}", shared.max_age.load(Ordering::Relaxed));
    (
        [(http::header::CACHE_CONTROL, max_age)],
        Json(json!({ "keys": keys })),
    )
}

/// The client the test issuer's revocation stream lets in (HTTP Basic).
pub const STREAM_CLIENT_ID: &str = "test-service";
/// Its secret.
pub const STREAM_CLIENT_SECRET: &str = "test-service-secret";

/// Server-Sent Events as the IdP sends them (see [`crate::subscriber`]): for
/// the stream's client only; the backlog after `Last-Event-ID`, `caught-up`,
/// then live events, each followed by `caught-up`, and `caught-up` every
/// second, until the issuer stops.
async fn revocation_stream(
    State(shared): State<Arc<Shared>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive};
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{STREAM_CLIENT_ID}:{STREAM_CLIENT_SECRET}"))
    );
    if headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            http::StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Basic realm=\"test\"")],
        )
            .into_response();
    }
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (backlog, live) = {
        let log = shared.revocations.lock().unwrap_or_else(|e| e.into_inner());
        let backlog: Vec<(u64, String)> =
            log.iter().filter(|(id, _)| *id > after).cloned().collect();
        (backlog, shared.live.subscribe())
    };
    let stopping = shared.stopping.subscribe();
    let caught_up = |position: u64| {
        Event::default()
            .id(position.to_string())
            .event("caught-up")
            .data(json!({ "position": position, "at": now() * 1000 }).to_string())
    };
    let mut queue: std::collections::VecDeque<Event> = backlog
        .iter()
        .map(|(id, data)| {
            Event::default()
                .id(id.to_string())
                .event("revocation")
                .data(data.clone())
        })
        .collect();
    let position = backlog.last().map_or(after, |(id, _)| *id);
    queue.push_back(caught_up(position));
    let tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let state = (queue, live, stopping, tick, position);
    let stream = futures::stream::unfold(
        state,
        move |(mut queue, mut live, mut stopping, mut tick, mut position)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (queue, live, stopping, tick, position),
                    ));
                }
                if *stopping.borrow() {
                    return None;
                }
                tokio::select! {
                    event = live.recv() => match event {
                        Ok((id, data)) => {
                            position = id;
                            queue.push_back(Event::default().id(id.to_string()).event("revocation").data(data));
                            queue.push_back(caught_up(position));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = tick.tick() => queue.push_back(caught_up(position)),
                    changed = stopping.changed() => if changed.is_err() {
                        return None;
                    },
                }
            }
        },
    );
    axum::response::Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Builds a token: start valid, then break exactly what the test is about.
#[derive(Clone)]
pub struct TokenBuilder {
    key: Arc<TestKey>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl TokenBuilder {
    /// A valid token of `issuer` signed with `key` (for attack suites against
    /// a real IdP: forge tokens claiming its issuer with a key it never published).
    pub fn new(issuer: &str, key: &Arc<TestKey>) -> Self {
        let now = unix_now();
        let header = json!({"alg": key.alg(), "typ": "at+jwt", "kid": key.kid()});
        let claims = json!({
            "iss": issuer,
            "sub": "user-1",
            "aud": ["order", "payment", "inventory"],
            "client_id": "gateway",
            "scope": "",
            "roles": [],
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sid": uuid::Uuid::new_v4().to_string(),
        });
        Self {
            key: key.clone(),
            header: into_map(header),
            claims: into_map(claims),
        }
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// `sub`.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// `aud`.
    pub fn aud(self, aud: &[&str]) -> Self {
        self.claim("aud", aud.to_vec())
    }

    /// `roles`.
    pub fn roles(self, roles: &[&str]) -> Self {
        self.claim("roles", roles.to_vec())
    }

    /// `scope` (space-separated).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// `client_id`.
    pub fn client_id(self, client_id: &str) -> Self {
        self.claim("client_id", client_id)
    }

    /// Valid from `iat`/`nbf` = now + `from` to `exp` = now + `until` (seconds, may be negative).
    pub fn valid(self, from: i64, until: i64) -> Self {
        let now = unix_now();
        self.claim("iat", now + from)
            .claim("nbf", now + from)
            .claim("exp", now + until)
    }

    /// Signs with `key` (sets `alg` and `kid` to match it).
    pub fn key(mut self, key: &Arc<TestKey>) -> Self {
        self.header.insert("alg".into(), key.alg().into());
        self.header.insert("kid".into(), key.kid().into());
        self.key = key.clone();
        self
    }

    /// The claims as they will be signed.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    fn signing_input(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(Value::Object(self.header.clone()).to_string());
        let claims = URL_SAFE_NO_PAD.encode(Value::Object(self.claims.clone()).to_string());
        format!("{header}.{claims}")
    }

    /// Signs `payload` verbatim (not the builder's claims) with the builder's
    /// header and key: for payloads a JSON map cannot express, such as
    /// duplicate members.
    pub fn sign_payload(&self, payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(Value::Object(self.header.clone()).to_string());
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }

    /// Signs with the builder's key (whatever the header says).
    pub fn sign(&self) -> String {
        let input = self.signing_input();
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }

    /// No signature at all (`alg: none` style): `header.payload.`
    pub fn sign_unsigned(&self) -> String {
        format!("{}.", self.signing_input())
    }

    /// An HMAC-SHA256 signature with `secret` (algorithm confusion: pass the
    /// public key PEM and set `alg` to `HS256`).
    pub fn sign_hs256(&self, secret: &[u8]) -> String {
        let input = self.signing_input();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
