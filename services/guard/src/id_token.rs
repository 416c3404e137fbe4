//! ID tokens (OpenID Connect Core §3.1.3.7), verified with a [`Guard`]'s key
//! cache: a relying party (the gateway) needs no JWKS fetch of its own.
//!
//! ```ignore
//! let verifier = guard.id_token_verifier("gateway"); // shares the guard's JWKS cache
//! let claims = verifier.verify(&id_token, &nonce_of_this_sign_in, Some(&access_token)).await?;
//! ```
//!
//! The rules, in order:
//!
//! 1. at most 8 KiB, a compact JWS, and the access-token header rules
//!    ([`crate::validator`]) except `typ`: `alg` from the guard's allow-list
//!    (never `none`, never HS*), a `kid`, no `crit`, no `jku`/`x5u`/`jwk`/`x5c`;
//! 2. `typ` absent, `JWT` or `application/jwt` — never `at+jwt`: an access
//!    token (which the same issuer signs with the same keys) is not an ID token;
//! 3. the `kid`'s key from the guard's JWKS cache (unknown → one rate-limited
//!    refetch), published for that algorithm; the signature;
//! 4. `iss` exactly the guard's issuer, `aud` contains the client id, `exp`
//!    with the guard's leeway, `nbf` when present, `iat` required and not in
//!    the future, `sub` present;
//! 5. `azp` is the client when present, and required when `aud` names
//!    several audiences; every audience is the client (§3.1.3.7 step 3: an
//!    audience the client does not trust refuses the token);
//! 6. `nonce` equals the sign-in's (compared in constant time; an empty
//!    expected nonce matches nothing);
//! 7. `at_hash`, when present and an access token is given, is the left half
//!    of the access token's hash (§3.1.3.8).
//!
//! Revocation does not apply: an ID token is read once, at sign-in.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::config::{GuardConfig, MAX_TOKEN_BYTES};
use crate::error::TokenError;
use crate::validate::Guard;
use crate::validator::{OneOrMany, Validator, is_access_token_typ, present};

/// Why an ID token was refused. The `Display` text names the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// A rule shared with access tokens (signature, `iss`, `aud`, `exp`, header…).
    #[error("{0}")]
    Token(TokenError),
    /// `typ` names another kind of token (`at+jwt`: an access token).
    #[error("token type is not an ID token (typ must be JWT or absent)")]
    WrongType,
    #[error("nonce does not match the sign-in")]
    NonceMismatch,
    #[error("azp is another client")]
    WrongAzp,
    #[error("azp is required with several audiences")]
    AzpRequired,
    #[error("aud names an audience other than this client")]
    UntrustedAudience,
    #[error("at_hash does not match the access token")]
    AtHashMismatch,
    /// No signing keys could be loaded (the IdP has not answered): the token
    /// may be fine, retry later.
    #[error("signing keys are not available yet")]
    KeysUnavailable,
}

crate::error::verifier_error_conversions!(IdTokenError);

/// The claims of a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: Option<i64>,
    /// The IdP session (for back-channel/front-channel logout and revocation).
    pub sid: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The payload before the required claims are confirmed present.
#[derive(Deserialize)]
struct RawIdClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    azp: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    auth_time: Option<i64>,
    sid: Option<String>,
    name: Option<String>,
    email: Option<String>,
    nonce: Option<String>,
    at_hash: Option<String>,
}

/// Verifies the issuer's ID tokens for one client; cheap to clone. Made by
/// [`Guard::id_token_verifier`]: same issuer, algorithm allow-list, leeway and
/// key cache as the guard.
#[derive(Clone)]
pub struct IdTokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    guard: Guard,
    client_id: String,
    /// The access-token validator's rules, for `aud` = the client.
    validator: Validator,
}

impl IdTokenVerifier {
    pub(crate) fn new(guard: Guard, config: &GuardConfig, client_id: &str) -> Self {
        // `nbf` is optional in an ID token (checked when present); `iat` below.
        let validator = Validator::with_audience(config, client_id, &["exp", "iss", "aud", "sub"]);
        Self {
            inner: Arc::new(Inner {
                guard,
                client_id: client_id.to_owned(),
                validator,
            }),
        }
    }

    /// The client whose ID tokens this verifier accepts (`aud`, `azp`).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Verifies `token` for a sign-in that sent `nonce`; with `access_token`
    /// (issued with it), also its `at_hash` when the token carries one.
    pub async fn verify(
        &self,
        token: &str,
        nonce: &str,
        access_token: Option<&str>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let result = self.check(token, nonce, access_token).await;
        if let Err(e) = &result {
            // The reason only: never the token.
            tracing::debug!(reason = %e, "ID token refused");
        }
        result
    }

