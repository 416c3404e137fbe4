//! DPoP (RFC 9449): sender-constrained access tokens, shared by the IdP (which
//! binds tokens to a client's key at `/token`) and every resource server
//! (which checks, per request, that the caller holds that key).
//!
//! * [`verify`] — one proof JWT against one request (RFC 9449 §4.3): header
//!   `typ` = `dpop+jwt`, `alg` from [`ALGORITHMS`], `jwk` a public key of that
//!   algorithm (private members refused), the signature with that key, `htm`
//!   = the method, `htu` = the request's URL without query and fragment,
//!   `iat` within [`MAX_AGE_SECS`] (plus the caller's clock leeway), a `jti`,
//!   and `ath` = base64url(SHA-256(access token)) when a token is presented.
//!   Answers the key's RFC 7638 thumbprint (`jkt`), which `cnf.jkt` must equal.
//! * [`ReplayCache`] — a bounded in-process memory of used proofs, for
//!   resource servers (the IdP keeps its own in PostgreSQL, shared by every
//!   replica). Per process is enough for a resource server: a proof is good
//!   only at the URL, method and token it names and only for about a minute,
//!   so replaying it needs the proof itself (taken from TLS or a log); with N
//!   replicas behind a balancer it could then be used at most once more on
//!   each other replica within that minute.
//! * [`DpopKey`] — the client side: a fresh P-256 key that signs proofs, for
//!   the e2e suite, the bench and any Rust client.
//!
//! Everything cryptographic is jsonwebtoken's (aws-lc-rs): JWK parsing,
//! `DecodingKey::from_jwk`, signature checks and RFC 7638 thumbprints; what is
//! written here is only the RFC's list of checks.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::claims::unix_now;

/// The request header that carries a proof.
pub const HEADER: &str = "dpop";

/// The proof algorithms accepted (those the IdP itself signs with).
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

/// [`ALGORITHMS`] as advertised: `DPoP algs="…"` and the IdP's
/// `dpop_signing_alg_values_supported`.
pub const ALGORITHM_NAMES: [&str; 3] = ["ES256", "RS256", "EdDSA"];

/// How old a proof may be (its `iat`), before the verifier's clock leeway.
pub const MAX_AGE_SECS: i64 = 60;

/// Longest proof accepted (a proof carries an RSA key at most: ~1.5 KiB).
const MAX_PROOF_BYTES: usize = 4096;

/// Longest `jti` accepted (the RFC suggests 96 bits of randomness).
const MAX_JTI_BYTES: usize = 128;

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof is refused; the text is the `error_description` of
/// `invalid_dpop_proof` and never echoes the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("a DPoP proof is required")]
    Missing,
    #[error("more than one DPoP header")]
    Multiple,
    #[error("DPoP proof is not a compact JWS")]
    Malformed,
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    #[error("DPoP proof algorithm is not accepted")]
    Algorithm,
    #[error("DPoP proof jwk must be a public key for its alg")]
    Key,
    #[error("DPoP proof signature is invalid")]
    Signature,
    #[error("DPoP proof claims are missing or invalid")]
    Claims,
    #[error("DPoP proof htm does not match the request method")]
    Method,
    #[error("DPoP proof htu does not match the request URL")]
    Url,
    #[error("DPoP proof is too old or issued in the future")]
    IssuedAt,
    #[error("DPoP proof ath does not match the access token")]
    TokenHash,
    #[error("DPoP proof is signed by another key than the token is bound to")]
    WrongKey,
    #[error("DPoP proof has been used before")]
    Replayed,
    #[error("too many DPoP proofs in flight; retry shortly")]
    ReplayCacheFull,
}

/// The request a proof must be made for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `htm`: the HTTP method.
    pub method: &'a str,
    /// `htu`: the URL the request was sent to (query and fragment ignored).
    pub url: &'a Url,
    /// The access token sent with the request (`ath` required), if any.
    pub access_token: Option<&'a str>,
    /// Clock skew allowed on `iat`, both ways.
    pub leeway_secs: i64,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key: `cnf.jkt`.
    pub jkt: String,
    /// The key under which a replay is recognised: SHA-256 of `jkt` and `jti`.
    pub replay_key: [u8; 32],
    /// `iat`, seconds since the epoch.
    pub iat: i64,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Map<String, Value>>,
}

#[derive(Serialize, Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

/// The single `DPoP` header of a request: `Ok(None)` when absent.
pub fn header(headers: &http::HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Multiple);
    }
    value.to_str().map(Some).map_err(|_| ProofError::Malformed)
}

