//! The test issuer's token endpoint: RFC 8693 token exchange as the IdP does
//! it, for the tests of [`crate::exchange`] and of the services that use it.
//!
//! Any client whose secret is `<client id>-dev-secret` (guard's development
//! default) may exchange a current token of this issuer that names it in `aud`
//! or was issued to it, toward any one audience (the IdP limits it to the
//! client's registered resources; this issuer registers none); the new token keeps
//! the subject's claims, has `aud` = that audience, the requested `scope`
//! (only scopes of the subject), `act` = the client nested over the subject's
//! `act`, `derived_from` = the subject's `jti` then its `derived_from`, and `exp` = the earlier of the subject's and now + the exchange TTL.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::shared::Shared;
use super::token::TokenBuilder;
use crate::claims::unix_now;
use crate::exchange::{ACCESS_TOKEN_TYPE, GRANT_TYPE};

#[derive(serde::Deserialize)]
pub(super) struct Params {
    grant_type: String,
    subject_token: String,
    subject_token_type: String,
    audience: String,
    #[serde(default)]
    scope: Option<String>,
}

fn refuse(status: http::StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn bad(error: &str, description: &str) -> Response {
    refuse(http::StatusCode::BAD_REQUEST, error, description)
}

/// The client authenticated by HTTP Basic with `<id>-dev-secret`.
fn client(headers: &http::HeaderMap) -> Option<String> {
    let basic = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    (secret == format!("{id}-dev-secret")).then(|| id.to_owned())
}

/// The claims of a token this issuer signed (checked against its published key).
fn verified_claims(shared: &Shared, token: &str) -> Option<serde_json::Map<String, Value>> {
    let mut parts = token.split('.');
    let (header_b64, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    let kid = header.get("kid")?.as_str()?;
    let key = shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|k| k.kid() == kid)?
        .clone();
    // RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic: signing the
    // same input again gives the same signature (ECDSA tokens are refused).
    let expected = URL_SAFE_NO_PAD.encode(key.sign(format!("{header_b64}.{payload}").as_bytes()));
    if expected != signature {
        return None;
    }
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: http::HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    let Some(client) = client(&headers) else {
        return refuse(
            http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    };
    if params.grant_type != GRANT_TYPE || params.subject_token_type != ACCESS_TOKEN_TYPE {
        return bad("unsupported_grant_type", "only token exchange");
    }
    let Some(subject) = verified_claims(&shared, &params.subject_token) else {
        return bad(
            "invalid_request",
            "subject_token is not a token of this issuer",
        );
    };
    let exp = subject.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= unix_now() {
        return bad("invalid_request", "subject_token has expired");
    }
    let aud: Vec<&str> = match subject.get("aud") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(a)) => vec![a.as_str()],
        _ => vec![],
    };
    let issued_to = subject.get("client_id").and_then(Value::as_str);
    let issued_to_it = issued_to == Some(client.as_str()) && subject.get("act").is_none();
    if !aud.contains(&client.as_str()) && !issued_to_it {
        return bad(
            "invalid_request",
            "subject_token was not issued for this client",
        );
    }
    if params.audience.is_empty() || params.audience.contains(' ') {
        return bad("invalid_target", "one audience, please");
    }
    let granted = subject.get("scope").and_then(Value::as_str).unwrap_or("");
    let scope = params.scope.unwrap_or_else(|| granted.to_owned());
    if scope
        .split(' ')
        .any(|s| !s.is_empty() && !granted.split(' ').any(|g| g == s))
    {
        return bad("invalid_scope", "scope is not available for this exchange");
    }
    shared.exchanges.fetch_add(1, Ordering::Relaxed);
    let ttl = shared.exchange_ttl.load(Ordering::Relaxed) as i64;
    let exp = exp.min(unix_now() + ttl);
    let key = shared
        .current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut builder = TokenBuilder::new(&shared.issuer, &key);
    for (name, value) in subject.iter() {
        builder = builder.claim(name, value.clone());
    }
    let act = json!({ "sub": client, "act": subject.get("act").cloned() });
    let act = match act {
        Value::Object(mut m) => {
            if m.get("act").is_some_and(Value::is_null) {
                m.remove("act");
            }
            Value::Object(m)
        }
        other => other,
    };
    // The subject's jti, then its own derivation, as the IdP names them.
    let derived_from: Vec<Value> = subject
        .get("jti")
        .into_iter()
        .chain(
            subject
                .get("derived_from")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .cloned()
        .collect();
    let token = builder
        .claim("aud", vec![params.audience.clone()])
        .claim("derived_from", derived_from)
        .claim("scope", scope.clone())
        .claim("exp", exp)
        .claim("nbf", unix_now())
        .claim("jti", uuid::Uuid::new_v4().to_string())
        .claim("act", act)
        .sign();
    axum::Json(json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": exp - unix_now(),
        "scope": scope,
    }))
    .into_response()
}
