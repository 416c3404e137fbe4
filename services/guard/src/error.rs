//! Why a request is refused, and the one place where that becomes HTTP.
//!
//! * no token → `401` with a bare `WWW-Authenticate: Bearer realm="…"` (RFC 6750 §3.1:
//!   no error code when the request carried no credentials);
//! * a bad token → `401` with `error="invalid_token"` and a description;
//! * missing rights → `403` with `error="insufficient_scope"` naming what is needed;
//! * a malformed `Authorization` header → `400` with `error="invalid_request"`;
//! * no signing keys could ever be loaded → `503` (the token may be fine; we cannot tell yet).
//!
//! Every answer carries the same JSON body: `{"error": "...", "error_description": "..."}`.

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::authentication::InsufficientAuthentication;
use crate::dpop::{ALGORITHM_NAMES, ProofError};
use crate::requirements::Requirement;

/// Why a token was refused. The `Display` text is the `error_description`
/// sent to the client: it names the rule, never echoes secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("alg \"none\" is not accepted")]
    AlgNone,
    #[error("symmetric algorithms (HS*) are not accepted")]
    AlgSymmetric,
    #[error("signature algorithm is not allowed")]
    AlgNotAllowed,
    #[error("the signing key does not match the token's algorithm")]
    KeyAlgorithmMismatch,
    #[error("token header has no kid")]
    MissingKid,
    #[error("signing key is unknown")]
    UnknownKid,
    #[error("token type must be at+jwt")]
    WrongType,
    #[error("token has critical header parameters that are not understood")]
    UnsupportedCrit,
    #[error("header parameter {0} is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token is issued in the future")]
    IssuedInFuture,
    #[error("token issuer is not trusted")]
    WrongIssuer,
    #[error("token audience does not include this service")]
    WrongAudience,
    #[error("token lacks the required claim {0}")]
    MissingClaim(&'static str),
    #[error("claim {0} has an invalid value")]
    InvalidClaim(&'static str),
    #[error("token claims are not valid JSON")]
    InvalidClaims,
    #[error("token has been revoked")]
    Revoked,
    #[error("token lives longer than this service accepts")]
    LivesTooLong,
    /// The revocation stream has been out of reach for longer than
    /// `GUARD_REVOCATION_MAX_STALENESS_SECS` and the policy is `refuse`.
    #[error("revocations cannot be confirmed right now")]
    RevocationsStale,
    /// RFC 9449 §7.2: a DPoP-bound token presented as a bearer token.
    #[error("token is DPoP-bound: send it with the DPoP scheme and a proof")]
    BoundTokenAsBearer,
    /// The DPoP scheme with a token bound to no key: no proof can be checked against it.
    #[error("token is not DPoP-bound: send it with the Bearer scheme")]
    NotBound,
}

impl TokenError {
    /// Whether the refusal is about DPoP (answered with the `DPoP` challenge).
    fn is_dpop(&self) -> bool {
        matches!(self, Self::BoundTokenAsBearer | Self::NotBound)
    }
}

impl TokenError {
    /// A short, fixed name of the rule (the `reason` label of
    /// `guard_token_refusals_total`): static, so counting a refusal builds no string.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed => "malformed",
            Self::AlgNone => "alg_none",
            Self::AlgSymmetric => "alg_symmetric",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::WrongType => "wrong_type",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::ForbiddenHeader(_) => "forbidden_header",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::InvalidClaims => "invalid_claims",
            Self::Revoked => "revoked",
            Self::LivesTooLong => "lives_too_long",
            Self::RevocationsStale => "revocations_stale",
            Self::BoundTokenAsBearer => "dpop_bound_token_as_bearer",
            Self::NotBound => "dpop_token_not_bound",
        }
    }
}

