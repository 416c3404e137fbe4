//! The access-token contract shared by the issuer (idp) and every validator.
//!
//! RFC 9068 JWT access tokens: header `typ: at+jwt`, and the claims below.

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::derivation::Derivation;

/// The `acr` values Baton's IdP issues and services may demand (RFC 9470).
pub mod acr {
    /// Signed in with a single factor (a password).
    pub const PASSWORD: &str = "urn:baton:acr:pwd";
    /// Signed in with a second factor (TOTP or a recovery code after the
    /// password) or with a passkey that verified the user.
    pub const SECOND_FACTOR: &str = "urn:baton:acr:mfa";
}

/// The JOSE `typ` header of every access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of a Baton access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id (a UUID), or the client id for `client_credentials`.
    pub sub: String,
    /// The resources this token may reach, e.g. `["order","payment","inventory"]`.
    /// Accepts a single string on input, as RFC 7519 allows.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub client_id: String,
    /// Space-separated scopes (RFC 9068 §2.2.3).
    pub scope: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// The IdP session; absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How strongly the user authenticated (OIDC Core §2, RFC 9068 §2.2.1):
    /// [`acr::SECOND_FACTOR`] once a second factor was shown, else
    /// [`acr::PASSWORD`]; absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The methods the user authenticated with (RFC 8176), e.g. `["pwd","otp","mfa"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The acting party of an exchanged token (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The key the token is bound to (RFC 9449 §6.1): present on DPoP-bound tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// An exchanged token's ancestors' jtis, nearest first (see [`Derivation`]):
    /// revoking any of them revokes this token.
    #[serde(default, skip_serializing_if = "Derivation::is_empty")]
    pub derived_from: Derivation,
}

impl AccessClaims {
    /// The scopes as a list.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    /// The RFC 7638 thumbprint of the key a DPoP-bound token is bound to.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }
}

/// RFC 7800 `cnf` with RFC 9449's `jkt`: the SHA-256 JWK thumbprint of the
/// key whose proofs must accompany the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// RFC 8693 `act` claim: who acts on behalf of the subject, possibly nested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Seconds since the Unix epoch, the unit of JWT time claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aud_accepts_a_string_or_an_array() {
        let base = r#""iss":"i","sub":"s","client_id":"c","scope":"a b","exp":2,"iat":1,"nbf":1,"jti":"j""#;
        let one: AccessClaims =
            serde_json::from_str(&format!(r#"{{{base},"aud":"order"}}"#)).unwrap();
        let many: AccessClaims =
            serde_json::from_str(&format!(r#"{{{base},"aud":["order","payment"]}}"#)).unwrap();
        assert_eq!(one.aud, vec!["order"]);
        assert_eq!(many.aud, vec!["order", "payment"]);
        assert_eq!(one.scopes().collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(one.roles.is_empty() && one.sid.is_none() && one.act.is_none());
    }

    #[test]
    fn optional_claims_are_omitted_when_absent() {
        let claims = AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: vec!["order".into()],
            client_id: "c".into(),
            scope: String::new(),
            roles: vec![],
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            sid: None,
            auth_time: None,
            acr: None,
            amr: vec![],
            act: None,
            cnf: None,
            derived_from: Derivation::default(),
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert!(
            json.get("sid").is_none()
                && json.get("act").is_none()
                && json.get("auth_time").is_none()
                && json.get("acr").is_none()
                && json.get("amr").is_none()
                && json.get("cnf").is_none()
        );
    }
}
