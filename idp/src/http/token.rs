//! `POST /token` (RFC 6749 §3.2): `authorization_code`, `refresh_token`,
//! `client_credentials` and token exchange (RFC 8693).
//!
//! DPoP (RFC 9449): a request with a valid `DPoP` proof gets access tokens
//! bound to the proof's key (`cnf.jkt`, `token_type: DPoP`), for every grant.
//! Public clients must send one, and their refresh tokens are bound to the
//! key too: a refresh needs a proof of the same key. Confidential clients may
//! (their refresh tokens are already bound to their client authentication).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use guard::AccessClaims;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::OAuthError;
use crate::grants::{self, NewRefresh, Redeem};
use crate::http::authorize::{normalise_scope, within};
use crate::http::client_auth::ClientRequest;
use crate::http::params::Params;
use crate::realm::{self, Client, USER_SCOPES};
use crate::state::AppState;
use crate::tokens::{self, IdContext, Subject};
use crate::{dpop, revocations, sessions};
use platform::crypto::{b64url, ct_eq, sha256};

pub fn router() -> Router<AppState> {
    Router::new().route("/token", post(token))
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    /// RFC 8693 §2.2.1, for token exchange only.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut r = Json(self).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        r
    }
}

/// `POST /token`, counted in `idp_token_requests_total{grant, outcome}`
/// (`outcome`: `issued` or the OAuth error code).
async fn token(
    state: State<AppState>,
    request: ClientRequest,
) -> Result<TokenResponse, OAuthError> {
    let params = &request.params;
    let grant = realm::GRANT_TYPES
        .iter()
        .find(|g| params.get("grant_type") == Some(**g))
        .copied()
        .unwrap_or("other");
    let result = issue(state, request).await;
    let outcome = result.as_ref().map_or_else(OAuthError::code, |_| "issued");
    metrics::counter!("idp_token_requests_total", "grant" => grant, "outcome" => outcome)
        .increment(1);
    result
}

async fn issue(
    State(state): State<AppState>,
    request: ClientRequest,
) -> Result<TokenResponse, OAuthError> {
    let grant = request.params.require("grant_type")?;
    if !realm::GRANT_TYPES.contains(&grant) {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let client = request.authenticate(&state).await?.client;
    let ClientRequest {
        headers, params, ..
    } = &request;
    super::cors::check_client(&state.cors, headers, &client.id)?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::UnauthorizedClient(
            format!("this client may not use {grant}").into(),
        ));
    }
    let proof = dpop::proof(&state, headers, "POST", "/token", None).await?;
    if client.public && proof.is_none() {
        return Err(OAuthError::InvalidDpopProof(
            "a public client must send a DPoP proof".into(),
        ));
    }
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    match grant {
        "authorization_code" => authorization_code(&state, &client, params, jkt).await,
        "refresh_token" => refresh_token(&state, &client, params, jkt).await,
        "client_credentials" => client_credentials(&state, &client, params, jkt).await,
        _ => token_exchange(&state, &client, params, jkt).await,
    }
}