/// A refused request. Its [`IntoResponse`] is the only mapping to HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token in the request (no `Authorization: Bearer …` header).
    #[error("a bearer token is required")]
    MissingToken,
    /// The `Authorization` header is malformed (e.g. sent twice).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The token was refused.
    #[error("{0}")]
    InvalidToken(#[from] TokenError),
    /// The DPoP proof sent with a bound token was refused (RFC 9449 §7.1).
    #[error("{0}")]
    InvalidProof(#[from] ProofError),
    /// The token is valid but lacks a role or scope.
    #[error("{0}")]
    Forbidden(Requirement),
    /// The user did not authenticate strongly or recently enough for this
    /// request (RFC 9470): a new sign-in meeting the challenge will do.
    #[error("{}", .0.description())]
    InsufficientAuthentication(Box<InsufficientAuthentication>),
    /// No signing keys are available yet (the IdP has not answered since start-up).
    #[error("signing keys are not available yet")]
    KeysUnavailable,
    /// A route guard is mounted on a router that has no `Guard::layer()`: a
    /// wiring mistake, answered with 500 and logged.
    #[error("authentication is not configured for this route")]
    NotConfigured,
}

impl AuthError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidProof(ProofError::ReplayCacheFull) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingToken
            | Self::InvalidToken(_)
            | Self::InvalidProof(_)
            | Self::InsufficientAuthentication(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Why, as a fixed label value: the token rule ([`TokenError::reason`]),
    /// else what was missing.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(e) => e.reason(),
            Self::InvalidProof(_) => "invalid_dpop_proof",
            Self::Forbidden(_) => "insufficient_rights",
            Self::InsufficientAuthentication(_) => "insufficient_user_authentication",
            Self::KeysUnavailable => "keys_unavailable",
            Self::NotConfigured => "not_configured",
        }
    }

    /// The OAuth error code (RFC 6750 §3.1), if any.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InvalidProof(_) => "invalid_dpop_proof",
            Self::Forbidden(_) => "insufficient_scope",
            Self::InsufficientAuthentication(_) => "insufficient_user_authentication",
            Self::KeysUnavailable => "temporarily_unavailable",
            Self::NotConfigured => "server_error",
        }
    }
}

impl From<InsufficientAuthentication> for AuthError {
    fn from(e: InsufficientAuthentication) -> Self {
        AuthError::InsufficientAuthentication(Box::new(e))
    }
}

/// The `realm` of our challenges.
const REALM: &str = "baton";

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        // The challenge for the scheme at fault first, with its error; the
        // other scheme is advertised beside it (RFC 9449 §7.1).
        let error = || {
            format!(
                ", error=\"{}\", error_description=\"{}\"",
                self.code(),
                quoted_safe(&description)
            )
        };
        let challenges = match &self {
            Self::MissingToken => Some((bearer_challenge(""), dpop_challenge(""))),
            Self::InvalidProof(_) => Some((dpop_challenge(&error()), bearer_challenge(""))),
            Self::InvalidToken(e) if e.is_dpop() => {
                Some((dpop_challenge(&error()), bearer_challenge("")))
            }
            Self::InvalidRequest(_) | Self::InvalidToken(_) => {
                Some((bearer_challenge(&error()), dpop_challenge("")))
            }
            Self::Forbidden(need) => {
                let scope = need.scopes().collect::<Vec<_>>().join(" ");
                let scope = if scope.is_empty() {
                    String::new()
                } else {
                    format!(", scope=\"{}\"", quoted_safe(&scope))
                };
                let error = format!(
                    ", error=\"insufficient_scope\", error_description=\"{}\"{scope}",
                    quoted_safe(&description)
                );
                Some((bearer_challenge(&error), dpop_challenge("")))
            }
            Self::InsufficientAuthentication(need) => {
                // RFC 9470 §3: what sign-in to ask the IdP for.
                let mut params = format!("{}, acr_values=\"{}\"", error(), need.acr_values);
                if let Some(max_age) = need.max_age {
                    params.push_str(&format!(", max_age=\"{}\"", max_age.as_secs()));
                }
                Some((bearer_challenge(&params), dpop_challenge("")))
            }
            Self::KeysUnavailable | Self::NotConfigured => None,
        };
        if matches!(self, Self::NotConfigured) {
            tracing::error!(
                "a guard::require_* route layer runs without Guard::layer() on the router"
            );
        }
        let body = serde_json::json!({ "error": self.code(), "error_description": description });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some((first, second)) = challenges {
            for challenge in [first, second] {
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.append(header::WWW_AUTHENTICATE, value);
                }
            }
        }
        if matches!(
            self,
            Self::KeysUnavailable | Self::InvalidProof(ProofError::ReplayCacheFull)
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `Bearer realm="baton"` followed by `params` (`, error="…"`…).
pub fn bearer_challenge(params: &str) -> String {
    format!("Bearer realm=\"{REALM}\"{params}")
}

/// `DPoP realm="baton"`, then `params`, then the proof algorithms accepted
/// (RFC 9449 §7.1: `algs`).
pub fn dpop_challenge(params: &str) -> String {
    format!(
        "DPoP realm=\"{REALM}\"{params}, algs=\"{}\"",
        ALGORITHM_NAMES.join(" ")
    )
}

/// Makes text safe inside a quoted `WWW-Authenticate` parameter: RFC 6750
/// allows `%x20-21 / %x23-5B / %x5D-7E` only, so `"` and `\` and anything
/// non-printable become `'`/`?`; bounded to 200 characters.
pub(crate) fn quoted_safe(text: &str) -> Cow<'_, str> {
    let ok = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    if text.len() <= 200 && text.chars().all(ok) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .take(200)
            .map(|c| match c {
                '"' => '\'',
                c if ok(c) => c,
                _ => '?',
            })
            .collect(),
    )
}

