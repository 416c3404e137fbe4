//! The issuer's signing keys, fetched over HTTP and kept fresh.
//!
//! * The JWKS URL comes from the issuer's discovery document
//!   (`<issuer>/.well-known/openid-configuration`, whose `issuer` must match
//!   exactly), unless configured with `GUARD_JWKS_URI`.
//! * Keys are kept for the response's `Cache-Control: max-age`, bounded, and
//!   refreshed in the background at three quarters of that time.
//! * A token with an unknown `kid` triggers a refetch, at most once per
//!   `GUARD_JWKS_REFETCH_SECS`; concurrent requests wait for the same fetch.
//!   A known `kid` with a bad signature never triggers one.
//! * When the IdP is unreachable the last good keys keep being used; the
//!   failure is reported by [`JwksStatus`] (for `/readyz`), and retried with
//!   backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::claims::unix_now;
use crate::config::GuardConfig;
use crate::error::{AuthError, TokenError};

/// Largest discovery or JWKS document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Smallest RSA modulus accepted (RFC 8725 §3.5 / NIST: 2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// A verification key from the JWKS.
pub(crate) struct VerifyKey {
    /// The algorithms this key may verify: its `alg` when published, else
    /// every allowed algorithm of its type (and curve).
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

type KeySet = HashMap<String, Arc<VerifyKey>>;

/// Health of the key cache, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksStatus {
    /// Keys are available: tokens can be validated.
    pub ready: bool,
    pub state: JwksState,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    /// The `kid`s currently trusted.
    pub kids: Vec<String>,
    /// When keys were last fetched successfully (seconds since the epoch).
    pub last_refresh: Option<i64>,
    /// The last fetch error, while it lasts.
    pub last_error: Option<String>,
    /// Fetch failures since the last success.
    pub consecutive_failures: u32,
}

/// Lifecycle of the key cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksState {
    /// No fetch has completed yet.
    Loading,
    /// Keys are loaded and the last fetch succeeded.
    Ready,
    /// Keys are loaded but the last fetch failed: the last good keys are used.
    Stale,
    /// No keys: every fetch so far failed.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{0}: {1}")]
    Http(String, String),
    #[error("{0}: answered {1}")]
    Status(String, u16),
    #[error("{0}: document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge(String),
    #[error("{0}: invalid document: {1}")]
    Invalid(String, String),
    #[error("discovery names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { found: String, expected: String },
    #[error("JWKS has no usable signing key")]
    NoKeys,
}

struct FetchState {
    jwks_uri: Option<Url>,
    last_on_demand: Option<Instant>,
}

#[derive(Default)]
struct Health {
    attempted: bool,
    last_refresh: Option<i64>,
    last_error: Option<String>,
    consecutive_failures: u32,
    jwks_uri: Option<String>,
}

/// The key cache shared by every clone of a `Guard`.
pub(crate) struct Jwks {
    http: reqwest::Client,
    issuer: String,
    algorithms: Vec<Algorithm>,
    configured_uri: Option<Url>,
    refetch_interval: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    keys: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
    health: Mutex<Health>,
}

impl Jwks {
    /// The cache for `config`'s issuer. Its HTTP client is bounded by
    /// `http_timeout` and follows no redirect; if it cannot be built (no TLS
    /// backend, no trust roots) there is no cache: a default client would
    /// have neither bound.
    pub(crate) fn new(config: &GuardConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            issuer: config.issuer.clone(),
            algorithms: config.algorithms.clone(),
            configured_uri: config.jwks_uri.clone(),
            refetch_interval: config.jwks_refetch_interval,
            min_ttl: config.jwks_min_ttl,
            max_ttl: config.jwks_max_ttl,
            default_ttl: config.jwks_default_ttl,
            keys: RwLock::new(Arc::default()),
            fetch: tokio::sync::Mutex::new(FetchState {
                jwks_uri: config.jwks_uri.clone(),
                last_on_demand: None,
            }),
            health: Mutex::new(Health::default()),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `kid` is still published (as of the last successful fetch).
    pub(crate) fn trusts(&self, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(kid)
    }

    /// The key `kid`, refetching the JWKS (rate-limited) when it is unknown.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<VerifyKey>, AuthError> {
        if let Some(key) = self.current().get(kid) {
            return Ok(key.clone());
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched it while we waited for the lock.
        if let Some(key) = self.current().get(kid) {
            return Ok(key.clone());
        }
        let due = state
            .last_on_demand
            .is_none_or(|t| t.elapsed() >= self.refetch_interval);
        if due {
            state.last_on_demand = Some(Instant::now());
            tracing::info!(kid = %kid.escape_debug(), "unknown kid: refetching JWKS");
            // A failure is recorded in the health; the verdict below covers it.
            let _ = self.refresh_locked(&mut state).await;
        }
        let keys = self.current();
        match keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if keys.is_empty() => Err(AuthError::KeysUnavailable),
            None => Err(TokenError::UnknownKid.into()),
        }
    }