/// Verifies `proof` for the request `expected` (see the module's doc). The
/// caller checks the replay ([`ReplayCache`], or the IdP's table) and, for
/// a bound token, that `jkt` equals its `cnf.jkt`.
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let encoded_header = proof.split('.').next().unwrap_or_default();
    let header: ProofHeader = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(ProofError::Malformed)?;
    if !header
        .typ
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError::WrongType);
    }
    let alg = header
        .alg
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| ALGORITHMS.contains(a))
        .ok_or(ProofError::Algorithm)?;
    let jwk = header.jwk.ok_or(ProofError::Key)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::Key);
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk)).map_err(|_| ProofError::Key)?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if !fits {
        return Err(ProofError::Key);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Key)?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => ProofError::Signature,
            jsonwebtoken::errors::ErrorKind::Json(_) => ProofError::Claims,
            _ => ProofError::Malformed,
        })?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::Claims);
    }
    if claims.htm != expected.method {
        return Err(ProofError::Method);
    }
    if !Url::parse(&claims.htu).is_ok_and(|htu| same_target(&htu, expected.url)) {
        return Err(ProofError::Url);
    }
    let now = unix_now();
    if claims.iat > now + expected.leeway_secs
        || claims.iat < now - MAX_AGE_SECS - expected.leeway_secs
    {
        return Err(ProofError::IssuedAt);
    }
    match (expected.access_token, &claims.ath) {
        (Some(token), Some(ath)) if *ath == token_hash(token) => {}
        (None, _) => {}
        _ => return Err(ProofError::TokenHash),
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| ProofError::Key)?;
    let replay_key = sha256(&[jkt.as_bytes(), b".", claims.jti.as_bytes()].concat());
    Ok(Proof {
        jkt,
        replay_key,
        iat: claims.iat,
    })
}

/// RFC 9449 §4.3 step 9: `htu` names the request's URL, ignoring query and
/// fragment (scheme, host and default port normalised by `url`).
fn same_target(htu: &Url, expected: &Url) -> bool {
    let bare = |u: &Url| {
        let mut u = u.clone();
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    bare(htu) == bare(expected)
}

/// `ath`: base64url(SHA-256(the access token)).
pub fn token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(access_token.as_bytes()))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Proofs seen recently, for a resource server (see the module's doc).
///
/// Every entry lives the same time (a proof's whole acceptance window), so
/// entries expire in insertion order: a queue purges them without scanning.
/// Bounded: when full of live entries, new proofs are refused
/// ([`ProofError::ReplayCacheFull`]) rather than an entry forgotten early,
/// which would let its proof be replayed.
pub struct ReplayCache {
    state: Mutex<ReplayState>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct ReplayState {
    seen: HashSet<[u8; 32]>,
    expiry: VecDeque<(Instant, [u8; 32])>,
}

impl ReplayCache {
    /// A cache of at most `capacity` proofs, for a verifier allowing `leeway`.
    pub fn new(capacity: usize, leeway: Duration) -> Self {
        Self {
            state: Mutex::default(),
            capacity,
            // A proof is accepted from `iat - leeway` to `iat + MAX_AGE + leeway`.
            ttl: Duration::from_secs(MAX_AGE_SECS as u64) + 2 * leeway,
        }
    }

    /// Records `proof`; [`ProofError::Replayed`] if it was recorded before.
    pub fn first_use(&self, proof: &Proof) -> Result<(), ProofError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(at, key)) = state.expiry.front() {
            if at > now {
                break;
            }
            state.expiry.pop_front();
            state.seen.remove(&key);
        }
        if state.seen.contains(&proof.replay_key) {
            return Err(ProofError::Replayed);
        }
        if state.seen.len() >= self.capacity {
            return Err(ProofError::ReplayCacheFull);
        }
        state.seen.insert(proof.replay_key);
        state.expiry.push_back((now + self.ttl, proof.replay_key));
        Ok(())
    }
}

/// A client's DPoP key (P-256, ES256), generated in memory: signs proofs.
pub struct DpopKey {
    encoding: EncodingKey,
    jwk: Jwk,
    jkt: String,
}