/// RFC 9449 §5: `DPoP` for a token bound to a key, else `Bearer`.
fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() { "DPoP" } else { "Bearer" }
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, verifier 43..=128 unreserved characters.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed
        && ct_eq(
            b64url(&sha256(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

async fn authorization_code(
    state: &AppState,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let code_value = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let mut tx = state.db.begin().await?;
    let code = match grants::consume_code(&mut tx, code_value, &client.id).await? {
        Redeem::Fresh(code) => code,
        Redeem::Replayed => {
            drop(tx);
            grants::revoke_code_issue(&state.db, code_value).await?;
            tracing::warn!(client_id = %client.id, "authorization code replayed; what it issued is revoked");
            return Err(OAuthError::invalid_grant("authorization code already used"));
        }
        Redeem::OtherClient => {
            tracing::warn!(client_id = %client.id, "authorization code of another client presented; left unused");
            return Err(OAuthError::invalid_grant(
                "authorization code was issued to another client",
            ));
        }
        Redeem::Unknown => return Err(OAuthError::invalid_grant("unknown authorization code")),
    };
    // The code is consumed by its own client whatever happens next: commit that first.
    tx.commit().await?;
    if code.expires_at <= OffsetDateTime::now_utc() {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&code.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
        (Some(_), Some(_)) => return Err(OAuthError::invalid_grant("PKCE verification failed")),
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        // A verifier without a challenge is a PKCE downgrade attempt (RFC 9700 §2.1.1).
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "no code_challenge was sent for this code",
            ));
        }
        (None, None) if client.public => return Err(OAuthError::invalid_grant("PKCE is required")),
        (None, None) => {}
    }
    let session_expires_at = sessions::live_until(&state.db, code.session_id)
        .await?
        .ok_or_else(session_ended)?;
    let (user, roles) = realm::active_user_with_roles(&state.db, code.user_id)
        .await?
        .ok_or_else(user_inactive)?;
    let subject = Subject {
        sub: user.id.to_string(),
        roles,
        sid: Some(code.session_id),
        auth_time: Some(code.auth_time),
        amr: code.amr.clone(),
    };
    revocations::wait_out_subject_revocation(&state.db, &subject.sub).await?;
    let access = tokens::issue_access(state, client, subject, &code.scope, jkt).await?;
    let id_token = tokens::issue_id(
        state,
        client,
        IdContext {
            user: &user,
            sid: code.session_id,
            auth_time: code.auth_time,
            amr: &code.amr,
            nonce: code.nonce.as_deref(),
            scope: &code.scope,
        },
        &access,
    )
    .await?;

    let mut tx = state.db.begin().await?;
    let (refresh_token, family) = if client.allows_grant("refresh_token") {
        let family = Uuid::new_v4();
        let token = grants::create_refresh(
            &mut tx,
            &NewRefresh {
                family_id: family,
                parent_id: None,
                client_id: &client.id,
                user_id: user.id,
                session_id: code.session_id,
                scope: &code.scope,
                auth_time: code.auth_time,
                amr: &code.amr,
                access_jti: &access.jti,
                access_expires_at: access.expires_at,
                ttl: state.config.refresh_token_ttl,
                session_expires_at,
                dpop_jkt: jkt.filter(|_| client.public),
            },
        )
        .await?;
        (Some(token), Some(family))
    } else {
        (None, None)
    };
    if !grants::record_code_issue(&mut tx, code_value, &access.jti, access.expires_at, family)
        .await?
    {
        // The code was replayed while we were issuing: hand out nothing.
        drop(tx);
        let mut conn = state.db.acquire().await?;
        revocations::record(
            &mut conn,
            "jti",
            &access.jti,
            "code replay",
            access.expires_at,
        )
        .await?;
        return Err(OAuthError::invalid_grant("authorization code already used"));
    }
    tx.commit().await?;
    tracing::info!(client_id = %client.id, sub = %user.id, jti = %access.jti, "tokens issued for a code");
    Ok(TokenResponse {
        access_token: access.token,
        token_type: token_type(jkt),
        expires_in: state.config.access_token_ttl.as_secs(),
        scope: code.scope,
        refresh_token,
        id_token: Some(id_token),
        issued_token_type: None,
    })
}

fn session_ended() -> OAuthError {
    OAuthError::invalid_grant("the sign-in session has ended")
}

fn user_inactive() -> OAuthError {
    OAuthError::invalid_grant("the user is no longer active")
}