    /// Fetches the keys now (waiting for a fetch in progress); returns how long
    /// they may be cached.
    pub(crate) async fn refresh(&self) -> Result<Duration, FetchError> {
        let mut state = self.fetch.lock().await;
        self.refresh_locked(&mut state).await
    }

    async fn refresh_locked(&self, state: &mut FetchState) -> Result<Duration, FetchError> {
        let result = self.fetch_keys(state).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("guard_jwks_fetches_total", "outcome" => outcome).increment(1);
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.attempted = true;
        health.jwks_uri = state.jwks_uri.as_ref().map(Url::to_string);
        match result {
            Ok((keys, ttl)) => {
                let kids: Vec<_> = keys.keys().cloned().collect();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                health.last_refresh = Some(unix_now());
                health.last_error = None;
                health.consecutive_failures = 0;
                tracing::debug!(?kids, ttl_secs = ttl.as_secs(), "JWKS refreshed");
                Ok(ttl)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good keys");
                health.last_error = Some(e.to_string());
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                // Rediscover next time: the IdP may have moved its JWKS.
                if self.configured_uri.is_none() {
                    state.jwks_uri = None;
                }
                Err(e)
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<(KeySet, Duration), FetchError> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let (body, max_age) = self.get(&jwks_uri).await?;
        let keys = parse_jwks(&body, &self.algorithms)
            .map_err(|e| FetchError::Invalid(jwks_uri.to_string(), e.to_string()))?;
        if keys.is_empty() {
            return Err(FetchError::NoKeys);
        }
        let ttl = max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl);
        Ok((keys, ttl))
    }

    async fn discover(&self) -> Result<Url, FetchError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let url = Url::parse(&url).map_err(|e| FetchError::Invalid(url.clone(), e.to_string()))?;
        let (body, _) = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Invalid(url.to_string(), e.to_string()))?;
        // OpenID Connect Discovery §4.3: the issuer must be exactly ours.
        if doc.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch {
                found: doc.issuer,
                expected: self.issuer.clone(),
            });
        }
        Url::parse(&doc.jwks_uri)
            .map_err(|e| FetchError::Invalid(url.to_string(), format!("jwks_uri: {e}")))
    }

    /// GETs `url`, bounded in size; returns the body and its `max-age`.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let http =
            |e: reqwest::Error| FetchError::Http(url.to_string(), error_chain(&e.without_url()));
        let mut response = self
            .http
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(
                url.to_string(),
                response.status().as_u16(),
            ));
        }
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge(url.to_string()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge(url.to_string()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// Runs forever in the background (until the guard is dropped): refreshes
    /// before the keys expire, retries failures with backoff up to 30 s.
    pub(crate) async fn keep_fresh(this: Weak<Self>) {
        let mut failures = 0u32;
        loop {
            let Some(jwks) = this.upgrade() else { return };
            let delay = match jwks.refresh().await {
                Ok(ttl) => {
                    failures = 0;
                    ttl.mul_f64(0.75)
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30))
                }
            };
            drop(jwks);
            tokio::time::sleep(delay).await;
        }
    }

    pub(crate) fn status(&self) -> JwksStatus {
        let keys = self.current();
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let mut kids: Vec<String> = keys.keys().cloned().collect();
        kids.sort();
        let state = match (
            keys.is_empty(),
            health.attempted,
            health.last_error.is_some(),
        ) {
            (true, false, _) => JwksState::Loading,
            (true, true, _) => JwksState::Unavailable,
            (false, _, true) => JwksState::Stale,
            (false, _, false) => JwksState::Ready,
        };
        JwksStatus {
            ready: !keys.is_empty(),
            state,
            issuer: self.issuer.clone(),
            jwks_uri: health.jwks_uri.clone(),
            kids,
            last_refresh: health.last_refresh,
            last_error: health.last_error.clone(),
            consecutive_failures: health.consecutive_failures,
        }
    }
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused"
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as 0.
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut result = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            result = secs.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    result
}