/// The conversions an ID-token or logout-token verifier's error shares with
/// access tokens: a rule of [`TokenError`] (whose `WrongType` becomes the
/// verifier's own `WrongType`), and a key lookup that failed for want of keys
/// (`KeysUnavailable`). The error type needs those three variants.
macro_rules! verifier_error_conversions {
    ($error:ident) => {
        impl From<$crate::error::TokenError> for $error {
            fn from(e: $crate::error::TokenError) -> Self {
                match e {
                    $crate::error::TokenError::WrongType => Self::WrongType,
                    e => Self::Token(e),
                }
            }
        }

        impl From<$crate::error::AuthError> for $error {
            fn from(e: $crate::error::AuthError) -> Self {
                match e {
                    $crate::error::AuthError::InvalidToken(e) => e.into(),
                    // Only the key lookup fails otherwise, and only for want of keys.
                    _ => Self::KeysUnavailable,
                }
            }
        }
    };
}
pub(crate) use verifier_error_conversions;

/// In a service's [`platform::ApiError`], a token failure keeps its own
/// answer (status, `WWW-Authenticate`, body).
impl platform::api_error::Rejection for AuthError {
    fn response(self: Box<Self>) -> Response {
        (*self).into_response()
    }
}

impl<E> From<AuthError> for platform::ApiError<E> {
    fn from(e: AuthError) -> Self {
        Self::Auth(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_cannot_break_out_of_the_quoted_string() {
        assert_eq!(quoted_safe("token has expired"), "token has expired");
        assert_eq!(quoted_safe("a\"b\\c\r\nd"), "a'b?c??d");
        assert_eq!(quoted_safe(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn each_error_has_its_status_and_code() {
        let cases = [
            (AuthError::MissingToken, 401, "unauthorized"),
            (
                AuthError::InvalidToken(TokenError::Expired),
                401,
                "invalid_token",
            ),
            (AuthError::InvalidRequest("x"), 400, "invalid_request"),
            (
                AuthError::Forbidden(Requirement::role("admin")),
                403,
                "insufficient_scope",
            ),
            (AuthError::KeysUnavailable, 503, "temporarily_unavailable"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status);
            assert_eq!(error.code(), code);
        }
    }

    #[tokio::test]
    async fn a_step_up_answer_is_the_rfc_9470_challenge() {
        use crate::authentication::{AuthenticationRequirement, Shortfall};
        let need =
            AuthenticationRequirement::second_factor(Some(std::time::Duration::from_secs(300)));
        let error: AuthError = InsufficientAuthentication {
            acr_values: need.acr,
            max_age: need.max_age,
            reason: Shortfall::TooLongAgo,
        }
        .into();
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), 401);
        let challenges: Vec<&str> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            challenges[0],
            "Bearer realm=\"baton\", error=\"insufficient_user_authentication\", \
             error_description=\"a recent sign-in is required: sign in again with a second factor\", \
             acr_values=\"urn:baton:acr:mfa\", max_age=\"300\""
        );
        assert!(challenges[1].starts_with("DPoP realm=\"baton\""));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "insufficient_user_authentication");
    }

    #[tokio::test]
    async fn in_an_api_error_a_token_failure_keeps_its_own_answer() {
        let error: platform::ApiError<std::convert::Infallible> = AuthError::MissingToken.into();
        let description = error.to_string();
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), 401);
        assert!(
            response
                .headers()
                .contains_key(http::header::WWW_AUTHENTICATE)
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["error_description"], description);
    }
}
