//! Building, signing and checking the IdP's JWTs: access tokens (RFC 9068,
//! the contract in `guard::claims`) and ID tokens (OIDC Core §2).

use jsonwebtoken::{Validation, decode, decode_header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use guard::claims::Confirmation;
use guard::{ACCESS_TOKEN_TYP, AccessClaims, Actor, Derivation};

use crate::error::OAuthError;
use crate::keys::Alg;
use crate::realm::{Client, User};
use crate::state::AppState;

/// Who a token is about.
pub struct Subject {
    pub sub: String,
    pub roles: Vec<String>,
    pub sid: Option<Uuid>,
    pub auth_time: Option<OffsetDateTime>,
    /// How the user signed in (RFC 8176); empty for a client itself.
    pub amr: Vec<String>,
}

pub struct AccessToken {
    pub token: String,
    pub jti: String,
    pub expires_at: OffsetDateTime,
}

/// An access token for `client` about `subject`; bound to the DPoP key
/// `jkt` (RFC 9449 §6.1: `cnf.jkt`) when the request proved one.
pub async fn issue_access(
    state: &AppState,
    client: &Client,
    subject: Subject,
    scope: &str,
    jkt: Option<&str>,
) -> Result<AccessToken, OAuthError> {
    let now = OffsetDateTime::now_utc();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: subject.sub,
        aud: client.resources.clone(),
        client_id: client.id.clone(),
        scope: scope.to_owned(),
        roles: subject.roles,
        exp: (now + state.config.access_token_ttl).unix_timestamp(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        jti: Uuid::now_v7().to_string(),
        sid: subject.sid.map(|s| s.to_string()),
        auth_time: subject.auth_time.map(|t| t.unix_timestamp()),
        acr: (!subject.amr.is_empty()).then(|| crate::amr::acr_of(&subject.amr).to_owned()),
        amr: subject.amr,
        act: None,
        cnf: confirmation(jkt),
        derived_from: Derivation::default(),
    };
    sign_access(state, claims).await
}

/// RFC 8693: a token for the same subject, session and original client,
/// narrowed to `aud` and `scope`, naming `actor` (the exchanging client) in
/// `act` on top of any earlier actors, and never outliving the subject token.
/// Never bound to the subject token's key (the actor does not hold it): bound
/// to the actor's DPoP key `jkt` when it proved one, else a bearer token.
pub async fn issue_exchanged(
    state: &AppState,
    subject: AccessClaims,
    actor: &str,
    aud: Vec<String>,
    scope: String,
    jkt: Option<&str>,
) -> Result<AccessToken, OAuthError> {
    let now = OffsetDateTime::now_utc();
    let exp = (now + state.config.access_token_ttl)
        .unix_timestamp()
        .min(subject.exp);
    // `iat` stays the subject token's: a derived token is as old as the token
    // it came from, so revoking a subject's tokens "issued before T" ends it
    // exactly when it ends its subject token, however the two raced.
    let derived_from = Derivation::from_parent(&subject.jti, &subject.derived_from)
        .ok_or_else(|| OAuthError::invalid_request("subject_token was exchanged too many times"))?;
    let claims = AccessClaims {
        aud,
        scope,
        exp,
        iat: subject.iat,
        nbf: now.unix_timestamp(),
        jti: Uuid::now_v7().to_string(),
        act: Some(Actor {
            sub: actor.to_owned(),
            act: subject.act.clone().map(Box::new),
        }),
        cnf: confirmation(jkt),
        derived_from,
        ..subject
    };
    sign_access(state, claims).await
}

fn confirmation(jkt: Option<&str>) -> Option<Confirmation> {
    jkt.map(|jkt| Confirmation {
        jkt: jkt.to_owned(),
    })
}

async fn sign_access(state: &AppState, claims: AccessClaims) -> Result<AccessToken, OAuthError> {
    let (token, _) = state.keys.sign_jwt(ACCESS_TOKEN_TYP, &claims).await?;
    let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    Ok(AccessToken {
        token,
        jti: claims.jti,
        expires_at,
    })
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    acr: &'static str,
    amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// What an ID token is about.
pub struct IdContext<'a> {
    pub user: &'a User,
    pub sid: Uuid,
    pub auth_time: OffsetDateTime,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
    pub scope: &'a str,
}

pub async fn issue_id(
    state: &AppState,
    client: &Client,
    ctx: IdContext<'_>,
    access: &AccessToken,
) -> Result<String, OAuthError> {
    let now = OffsetDateTime::now_utc();
    // The client's id_token_signed_response_alg (checked against the IdP's
    // algorithms when registered), else the default.
    let alg = client
        .id_token_signed_response_alg
        .as_deref()
        .and_then(|a| a.parse::<Alg>().ok())
        .unwrap_or_else(|| state.keys.default_alg());
    let has = |s: &str| ctx.scope.split(' ').any(|x| x == s);
    let (profile, email) = (has("profile"), has("email"));
    let claims = IdClaims {
        iss: &state.config.issuer,
        sub: ctx.user.id.to_string(),
        aud: &client.id,
        azp: &client.id,
        exp: (now + state.config.id_token_ttl).unix_timestamp(),
        iat: now.unix_timestamp(),
        auth_time: ctx.auth_time.unix_timestamp(),
        acr: crate::amr::acr_of(ctx.amr),
        amr: ctx.amr,
        nonce: ctx.nonce,
        // OIDC Core §3.1.3.6: the hash of the ID token's own algorithm.
        at_hash: alg.half_hash(access.token.as_bytes()),
        sid: ctx.sid.to_string(),
        name: profile.then_some(ctx.user.name.as_str()),
        preferred_username: profile.then_some(ctx.user.username.as_str()),
        email: if email {
            ctx.user.email.as_deref()
        } else {
            None
        },
        email_verified: (email && ctx.user.email.is_some()).then_some(ctx.user.email_verified),
    };
    Ok(state.keys.sign_jwt_as(alg, "JWT", &claims).await?.0)
}

/// The claims of an ID token the IdP issued, as read back from `id_token_hint`.
#[derive(Debug, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    #[serde(deserialize_with = "first_audience")]
    pub aud: String,
    pub sid: Option<String>,
}