/// Refresh (RFC 6749 §6) with rotation: one read, the signatures, then one
/// statement that uses up the old token and stores the new one. No row stays
/// locked while signing; if another request used the token first, what was
/// signed here is never handed out and the reuse revokes the family.
async fn refresh_token(
    state: &AppState,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    let Some(grants::Redeemable {
        token: old,
        session_expires_at,
        user,
        roles,
    }) = grants::find_redeemable(&state.db, presented, &client.id).await?
    else {
        return Err(refresh_refused(state, client, presented).await);
    };
    // A bound family needs a proof of its key; an unbound one of a public
    // client (issued before DPoP) is bound from now on.
    match (old.dpop_jkt.as_deref(), jkt) {
        (Some(_), None) => {
            return Err(OAuthError::InvalidDpopProof(
                "the refresh token is DPoP-bound: a proof of its key is required".into(),
            ));
        }
        (Some(bound), Some(proved)) if bound != proved => {
            tracing::warn!(client_id = %client.id, family = %old.family_id, "refresh token presented with another DPoP key");
            return Err(OAuthError::invalid_grant(
                "the refresh token is bound to another DPoP key",
            ));
        }
        _ => {}
    }
    let family_jkt = old.dpop_jkt.as_deref().or(jkt.filter(|_| client.public));
    // Within the original grant and what the client may still have (its
    // registration may have been narrowed since).
    let allowed: Vec<&str> = old
        .scope
        .split(' ')
        .filter(|s| client.allows_scope(s))
        .collect();
    let scope = granted_scope(params, &allowed)?;
    let subject = Subject {
        sub: user.id.to_string(),
        roles,
        sid: Some(old.session_id),
        auth_time: Some(old.auth_time),
        amr: old.amr.clone(),
    };
    let access = tokens::issue_access(state, client, subject, &scope, jkt).await?;
    let id_token = if scope.split(' ').any(|s| s == "openid") {
        let ctx = IdContext {
            user: &user,
            sid: old.session_id,
            auth_time: old.auth_time,
            amr: &old.amr,
            nonce: None,
            scope: &scope,
        };
        Some(tokens::issue_id(state, client, ctx, &access).await?)
    } else {
        None
    };
    let next = NewRefresh {
        family_id: old.family_id,
        parent_id: Some(old.id),
        client_id: &client.id,
        user_id: user.id,
        session_id: old.session_id,
        // The family keeps the original grant; a narrower request narrows only this access token.
        scope: &old.scope,
        auth_time: old.auth_time,
        amr: &old.amr,
        access_jti: &access.jti,
        access_expires_at: access.expires_at,
        ttl: state.config.refresh_token_ttl,
        session_expires_at,
        dpop_jkt: family_jkt,
    };
    let Some(new_token) = grants::rotate_refresh(&state.db, old.id, &next).await? else {
        return Err(refresh_refused(state, client, presented).await);
    };
    tracing::info!(client_id = %client.id, sub = %user.id, jti = %access.jti, "tokens refreshed");
    Ok(TokenResponse {
        access_token: access.token,
        token_type: token_type(jkt),
        expires_in: state.config.access_token_ttl.as_secs(),
        scope,
        refresh_token: Some(new_token),
        id_token,
        issued_token_type: None,
    })
}

/// Why `presented` cannot be redeemed by `client`. A token that was already
/// used is being replayed: its whole family is revoked (RFC 9700 §4.14.2).
/// A refusal for any other reason leaves the token as it was.
async fn refresh_refused(state: &AppState, client: &Client, presented: &str) -> OAuthError {
    let found = match grants::find_refresh(&state.db, presented).await {
        Ok(Some(found)) if found.client_id == client.id => found,
        // Another client's token is left untouched, and looks unknown.
        Ok(_) => return OAuthError::invalid_grant("unknown refresh token"),
        Err(e) => return e.into(),
    };
    if found.rotated_at.is_some() || found.revoked_at.is_some() {
        if found.revoked_at.is_none() {
            if let Err(e) =
                grants::revoke_family(&state.db, found.family_id, "refresh token reuse").await
            {
                return e.into();
            }
            tracing::warn!(client_id = %client.id, family = %found.family_id, "refresh token reused; family revoked");
        }
        return OAuthError::invalid_grant("refresh token is no longer valid");
    }
    if found.expires_at <= OffsetDateTime::now_utc() {
        return OAuthError::invalid_grant("refresh token expired");
    }
    let live = async {
        Ok::<_, sqlx::Error>((
            sessions::live_until(&state.db, found.session_id).await?,
            realm::active_user_with_roles(&state.db, found.user_id).await?,
        ))
    };
    match live.await {
        Ok((None, _)) => session_ended(),
        Ok((_, None)) => user_inactive(),
        // Everything holds again: it changed while this request ran.
        Ok(_) => OAuthError::invalid_grant("refresh token is no longer valid"),
        Err(e) => e.into(),
    }
}

/// The scope a token gets: everything `allowed` when none is requested,
/// otherwise the requested scopes that are allowed (RFC 6749 §3.3: the rest
/// is left out, not refused; the response names what was granted). A request
/// of which nothing is allowed is refused.
fn granted_scope(params: &Params, allowed: &[&str]) -> Result<String, OAuthError> {
    let Some(requested) = params.get("scope") else {
        return Ok(allowed.join(" "));
    };
    let granted = within(&normalise_scope(requested), |s| allowed.contains(&s));
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is available to this client",
        ));
    }
    Ok(granted)
}

