//! Tokens for tests: a builder that starts from a valid access token and
//! breaks exactly what a test is about, then signs, leaves unsigned, or
//! HMAC-signs it (algorithm confusion).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::keys::TestKey;
use crate::claims::unix_now;

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

    /// How the user signed in: `acr`, `amr` and `auth_time` = now + `ago`
    /// (seconds, negative for the past), as the IdP writes them.
    pub fn signed_in(self, acr: &str, amr: &[&str], ago: i64) -> Self {
        self.claim("acr", acr)
            .claim("amr", amr.to_vec())
            .claim("auth_time", unix_now() + ago)
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