fn first_audience<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => Ok(s),
        OneOrMany::Many(v) if v.len() == 1 => Ok(v.into_iter().next().unwrap_or_default()),
        OneOrMany::Many(_) => Err(serde::de::Error::custom("an ID token has one audience")),
    }
}

/// Largest token we bother to parse.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies a JWT the IdP issued: a published `kid`, that key's algorithm
/// only, the signature, `typ`, `iss` and (unless `allow_expired`) `exp`.
pub fn verify_own<T: DeserializeOwned>(
    state: &AppState,
    token: &str,
    typ: &str,
    allow_expired: bool,
) -> Result<T, &'static str> {
    if token.len() > MAX_TOKEN_LEN {
        return Err("token too large");
    }
    let header = decode_header(token).map_err(|_| "malformed token")?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err("wrong token type");
    }
    let kid = header.kid.ok_or("token has no kid")?;
    state
        .keys
        .with_public(&kid, |key| {
            if key.alg.jsonwebtoken() != header.alg {
                return Err("algorithm does not match the key");
            }
            let mut v = Validation::new(key.alg.jsonwebtoken());
            v.set_issuer(&[&state.config.issuer]);
            v.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
            v.validate_aud = false;
            v.validate_exp = !allow_expired;
            v.leeway = 5;
            decode::<T>(token, &key.decoding, &v)
                .map(|d| d.claims)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired",
                    _ => "token signature or claims invalid",
                })
        })
        .unwrap_or(Err(UNKNOWN_KEY))
}

/// [`verify_own`]'s answer for a `kid` that is not (or no longer) published.
pub const UNKNOWN_KEY: &str = "unknown signing key";

/// The claims of a compact JWT, NOT verified: only for a hint whose key has
/// been withdrawn, never to decide anything about a session or a user.
pub fn unverified_claims<T: DeserializeOwned>(token: &str) -> Option<T> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    serde_json::from_slice(&platform::crypto::b64url_decode(payload)?).ok()
}
