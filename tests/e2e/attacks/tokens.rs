//! The forged-token battery (RFC 8725) against every validator of the real
//! stack: the gateway and order, payment and inventory called directly.
//!
//! Positive controls first: the IdP's own token, and the same claims signed
//! again with the IdP's real key by the test, are accepted everywhere; so
//! each refusal below is due to the one thing the forgery changed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guard::testing::{KeyKind, TestKey, TokenBuilder};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Stack, User, call_with_token, cli_tokens};
use crate::revocation_paths::read_endpoints;

const SCOPE: &str = "openid orders:read payments:read inventory:read";

pub(super) fn decode(part: &str) -> Map<String, Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    match serde_json::from_slice(&bytes).expect("JSON") {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn encode(value: &Map<String, Value>) -> String {
    URL_SAFE_NO_PAD.encode(Value::Object(value.clone()).to_string())
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Signs arbitrary access-token claims with the stack's real, active IdP key
/// (opened from its database with its key-encryption key).
pub(super) struct RealKey(idp::keys::KeyStore);

impl RealKey {
    pub(super) async fn open(stack: &Stack) -> RealKey {
        let pool = sqlx::PgPool::connect(&stack.idp_database_url)
            .await
            .expect("the IdP's database");
        let master = idp::crypto::MasterKey::parse(&stack.key_encryption_key).expect("the KEK");
        let store = idp::keys::KeyStore::open(
            pool,
            master.derive("signing-keys"),
            idp::keys::Alg::RS256,
            idp::blocking::Blocking::new(1),
            Duration::from_secs(600),
        )
        .await
        .expect("open the IdP's keys");
        RealKey(store)
    }

    pub(super) async fn sign(&self, typ: &str, claims: &Map<String, Value>) -> String {
        self.0
            .sign_jwt(typ, &Value::Object(claims.clone()))
            .await
            .expect("sign")
            .0
    }
}

/// A tiny HTTP server that counts requests and serves `body` (an attacker's
/// JWKS or certificate): the validators must never fetch it.
async fn attacker_server(body: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

/// What every validator answers `token` with (gateway, order, payment, inventory).
pub(super) async fn answers(stack: &Stack, token: &str) -> Vec<(String, StatusCode, Value)> {
    let mut out = Vec::new();
    for url in read_endpoints(stack) {
        let (status, body, headers) = call_with_token(
            Method::GET,
            url.clone(),
            Some(token),
            None,
            HeaderMap::new(),
        )
        .await;
        if status == StatusCode::UNAUTHORIZED {
            let challenge = headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{url}: 401 without a Bearer challenge: {challenge:?}"
            );
        }
        out.push((url.to_string(), status, body));
    }
    out
}

#[tokio::test]
async fn forged_tokens_are_refused_by_the_gateway_and_every_service() {
    let stack = Stack::start().await;
    let issuer = stack.idp.as_str().trim_end_matches('/').to_owned();
    let tokens = cli_tokens(&stack, User::Alice, SCOPE).await;
    let real = tokens["access_token"].as_str().expect("access token");
    let id_token = tokens["id_token"].as_str().expect("ID token");
    let parts: Vec<&str> = real.split('.').collect();
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    let real_kid = header["kid"].as_str().expect("kid").to_owned();
    let key = RealKey::open(&stack).await;

    // Positive controls.
    let resigned = key.sign("at+jwt", &claims).await;
    for (what, token) in [("the IdP's token", real), ("re-signed", &resigned)] {
        for (url, status, body) in answers(&stack, token).await {
            assert_eq!(status, StatusCode::OK, "{what} at {url}: {body}");
        }
    }

    let (jwks_addr, jwks_hits) = {
        let attacker = TestKey::generate(KeyKind::Rsa, "attacker");
        attacker_server(json!({ "keys": [attacker.jwk()] }).to_string()).await
    };
    let attacker = TestKey::generate(KeyKind::Rsa, &real_kid); // same kid, other key
    let attacker_ec = TestKey::generate(KeyKind::Ec, "attacker-ec");
    let forge = |key: &Arc<TestKey>| {
        let mut b = TokenBuilder::new(&issuer, key);
        for (name, value) in &claims {
            b = b.claim(name, value.clone());
        }
        b
    };
    let jwks_json = reqwest::get(stack.idp.join("jwks.json").expect("url"))
        .await
        .expect("jwks")
        .text()
        .await
        .expect("jwks body");
    let jwks: Value = serde_json::from_str(&jwks_json).expect("jwks JSON");
    let real_jwk = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == real_kid.as_str()))
        .expect("the real key in the JWKS")
        .clone();
    let modulus = URL_SAFE_NO_PAD
        .decode(real_jwk["n"].as_str().expect("n"))
        .expect("n");

    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c.insert(name.to_owned(), value);
        c
    };
    let without = |name: &str| {
        let mut c = claims.clone();
        c.remove(name);
        c
    };
    let tamper = |h: &Map<String, Value>, c: &Map<String, Value>| {
        format!("{}.{}.{}", encode(h), encode(c), parts[2])
    };
    let mut admin_header = header.clone();
    admin_header.insert("alg".into(), "HS256".into());
    let t = now();

    let battery: Vec<(&str, String)> = vec![
        // alg none, in several spellings, with and without a signature part.
        (
            "alg none",
            forge(&attacker).header("alg", "none").sign_unsigned(),
        ),
        (
            "alg None",
            forge(&attacker).header("alg", "None").sign_unsigned(),
        ),
        (
            "alg NONE",
            forge(&attacker).header("alg", "NONE").sign_unsigned(),
        ),
        (
            "alg none, real signature kept",
            format!(
                "{}.{}.{}",
                encode(&{
                    let mut h = header.clone();
                    h.insert("alg".into(), "none".into());
                    h
                }),
                parts[1],
                parts[2]
            ),
        ),
        // Algorithm confusion: HMAC keyed with the public key.
        (
            "HS256 with the public JWK",
            forge(&attacker)
                .header("alg", "HS256")
                .sign_hs256(real_jwk.to_string().as_bytes()),
        ),
        (
            "HS256 with the modulus",
            forge(&attacker).header("alg", "HS256").sign_hs256(&modulus),
        ),
        (
            "HS256 with the JWKS document",
            forge(&attacker)
                .header("alg", "HS256")
                .sign_hs256(jwks_json.as_bytes()),
        ),
        ("RS256 header, HS256 body", tamper(&admin_header, &claims)),
        // kid tricks.
        ("attacker key, real kid", forge(&attacker).sign()),
        (
            "attacker EC key, real kid",
            forge(&attacker_ec).header("kid", real_kid.as_str()).sign(),
        ),
        ("unknown kid", forge(&attacker_ec).sign()),
        ("no kid", forge(&attacker).without_header("kid").sign()),
        ("empty kid", forge(&attacker).header("kid", "").sign()),
        (
            "path traversal kid",
            forge(&attacker)
                .header("alg", "HS256")
                .header("kid", "../../../../../../dev/null")
                .sign_hs256(b""),
        ),
        (
            "SQL injection kid",
            forge(&attacker)
                .header("kid", "x' UNION SELECT 'secret' --")
                .sign(),
        ),
        ("kid as a number", forge(&attacker).header("kid", 1).sign()),
        (
            "huge kid",
            forge(&attacker).header("kid", "k".repeat(6000)).sign(),
        ),
        // Header key injection: the key, or where to find it, in the token.
        (
            "embedded jwk",
            forge(&attacker_ec)
                .header("jwk", attacker_ec.jwk().clone())
                .without_header("kid")
                .sign(),
        ),
        (
            "jku to the attacker's JWKS",
            forge(&attacker)
                .header("kid", "attacker")
                .header("jku", format!("http://{jwks_addr}/jwks.json"))
                .sign(),
        ),
        (
            "x5u to the attacker",
            forge(&attacker)
                .header("kid", "attacker")
                .header("x5u", format!("http://{jwks_addr}/cert.pem"))
                .sign(),
        ),
        (
            "x5c with the attacker's key",
            forge(&attacker)
                .header(
                    "x5c",
                    json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
                )
                .sign(),
        ),
        // Tampering with a real token.
        (
            "claims changed (roles admin)",
            tamper(&header, &with("roles", json!(["admin"]))),
        ),
        (
            "claims changed (another sub)",
            tamper(
                &header,
                &with("sub", json!(uuid::Uuid::new_v4().to_string())),
            ),
        ),
        ("signature removed", format!("{}.{}.", parts[0], parts[1])),
        (
            "signature truncated",
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
        ),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("JWE-shaped (five parts)", format!("{real}.x.y")),
        (
            "signature of another token",
            format!("{}.{}.{}", parts[0], parts[1], {
                let other = resigned.split('.').nth(2).expect("signature");
                other.to_owned()
            }),
        ),
        // Valid signature by the real key, bad claims.
        (
            "expired",
            key.sign("at+jwt", &with("exp", json!(t - 3600))).await,
        ),
        (
            "not yet valid (nbf)",
            key.sign("at+jwt", &with("nbf", json!(t + 3600))).await,
        ),
        ("no exp", key.sign("at+jwt", &without("exp")).await),
        (
            "exp as a string",
            key.sign("at+jwt", &with("exp", json!((t + 300).to_string())))
                .await,
        ),
        (
            "wrong aud",
            key.sign("at+jwt", &with("aud", json!(["billing"]))).await,
        ),
        (
            "aud the client, not a resource",
            key.sign("at+jwt", &with("aud", json!("cli"))).await,
        ),
        ("no aud", key.sign("at+jwt", &without("aud")).await),
        (
            "wrong iss",
            key.sign("at+jwt", &with("iss", json!("http://evil.example")))
                .await,
        ),
        (
            "iss with a trailing slash",
            key.sign("at+jwt", &with("iss", json!(format!("{issuer}/"))))
                .await,
        ),
        ("no iss", key.sign("at+jwt", &without("iss")).await),
        ("no sub", key.sign("at+jwt", &without("sub")).await),
        // Token confusion: an ID token, or a JWT typed as one, is not an access token.
        ("the ID token", id_token.to_owned()),
        ("typ JWT", key.sign("JWT", &claims).await),
        ("typ missing-ish", key.sign("", &claims).await),
        // Size.
        (
            "oversized (100 kB of claims)",
            key.sign("at+jwt", &with("padding", json!("x".repeat(100_000))))
                .await,
        ),
    ];

    for (what, token) in &battery {
        for (url, status, body) in answers(&stack, token).await {
            assert!(
                status == StatusCode::UNAUTHORIZED
                    // hyper refuses a header this large before any handler.
                    || (what.starts_with("oversized")
                        && status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
                "{what} at {url}: {status} {body}"
            );
        }
    }
    // An empty credential is a malformed request (RFC 6750 §3.1: 400
    // invalid_request) or a 401; never accepted.
    for (url, status, body) in answers(&stack, "").await {
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
            "empty token at {url}: {status} {body}"
        );
    }
    assert_eq!(
        jwks_hits.load(Ordering::SeqCst),
        0,
        "a validator followed a jku/x5u header to the attacker"
    );
    eprintln!(
        "forged-token battery: {} forgeries × 4 validators refused",
        battery.len()
    );

    // And after all that, the real token still works (nothing was poisoned:
    // no attacker key entered a JWKS cache under the real kid).
    for (url, status, body) in answers(&stack, real).await {
        assert_eq!(
            status,
            StatusCode::OK,
            "the real token afterwards at {url}: {body}"
        );
    }
}