async fn client_credentials(
    state: &AppState,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let allowed: Vec<&str> = client
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| !USER_SCOPES.contains(s))
        .collect();
    let scope = granted_scope(params, &allowed)?;
    let subject = Subject {
        sub: client.id.clone(),
        roles: Vec::new(),
        sid: None,
        auth_time: None,
        amr: Vec::new(),
    };
    let access = tokens::issue_access(state, client, subject, &scope, jkt).await?;
    tracing::info!(client_id = %client.id, jti = %access.jti, "client credentials token issued");
    Ok(TokenResponse {
        access_token: access.token,
        token_type: token_type(jkt),
        expires_in: state.config.access_token_ttl.as_secs(),
        scope,
        refresh_token: None,
        id_token: None,
        issued_token_type: None,
    })
}

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693: a service trades an access token it received for one narrowed
/// to the audiences (and scopes) of its next hop, naming itself in `act`.
///
/// Rules: the exchanging client must be one of the subject token's
/// audiences (a service exchanges only tokens sent to it); the new audience
/// is within both the subject token's audience and the client's registered
/// resources; the new scope is within both the subject token's scope and the
/// client's scopes; the new token never outlives the subject token.
async fn token_exchange(
    state: &AppState,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let subject_token = params.require("subject_token")?;
    if params.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::invalid_request(
            "only access tokens can be exchanged",
        ));
    }
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(
            "only access tokens can be requested",
        ));
    }
    if params.get("actor_token").is_some() {
        return Err(OAuthError::invalid_request(
            "actor tokens are not supported: the authenticated client is the actor",
        ));
    }
    if params.get("resource").is_some() {
        return Err(OAuthError::InvalidTarget(
            "use audience (resource names), not resource".into(),
        ));
    }
    // Signature, issuer, type and expiry here; revocation below.
    let subject: AccessClaims =
        tokens::verify_own(state, subject_token, guard::ACCESS_TOKEN_TYP, false).map_err(|_| {
            OAuthError::invalid_request("subject_token is not a valid, current access token")
        })?;
    // The subject token must have been sent to this client (it is in `aud`:
    // a service exchanging what it received) or issued to it (the gateway
    // exchanging its session's token; never a token derived from it, which
    // keeps the original `client_id` but names another party in `aud`).
    let issued_to_it = subject.client_id == client.id && subject.act.is_none();
    if !subject.aud.contains(&client.id) && !issued_to_it {
        return Err(OAuthError::invalid_request(
            "subject_token was not issued for this client",
        ));
    }
    // Where the client may exchange toward is its registered resources (data,
    // not code): order may trade the token it received for one for payment.
    let reachable: Vec<&String> = client.resources.iter().collect();
    let aud: Vec<String> = match params.get("audience") {
        None => reachable.into_iter().cloned().collect(),
        Some(requested) => {
            let requested: Vec<String> = normalise_scope(requested)
                .split(' ')
                .map(str::to_owned)
                .collect();
            if let Some(bad) = requested.iter().find(|a| !reachable.contains(a)) {
                return Err(OAuthError::InvalidTarget(
                    format!("audience {bad} is not available to this client").into(),
                ));
            }
            requested
        }
    };
    if aud.is_empty() {
        return Err(OAuthError::InvalidTarget(
            "no audience is available to this client".into(),
        ));
    }
    let allowed: Vec<&str> = subject
        .scopes()
        .filter(|s| client.allows_scope(s))
        .collect();
    let scope = granted_scope(params, &allowed)?;
    // No write, and no read of the log while this process's copy of it is
    // current: the new token names the subject token and its ancestors
    // (`derived_from`), so a revocation of any of them that races the grant
    // still ends it at every validator once it arrives.
    let (revoked, source) = match state.revocation_view.verdict(&subject) {
        Some(revoked) => (revoked, "copy"),
        None => (revocations::is_revoked(&state.db, &subject).await?, "log"),
    };
    metrics::counter!("idp_exchange_revocation_checks_total", "source" => source).increment(1);
    if revoked {
        return Err(OAuthError::invalid_request(
            "subject_token is not a valid, current access token",
        ));
    }
    let access =
        tokens::issue_exchanged(state, subject.clone(), &client.id, aud, scope.clone(), jkt)
            .await?;
    let expires_in = (access.expires_at - OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0) as u64;
    tracing::info!(actor = %client.id, subject_jti = %subject.jti, jti = %access.jti, "token exchanged");
    Ok(TokenResponse {
        access_token: access.token,
        token_type: token_type(jkt),
        expires_in,
        scope,
        refresh_token: None,
        id_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(&format!("{verifier}!"), challenge));
    }
}
