//! The rules an access token must pass (RFC 9068, RFC 8725), in order:
//!
//! 1. three base64url segments (the 8 KiB limit is checked before, by the guard);
//! 2. header: `alg` from the configured allow-list (never `none`, never HS*),
//!    `typ` = `at+jwt`, a `kid`, no `crit`, and no `jku`/`x5u`/`jwk`/`x5c`
//!    (keys come only from the issuer's JWKS, never from the token);
//! 3. the `kid`'s key must be published for that algorithm;
//! 4. signature (aws-lc-rs through jsonwebtoken), then `iss` exact, `aud`
//!    contains this service, `exp`/`nbf` with the leeway — all required;
//! 5. `iat` not in the future, `exp - iat` within the longest lifetime this
//!    service accepts (`GUARD_MAX_TOKEN_LIFETIME_SECS`, which bounds how long a
//!    revocation must be remembered), and `sub`, `jti`, `client_id` present.
//!
//! The header is parsed here rather than by `jsonwebtoken::decode_header`, so
//! that `alg: none` or an unknown `alg` gets a precise answer and header
//! members jsonwebtoken does not model are still seen.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::claims::unix_now;
use crate::claims::{AccessClaims, Actor, Confirmation};
use crate::config::GuardConfig;
use crate::error::TokenError;
use crate::jwks::VerifyKey;

/// What the header check yields: the algorithm and the key id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CheckedHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
}

pub(crate) struct Validator {
    allowed: Vec<Algorithm>,
    /// One prepared `Validation` per allowed algorithm.
    validations: Vec<(Algorithm, Validation)>,
    leeway: i64,
    max_lifetime: i64,
}

impl Validator {
    pub(crate) fn new(config: &GuardConfig) -> Self {
        Self::with_audience(
            config,
            &config.audience,
            &["exp", "nbf", "iss", "aud", "sub"],
        )
    }

    /// Signatures and registered claims as for access tokens, but `aud` must
    /// contain `audience` and only the `required` registered claims must be
    /// present (`nbf` is checked when present) — for ID tokens, see
    /// [`crate::id_token`].
    pub(crate) fn with_audience(config: &GuardConfig, audience: &str, required: &[&str]) -> Self {
        let validations = config
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = config.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_issuer(&[&config.issuer]);
                v.set_audience(&[audience]);
                // set_audience alone does not make `aud` mandatory.
                v.set_required_spec_claims(required);
                (alg, v)
            })
            .collect();
        Self {
            allowed: config.algorithms.clone(),
            validations,
            leeway: config.leeway.as_secs() as i64,
            max_lifetime: config.max_token_lifetime.as_secs() as i64,
        }
    }

    /// Steps 1–2: shape and header rules.
    pub(crate) fn check_header(&self, token: &str) -> Result<CheckedHeader, TokenError> {
        self.check_header_typed(token, is_access_token_typ)
    }

    /// Steps 1–2 with another `typ` rule (ID tokens: see [`crate::id_token`]);
    /// a `typ` that `typ_ok` refuses is [`TokenError::WrongType`].
    pub(crate) fn check_header_typed(
        &self,
        token: &str,
        typ_ok: fn(&str) -> bool,
    ) -> Result<CheckedHeader, TokenError> {
        let mut segments = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if !token
            .bytes()
            .all(|b| b == b'.' || b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TokenError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: JoseHeader<'_> =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;

        let alg = header.alg.ok_or(TokenError::Malformed)?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgNone);
        }
        let alg: Algorithm = alg.parse().map_err(|_| TokenError::AlgNotAllowed)?;
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(TokenError::AlgSymmetric);
        }
        if !self.allowed.contains(&alg) {
            return Err(TokenError::AlgNotAllowed);
        }
        if !typ_ok(header.typ.as_deref().unwrap_or_default()) {
            return Err(TokenError::WrongType);
        }
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
        if header.crit.is_some() {
            return Err(TokenError::UnsupportedCrit);
        }
        for (name, present) in [
            ("jku", header.jku.is_some()),
            ("x5u", header.x5u.is_some()),
            ("jwk", header.jwk.is_some()),
            ("x5c", header.x5c.is_some()),
        ] {
            if present {
                return Err(TokenError::ForbiddenHeader(name));
            }
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(TokenError::MissingKid)?;
        Ok(CheckedHeader {
            alg,
            kid: kid.into_owned(),
        })
    }

    /// Steps 3–5: key/algorithm match, signature and claims.
    pub(crate) fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        key: &VerifyKey,
    ) -> Result<AccessClaims, TokenError> {
        let raw = self.decode::<RawClaims>(token, alg, key)?;
        self.claims(raw)
    }

    /// Steps 3–4 into any claims type: key/algorithm match, signature, and
    /// the registered claims of [`with_audience`](Self::with_audience).
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        alg: Algorithm,
        key: &VerifyKey,
    ) -> Result<T, TokenError> {
        if !key.algorithms.contains(&alg) {
            return Err(TokenError::KeyAlgorithmMismatch);
        }
        let validation = self
            .validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
            .ok_or(TokenError::AlgNotAllowed)?;
        Ok(jsonwebtoken::decode::<T>(token, &key.key, validation)
            .map_err(|e| token_error(e.into_kind()))?
            .claims)
    }

    /// Step 5's `iat`: required, and not in the future (beyond the leeway).
    pub(crate) fn issued_at(&self, iat: Option<i64>) -> Result<i64, TokenError> {
        let iat = iat.ok_or(TokenError::MissingClaim("iat"))?;
        if iat > unix_now() + self.leeway {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(iat)
    }

    fn claims(&self, raw: RawClaims) -> Result<AccessClaims, TokenError> {
        let iat = self.issued_at(raw.iat)?;
        let exp = raw.exp.ok_or(TokenError::MissingClaim("exp"))?;
        if exp.saturating_sub(iat) > self.max_lifetime {
            return Err(TokenError::LivesTooLong);
        }
        Ok(AccessClaims {
            iss: present(raw.iss, "iss")?,
            sub: present(raw.sub, "sub")?,
            aud: raw
                .aud
                .map(OneOrMany::into_vec)
                .ok_or(TokenError::MissingClaim("aud"))?,
            client_id: present(raw.client_id, "client_id")?,
            scope: raw.scope.unwrap_or_default(),
            roles: raw.roles.unwrap_or_default(),
            exp,
            iat,
            nbf: raw.nbf.ok_or(TokenError::MissingClaim("nbf"))?,
            jti: present(raw.jti, "jti")?,
            sid: raw.sid,
            auth_time: raw.auth_time,
            acr: raw.acr,
            amr: raw.amr.unwrap_or_default(),
            act: raw.act,
            cnf: raw.cnf,
            derived_from: raw.derived_from.unwrap_or_default(),
        })
    }
}