    async fn check(
        &self,
        token: &str,
        nonce: &str,
        access_token: Option<&str>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(MAX_TOKEN_BYTES).into());
        }
        let header = inner.validator.check_header_typed(token, is_id_token_typ)?;
        let key = inner.guard.signing_key(&header.kid).await?;
        let raw: RawIdClaims = inner.validator.decode(token, header.alg, &key)?;
        let iat = inner.validator.issued_at(raw.iat)?;
        let aud = raw
            .aud
            .map(OneOrMany::into_vec)
            .ok_or(TokenError::MissingClaim("aud"))?;
        match &raw.azp {
            Some(azp) if *azp != inner.client_id => return Err(IdTokenError::WrongAzp),
            None if aud.len() > 1 => return Err(IdTokenError::AzpRequired),
            _ => {}
        }
        if aud.iter().any(|a| *a != inner.client_id) {
            return Err(IdTokenError::UntrustedAudience);
        }
        let nonce_matches = !nonce.is_empty()
            && raw.nonce.as_deref().is_some_and(|n| {
                aws_lc_rs::constant_time::verify_slices_are_equal(n.as_bytes(), nonce.as_bytes())
                    .is_ok()
            });
        if !nonce_matches {
            return Err(IdTokenError::NonceMismatch);
        }
        if let (Some(at_hash), Some(access_token)) = (&raw.at_hash, access_token)
            && !at_hash_matches(at_hash, access_token, header.alg)
        {
            return Err(IdTokenError::AtHashMismatch);
        }
        Ok(IdTokenClaims {
            iss: present(raw.iss, "iss")?,
            sub: present(raw.sub, "sub")?,
            aud,
            azp: raw.azp,
            exp: raw.exp.ok_or(TokenError::MissingClaim("exp"))?,
            iat,
            auth_time: raw.auth_time,
            sid: raw.sid,
            name: raw.name,
            email: raw.email,
        })
    }
}

impl std::fmt::Debug for IdTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenVerifier")
            .field("issuer", &self.inner.guard.config().issuer)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// An ID token's `typ`: absent, `JWT` or `application/jwt` (RFC 7519 §5.1);
/// never an access token's.
fn is_id_token_typ(typ: &str) -> bool {
    !is_access_token_typ(typ)
        && (typ.is_empty()
            || typ.eq_ignore_ascii_case("JWT")
            || typ.eq_ignore_ascii_case("application/jwt"))
}

/// OIDC Core §3.1.3.8: the base64url of the left half of the access token's
/// hash, with the hash of the ID token's `alg` (SHA-512 for Ed25519).
fn at_hash_matches(at_hash: &str, access_token: &str, alg: Algorithm) -> bool {
    use aws_lc_rs::digest;
    let algorithm = match alg {
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::PS256 => &digest::SHA256,
        Algorithm::RS384 | Algorithm::ES384 | Algorithm::PS384 => &digest::SHA384,
        _ => &digest::SHA512,
    };
    let digest = digest::digest(algorithm, access_token.as_bytes());
    let half = &digest.as_ref()[..digest.as_ref().len() / 2];
    let expected = URL_SAFE_NO_PAD.encode(half);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), at_hash.as_bytes())
        .is_ok()
}

/// Here rather than in `validate`, so that the guard does not depend on its
/// verifiers (the verifiers depend on the guard).
impl Guard {
    /// A verifier of the issuer's ID tokens for the OpenID Connect client
    /// `client_id`, sharing this guard's key cache (see [`crate::id_token`]).
    pub fn id_token_verifier(&self, client_id: &str) -> IdTokenVerifier {
        IdTokenVerifier::new(self.clone(), self.config(), client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthError;

    #[test]
    fn only_jwt_types_pass_as_id_tokens() {
        for typ in ["", "JWT", "jwt", "application/jwt"] {
            assert!(is_id_token_typ(typ), "{typ:?}");
        }
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "logout+jwt",
            "JWS",
        ] {
            assert!(!is_id_token_typ(typ), "{typ:?}");
        }
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_token_hash() {
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let expected = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        assert!(at_hash_matches(&expected, token, Algorithm::RS256));
        assert!(at_hash_matches(&expected, token, Algorithm::ES256));
        assert!(!at_hash_matches(&expected, "other", Algorithm::RS256));
        // Another algorithm, another hash.
        assert!(!at_hash_matches(&expected, token, Algorithm::EdDSA));
    }

    #[test]
    fn refusals_name_the_rule() {
        assert_eq!(
            IdTokenError::from(TokenError::WrongType),
            IdTokenError::WrongType
        );
        assert_eq!(
            IdTokenError::from(AuthError::KeysUnavailable),
            IdTokenError::KeysUnavailable
        );
        assert_eq!(
            IdTokenError::from(AuthError::InvalidToken(TokenError::UnknownKid)),
            IdTokenError::Token(TokenError::UnknownKid)
        );
    }
}
