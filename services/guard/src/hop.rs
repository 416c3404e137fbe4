//! "What I validated": the identity a service saw in the token it accepted.
//!
//! Every state-changing answer of a resource server carries one, so the first
//! service of a call chain can show the whole relay (service, sub, roles, jti)
//! with, per hop, the token's audience and who acted (the `act` chain).

use crate::Principal;
use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// The service that validated the token (its audience name).
    pub service: String,
    pub sub: String,
    pub client_id: String,
    pub roles: Vec<String>,
    pub jti: String,
    /// The acting party (`act.sub`) of an exchanged token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
    /// The token's `aud`: one service for an exchanged token.
    #[serde(default)]
    pub aud: Vec<String>,
    /// Everyone who acted on the user's behalf, latest hop first (the nested
    /// `act` chain); empty for a token used as issued.
    #[serde(default)]
    pub actors: Vec<String>,
}

impl Hop {
    pub fn validated_by(service: &str, principal: &Principal) -> Self {
        Self {
            service: service.to_owned(),
            sub: principal.sub().to_owned(),
            client_id: principal.client_id().to_owned(),
            roles: principal.roles().to_vec(),
            jti: principal.jti().to_owned(),
            act: principal.act().map(|a| a.sub.clone()),
            aud: principal.aud().to_vec(),
            actors: principal.actors().into_iter().map(str::to_owned).collect(),
        }
    }
}

/// Answers `body` (a JSON object) with `"validated": hop` added; a replayed
/// idempotent answer is marked with `Idempotent-Replayed: true`.
pub fn respond(status: StatusCode, mut body: Value, hop: &Hop, replayed: bool) -> Response {
    if let Value::Object(map) = &mut body {
        map.insert("validated".into(), json!(hop));
    }
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