/// A required string claim: present and not empty.
pub(crate) fn present(value: Option<String>, name: &'static str) -> Result<String, TokenError> {
    match value {
        None => Err(TokenError::MissingClaim(name)),
        Some(v) if v.is_empty() => Err(TokenError::InvalidClaim(name)),
        Some(v) => Ok(v),
    }
}

/// RFC 9068 §4: "at+jwt" or "application/at+jwt" (media types are case-insensitive).
pub(crate) fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// The JOSE header members we look at; any others are ignored.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    crit: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

/// The payload before the required claims are confirmed present.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    client_id: Option<String>,
    scope: Option<String>,
    roles: Option<Vec<String>>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    sid: Option<String>,
    auth_time: Option<i64>,
    acr: Option<String>,
    amr: Option<Vec<String>>,
    act: Option<Actor>,
    cnf: Option<Confirmation>,
    derived_from: Option<crate::Derivation>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

fn token_error(kind: ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim_name(&claim)),
        ErrorKind::InvalidClaimFormat(claim) => TokenError::InvalidClaim(claim_name(&claim)),
        ErrorKind::Json(_) => TokenError::InvalidClaims,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            TokenError::KeyAlgorithmMismatch
        }
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            TokenError::Malformed
        }
        _ => TokenError::BadSignature,
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> Validator {
        Validator::new(&GuardConfig::new("http://idp", "order"))
    }

    fn token(header: serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(json!({"sub": "x"}).to_string());
        format!("{h}.{p}.c2ln")
    }

    fn check(header: serde_json::Value) -> Result<CheckedHeader, TokenError> {
        validator().check_header(&token(header))
    }

    #[test]
    fn a_conforming_header_passes() {
        let ok = check(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})).unwrap();
        assert_eq!(
            ok,
            CheckedHeader {
                alg: Algorithm::RS256,
                kid: "k1".into()
            }
        );
        assert!(check(json!({"alg": "ES256", "typ": "application/AT+JWT", "kid": "k1"})).is_ok());
    }

    #[test]
    fn header_rules_are_enforced() {
        let cases = [
            (
                json!({"alg": "none", "typ": "at+jwt", "kid": "k"}),
                TokenError::AlgNone,
            ),
            (
                json!({"alg": "nOnE", "typ": "at+jwt", "kid": "k"}),
                TokenError::AlgNone,
            ),
            (
                json!({"alg": "HS256", "typ": "at+jwt", "kid": "k"}),
                TokenError::AlgSymmetric,
            ),
            (
                json!({"alg": "RS512", "typ": "at+jwt", "kid": "k"}),
                TokenError::AlgNotAllowed,
            ),
            (
                json!({"alg": "XY999", "typ": "at+jwt", "kid": "k"}),
                TokenError::AlgNotAllowed,
            ),
            (json!({"typ": "at+jwt", "kid": "k"}), TokenError::Malformed),
            (
                json!({"alg": "RS256", "typ": "JWT", "kid": "k"}),
                TokenError::WrongType,
            ),
            (json!({"alg": "RS256", "kid": "k"}), TokenError::WrongType),
            (
                json!({"alg": "RS256", "typ": "at+jwt"}),
                TokenError::MissingKid,
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": ""}),
                TokenError::MissingKid,
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "crit": ["exp"]}),
                TokenError::UnsupportedCrit,
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "jku": "http://evil"}),
                TokenError::ForbiddenHeader("jku"),
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "x5u": "http://evil"}),
                TokenError::ForbiddenHeader("x5u"),
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "jwk": {"kty": "RSA"}}),
                TokenError::ForbiddenHeader("jwk"),
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "x5c": ["MII"]}),
                TokenError::ForbiddenHeader("x5c"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(check(header.clone()), Err(expected), "{header}");
        }
    }

    #[test]
    fn shapes_other_than_a_compact_jws_are_malformed() {
        let v = validator();
        let good = token(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"}));
        for bad in [
            "".to_owned(),
            "abc".to_owned(),
            "a.b".to_owned(),
            format!("{good}.extra"),
            good.replace('.', ".="),
            "e30.e30.sig".to_owned().replace("e30", "not base64!"),
            format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("not json")),
            format!(
                "{}.e30.sig",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"RS256","typ":"at+jwt","kid":"k"}"#)
            ),
        ] {
            assert_eq!(v.check_header(&bad), Err(TokenError::Malformed), "{bad}");
        }
    }
}
