//! The login flow between `/authorize` and `POST /login`, kept in the browser
//! as an AES-256-GCM sealed cookie rather than a database row.
//!
//! Why a cookie: the flow is short-lived (10 minutes), tied to one browser,
//! and most flows are abandoned; a sealed cookie costs no database writes or
//! clean-up, works across IdP replicas, and the browser cannot read or alter
//! it. It holds the validated authorization request and the CSRF token that
//! the form must echo (a synchronizer token the attacker cannot read).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::LOGIN_FLOW_TTL;
use platform::crypto::{SealKey, b64url, b64url_decode, random_token};

/// The validated authorization request, waiting for the person to sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The `sub` of the request's `id_token_hint`: only that user may
    /// complete it (OIDC Core §3.1.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sub: Option<String>,
}

impl AuthRequest {
    /// This request again, as a path on the IdP (`/authorize?…`): where a
    /// person continues once their session can answer it without a form.
    pub fn authorize_path(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope);
        if let Some(state) = &self.state {
            q.append_pair("state", state);
        }
        if let Some(nonce) = &self.nonce {
            q.append_pair("nonce", nonce);
        }
        if let Some(challenge) = &self.code_challenge {
            q.append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
        format!("/authorize?{}", q.finish())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginFlow {
    pub csrf: String,
    /// Unix time after which the flow is refused.
    pub exp: i64,
    pub request: AuthRequest,
    /// Set once the first factor is done and the second is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<SecondFactorDue>,
}

/// A sign-in waiting for its second factor ([`crate::http::second_factor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorDue {
    /// Who proved the first factor.
    pub user: Uuid,
    /// The live session being stepped up, when a client asked for a second
    /// factor and the session's password sign-in stood for the first one;
    /// `None` after a password typed in this flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    /// A person who must have a second factor and has none sets one up
    /// here: the new secret (base64url), kept in this sealed flow until a
    /// code of it is entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// The person has an authenticator app (the code form is shown).
    #[serde(default)]
    pub app: bool,
    /// The person has passkeys ("Use a passkey" is offered).
    #[serde(default)]
    pub passkeys: bool,
}

const AAD: &[u8] = b"baton-idp login flow v1";

impl LoginFlow {
    pub fn new(request: AuthRequest) -> Self {
        let exp = (OffsetDateTime::now_utc() + LOGIN_FLOW_TTL).unix_timestamp();
        Self {
            csrf: random_token(32),
            exp,
            request,
            pending: None,
        }
    }

    /// This flow once the first factor of `user` is done (or stood for by
    /// the live `session`): the second is asked for next.
    pub fn second_factor_due(self, user: Uuid, session: Option<Uuid>) -> Self {
        Self {
            pending: Some(SecondFactorDue {
                user,
                session,
                setup: None,
                app: false,
                passkeys: false,
            }),
            ..self
        }
    }

    pub fn seal(&self, sealer: &SealKey) -> String {
        let json = serde_json::to_vec(self).expect("a login flow always serialises");
        b64url(&sealer.seal(&json, AAD))
    }

    /// `None` for anything not sealed by us, or expired.
    pub fn open(sealer: &SealKey, cookie: &str) -> Option<Self> {
        let sealed = b64url_decode(cookie)?;
        let flow: Self = serde_json::from_slice(&sealer.open(&sealed, AAD)?).ok()?;
        (flow.exp > OffsetDateTime::now_utc().unix_timestamp()).then_some(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "gateway".into(),
            redirect_uri: "http://localhost:8080/auth/callback".into(),
            scope: "openid".into(),
            state: Some("s".into()),
            nonce: None,
            code_challenge: None,
            expected_sub: None,
        }
    }

    #[test]
    fn a_sealed_flow_round_trips_and_resists_tampering_and_age() {
        let sealer = MasterKey::generate().derive("flow");
        let flow = LoginFlow::new(request());
        let cookie = flow.seal(&sealer);
        let back = LoginFlow::open(&sealer, &cookie).unwrap();
        assert_eq!(back.request, flow.request);
        assert_eq!(back.csrf, flow.csrf);
        assert!(LoginFlow::open(&MasterKey::generate().derive("flow"), &cookie).is_none());
        assert!(LoginFlow::open(&sealer, &cookie[1..]).is_none());
        assert!(LoginFlow::open(&sealer, "garbage!").is_none());
        let old = LoginFlow { exp: 0, ..flow };
        assert!(LoginFlow::open(&sealer, &old.seal(&sealer)).is_none());
    }
}