impl DpopKey {
    /// A fresh key.
    ///
    /// # Panics
    /// When the system's randomness fails (as key generation anywhere would).
    pub fn generate() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("P-256 key generation");
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("public JWK of a P-256 key");
        jwk.common = Default::default();
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .expect("thumbprint of a P-256 key");
        Self { encoding, jwk, jkt }
    }

    /// The key's RFC 7638 thumbprint: what tokens bound to it carry in `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The claims of a proof for `method` `url` (query and fragment dropped),
    /// with `ath` when `access_token` is given: a fresh `jti`, `iat` now.
    pub fn claims(&self, method: &str, url: &str, access_token: Option<&str>) -> Value {
        let mut htu = url.split(['?', '#']).next().unwrap_or(url).to_owned();
        if let Ok(parsed) = Url::parse(&htu) {
            htu = parsed.to_string();
        }
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).expect("system randomness");
        serde_json::to_value(ProofClaims {
            jti: URL_SAFE_NO_PAD.encode(jti),
            htm: method.to_owned(),
            htu,
            iat: unix_now(),
            ath: access_token.map(token_hash),
        })
        .unwrap_or_default()
    }

    /// A proof for `method` `url` (and `access_token`, if any).
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.sign(&self.claims(method, url, access_token))
    }

    /// Signs any claims as a proof with this key (tests make wrong ones).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("ES256 signing")
    }
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://shop.example/api/orders";

    fn expected<'a>(url: &'a Url, token: Option<&'a str>) -> Expected<'a> {
        Expected {
            method: "GET",
            url,
            access_token: token,
            leeway_secs: 5,
        }
    }

    fn with(key: &DpopKey, name: &str, value: Value) -> String {
        let mut claims = key.claims("GET", URL, Some("tok"));
        claims[name] = value;
        key.sign(&claims)
    }

    #[test]
    fn a_proof_verifies_and_names_its_key() {
        let key = DpopKey::generate();
        let url = Url::parse(URL).unwrap();
        let proof = verify(
            &key.proof(
                "GET",
                "https://SHOP.example:443/api/orders?x=1",
                Some("tok"),
            ),
            &expected(&url, Some("tok")),
        )
        .unwrap();
        assert_eq!(proof.jkt, key.jkt());
        assert_eq!(key.jkt().len(), 43);
    }

    #[test]
    fn each_rule_is_enforced() {
        let key = DpopKey::generate();
        let url = Url::parse(URL).unwrap();
        let now = unix_now();
        let cases = [
            (key.proof("POST", URL, Some("tok")), ProofError::Method),
            (
                key.proof("GET", "https://shop.example/api/payments", Some("tok")),
                ProofError::Url,
            ),
            (
                key.proof("GET", "http://shop.example/api/orders", Some("tok")),
                ProofError::Url,
            ),
            (key.proof("GET", URL, Some("other")), ProofError::TokenHash),
            (key.proof("GET", URL, None), ProofError::TokenHash),
            (with(&key, "iat", json!(now - 120)), ProofError::IssuedAt),
            (with(&key, "iat", json!(now + 60)), ProofError::IssuedAt),
            (with(&key, "jti", json!("")), ProofError::Claims),
            ("e30.e30.c2ln".into(), ProofError::WrongType),
            ("not a jwt".into(), ProofError::Malformed),
        ];
        for (proof, error) in cases {
            assert_eq!(
                verify(&proof, &expected(&url, Some("tok"))),
                Err(error.clone()),
                "{error}"
            );
        }
    }

    #[test]
    fn a_tampered_proof_or_a_private_key_in_the_header_is_refused() {
        let key = DpopKey::generate();
        let url = Url::parse(URL).unwrap();
        let proof = key.proof("GET", URL, Some("tok"));
        let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
        let other = DpopKey::generate().proof("GET", URL, Some("tok"));
        parts[2] = other.split('.').nth(2).unwrap().to_owned();
        assert_eq!(
            verify(&parts.join("."), &expected(&url, Some("tok"))),
            Err(ProofError::Signature)
        );
        let mut header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
        header["jwk"]["d"] = json!("AAAA");
        parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        assert_eq!(
            verify(&parts.join("."), &expected(&url, Some("tok"))),
            Err(ProofError::Key)
        );
        header["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
        header["alg"] = json!("HS256");
        parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        assert_eq!(
            verify(&parts.join("."), &expected(&url, Some("tok"))),
            Err(ProofError::Algorithm)
        );
    }

    #[test]
    fn the_replay_cache_refuses_a_second_use_and_never_forgets_early() {
        let key = DpopKey::generate();
        let url = Url::parse(URL).unwrap();
        let cache = ReplayCache::new(1, Duration::from_secs(5));
        let first = verify(&key.proof("GET", URL, None), &expected(&url, None)).unwrap();
        cache.first_use(&first).unwrap();
        assert_eq!(cache.first_use(&first), Err(ProofError::Replayed));
        let second = verify(&key.proof("GET", URL, None), &expected(&url, None)).unwrap();
        assert_eq!(cache.first_use(&second), Err(ProofError::ReplayCacheFull));
    }
}