/// One JWK as published; members we do not use are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// The usable signing keys of a JWKS document. Keys that are not for
/// signature verification, use no allowed algorithm, are symmetric, too weak
/// or malformed are skipped (and logged), so one odd key cannot hide the others.
pub(crate) fn parse_jwks(body: &[u8], allowed: &[Algorithm]) -> Result<KeySet, serde_json::Error> {
    let doc: RawJwks = serde_json::from_slice(body)?;
    let mut keys = KeySet::new();
    for value in doc.keys {
        let jwk = match serde_json::from_value::<RawJwk>(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a malformed JWK");
                continue;
            }
        };
        let kid = jwk.kid.clone();
        match verify_key(jwk, allowed) {
            Ok(key) => {
                if let Some(kid) = kid {
                    keys.insert(kid, Arc::new(key));
                }
            }
            Err(reason) => tracing::debug!(?kid, reason, "skipping JWK"),
        }
    }
    Ok(keys)
}

fn verify_key(jwk: RawJwk, allowed: &[Algorithm]) -> Result<VerifyKey, &'static str> {
    if jwk.kid.as_deref().is_none_or(str::is_empty) {
        return Err("no kid");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key");
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops excludes verify");
    }
    use Algorithm::*;
    let (candidates, key): (&[Algorithm], DecodingKey) =
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => {
                let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                    return Err("RSA key without n or e");
                };
                let modulus = base64_len(n);
                if modulus < MIN_RSA_MODULUS_BYTES {
                    return Err("RSA key shorter than 2048 bits");
                }
                let key =
                    DecodingKey::from_rsa_components(n, e).map_err(|_| "bad RSA components")?;
                (&[RS256, RS384, RS512, PS256, PS384, PS512], key)
            }
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
                    return Err("EC key without x or y");
                };
                let key = DecodingKey::from_ec_components(x, y).map_err(|_| "bad EC components")?;
                (if curve == "P-256" { &[ES256] } else { &[ES384] }, key)
            }
            ("OKP", Some("Ed25519")) => {
                let Some(x) = &jwk.x else {
                    return Err("OKP key without x");
                };
                let key = DecodingKey::from_ed_components(x).map_err(|_| "bad Ed25519 key")?;
                (&[EdDSA], key)
            }
            _ => return Err("unsupported key type (symmetric keys are never used)"),
        };
    let algorithms: Vec<Algorithm> = match jwk.alg.as_deref() {
        Some(alg) => {
            let alg: Algorithm = alg.parse().map_err(|_| "unknown alg")?;
            if !candidates.contains(&alg) {
                return Err("alg does not match the key type");
            }
            vec![alg]
        }
        None => candidates.to_vec(),
    };
    let algorithms: Vec<Algorithm> = algorithms
        .into_iter()
        .filter(|a| allowed.contains(a))
        .collect();
    if algorithms.is_empty() {
        return Err("no allowed algorithm for this key");
    }
    Ok(VerifyKey { algorithms, key })
}

/// Decoded length of unpadded base64url text.
fn base64_len(text: &str) -> usize {
    text.trim_end_matches('=').len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn only_usable_signing_keys_are_kept() {
        let all = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
        let n_2048 = "A".repeat(342);
        let n_512 = "A".repeat(86);
        let doc = json!({ "keys": [
            { "kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": n_2048, "e": "AQAB" },
            { "kty": "RSA", "kid": "no-alg", "n": n_2048, "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": n_2048, "e": "AQAB" },
            { "kty": "RSA", "kid": "weak", "n": n_512, "e": "AQAB" },
            { "kty": "RSA", "kid": "ps512", "alg": "PS512", "n": n_2048, "e": "AQAB" },
            { "kty": "RSA", "kid": "wrong-alg", "alg": "ES256", "n": n_2048, "e": "AQAB" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "RSA", "n": n_2048, "e": "AQAB" },
            { "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA" },
            "not an object",
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes(), &all).unwrap();
        let mut kids: Vec<_> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["no-alg", "rsa"]);
        assert_eq!(keys["rsa"].algorithms, [Algorithm::RS256]);
        assert_eq!(
            keys["no-alg"].algorithms,
            [Algorithm::RS256],
            "narrowed to the allow-list"
        );
    }
}
