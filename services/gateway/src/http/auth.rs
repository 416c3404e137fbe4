//! Browser sign-in and sign-out (backend-for-frontend).
//!
//! * `GET /auth/login?return_to=/path` — starts the authorization code flow
//!   (PKCE S256, `state`, `nonce`). The flow's secrets travel in a short-lived
//!   sealed cookie, not in a database row (Hydra's lesson: less database traffic).
//!   With `acr_values` (and `max_age`) it is a step-up sign-in (RFC 9470): the
//!   link the relay hands the page when a service answered
//!   `insufficient_user_authentication` ([`super::api`]).
//! * `GET /auth/callback` — checks `state`, redeems the code, validates the ID
//!   token, and creates a new session (new id: any previous one is ended).
//! * `POST /auth/logout` — CSRF-checked; ends the session, revokes the refresh
//!   token, and sends the browser through the IdP's end-session endpoint.
//! * `GET /auth/session` — who is signed in, for the page (and its CSRF token).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::csrf::{self, CSRF_HEADER};
use crate::error::{GatewayError, SIGN_IN_PATH};
use guard::{StepUpChallenge, unix_now};
use platform::crypto::ct_eq;

use crate::oidc::IdpError;
use crate::session::{SessionData, SessionId, User};

/// How long a started sign-in may take before its callback is refused.
const LOGIN_FLOW_SECS: i64 = 600;
/// Sealing context of the login-flow cookie (keeps it apart from session rows).
const LOGIN_FLOW_CONTEXT: &[u8] = b"baton-gateway-login-flow";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(SIGN_IN_PATH, get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/session", get(session_info))
}

/// The step-up sign-in for `challenge` (a service's RFC 9470 answer), as a
/// link the page follows: `/auth/login?acr_values=…&max_age=…`.
pub fn step_up_link(challenge: &StepUpChallenge) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("acr_values", &challenge.acr_values);
    if let Some(max_age) = challenge.max_age {
        query.append_pair("max_age", &max_age.to_string());
    }
    format!("{SIGN_IN_PATH}?{}", query.finish())
}

/// The cookie names: `__Host-` prefixed (which requires `Secure`, `Path=/`
/// and no `Domain`) when the gateway is served over https.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-baton_session"
    } else {
        "baton_session"
    }
}

fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-baton_login"
    } else {
        "baton_login"
    }
}

fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .build()
}

/// The session id from the request's cookie, if well-formed.
pub fn session_id(jar: &CookieJar, secure: bool) -> Option<SessionId> {
    jar.get(session_cookie_name(secure))
        .and_then(|c| SessionId::from_cookie(c.value()))
}

/// What the callback must find again.
#[derive(Serialize, Deserialize)]
struct LoginFlow {
    state: String,
    nonce: String,
    code_verifier: String,
    return_to: String,
    started_at: i64,
}

/// Only local paths: never `//host` or `/\host` (open redirects).
fn local_path(candidate: Option<&str>) -> String {
    match candidate {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    acr_values: Option<String>,
    max_age: Option<String>,
}

async fn login(
    State(app): State<AppState>,
    jar: CookieJar,
    Query(q): Query<LoginQuery>,
) -> Result<(CookieJar, Redirect), GatewayError> {
    let secure = app.config.secure_cookies();
    let step_up = match q.acr_values.as_deref() {
        None => None,
        Some(acr_values) => Some(
            StepUpChallenge::new(acr_values, q.max_age.as_deref()).ok_or_else(|| {
                GatewayError::SignIn(
                    "The step-up request is not valid (acr_values, max_age).".into(),
                )
            })?,
        ),
    };
    let request = app
        .oidc
        .authorization_request(step_up.as_ref())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot start sign-in");
            GatewayError::SignInUnavailable
        })?;
    let flow = LoginFlow {
        state: request.state,
        nonce: request.nonce,
        code_verifier: request.code_verifier,
        return_to: local_path(q.return_to.as_deref()),
        started_at: unix_now(),
    };
    let json = serde_json::to_vec(&flow).unwrap_or_default();
    let sealed = URL_SAFE_NO_PAD.encode(app.config.session_key.seal(&json, LOGIN_FLOW_CONTEXT));
    let mut flow_cookie = cookie(login_cookie_name(secure), sealed, secure);
    flow_cookie.set_max_age(time::Duration::seconds(LOGIN_FLOW_SECS));
    Ok((jar.add(flow_cookie), Redirect::to(request.url.as_str())))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(app): State<AppState>,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, GatewayError> {
    let secure = app.config.secure_cookies();
    let flow = jar
        .get(login_cookie_name(secure))
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.value()).ok())
        .and_then(|sealed| app.config.session_key.open(&sealed, LOGIN_FLOW_CONTEXT))
        .and_then(|json| serde_json::from_slice::<LoginFlow>(&json).ok())
        .ok_or_else(|| {
            GatewayError::SignIn(
                "This sign-in was not started here, or it expired. Please sign in again.".into(),
            )
        })?;
    let jar = jar.remove(cookie(login_cookie_name(secure), String::new(), secure));
    // Any failure below still clears the flow cookie: each flow is single-use.
    let result = finish_sign_in(&app, &jar, flow, q).await;
    match result {
        Ok((jar, return_to)) => Ok((jar, Redirect::to(&return_to)).into_response()),
        Err(e) => Ok((jar, e).into_response()),
    }
}

async fn finish_sign_in(
    app: &AppState,
    jar: &CookieJar,
    flow: LoginFlow,
    q: CallbackQuery,
) -> Result<(CookieJar, String), GatewayError> {
    let secure = app.config.secure_cookies();
    if unix_now() - flow.started_at > LOGIN_FLOW_SECS {
        return Err(GatewayError::SignIn(
            "This sign-in took too long. Please sign in again.".into(),
        ));
    }
    let state_ok = q
        .state
        .as_deref()
        .is_some_and(|s| ct_eq(s.as_bytes(), flow.state.as_bytes()));
    if !state_ok {
        return Err(GatewayError::SignIn(
            "The sign-in answer does not belong to this sign-in (state mismatch).".into(),
        ));
    }
    if let Some(error) = q.error {
        let detail = q
            .error_description
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(GatewayError::SignIn(format!(
            "The identity provider answered {error}{detail}."
        )));
    }
    let code = q
        .code
        .ok_or_else(|| GatewayError::SignIn("The sign-in answer has no code.".into()))?;
    let (tokens, id) = app
        .oidc
        .redeem_code(&code, &flow.code_verifier, &flow.nonce)
        .await
        .map_err(|e| match e {
            IdpError::Rejected(reason) => {
                tracing::warn!(%reason, "sign-in refused");
                GatewayError::SignIn(format!("The sign-in could not be completed ({reason})."))
            }
            IdpError::Unavailable(reason) => {
                tracing::warn!(%reason, "sign-in failed: IdP unavailable");
                GatewayError::SignInUnavailable
            }
        })?;
    let access = tokens
        .access_claims()
        .ok_or_else(|| GatewayError::SignIn("The access token could not be read.".into()))?;
    if access.sub != id.sub {
        return Err(GatewayError::SignIn(
            "The ID token and the access token name different users.".into(),
        ));
    }
    let user = User {
        sub: id.sub,
        name: id.name,
        email: id.email,
        roles: access.roles,
        scope: access.scope,
        sid: id.sid,
    };
    // A new session id at every sign-in; the previous session (if any) ends.
    if let Some(old) = session_id(jar, secure) {
        app.sessions.delete(&old).await?;
    }
    let session = app.sessions.create(&SessionData::new(user, tokens)).await?;
    tracing::info!(session = %session.fingerprint(), "signed in");
    let jar = jar.clone().add(cookie(
        session_cookie_name(secure),
        session.as_str().to_owned(),
        secure,
    ));
    Ok((jar, flow.return_to))
}

async fn logout(
    State(app): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(CookieJar, Redirect), GatewayError> {
    let secure = app.config.secure_cookies();
    csrf::check_origin(&headers, &app.config.public_origin())?;
    let Some(id) = session_id(&jar, secure) else {
        return Ok((jar, Redirect::to("/")));
    };
    let jar = jar.remove(cookie(session_cookie_name(secure), String::new(), secure));
    let Some(data) = app.sessions.load(&id).await? else {
        return Ok((jar, Redirect::to("/")));
    };
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            url::form_urlencoded::parse(&body)
                .find(|(k, _)| k == "csrf_token")
                .map(|(_, v)| v.into_owned())
        });
    csrf::check_token(presented.as_deref(), &data.csrf_token)?;
    app.sessions.delete(&id).await?;
    tracing::info!(session = %id.fingerprint(), "signed out");
    if let Some(refresh_token) = data.tokens.refresh_token.clone() {
        let oidc = app.oidc.clone();
        tokio::spawn(async move { oidc.revoke(&refresh_token).await });
    }
    let target = app
        .oidc
        .end_session_url(data.tokens.id_token.as_deref())
        .await;
    Ok((
        jar,
        Redirect::to(target.as_ref().map_or("/", |u| u.as_str())),
    ))
}

#[derive(Serialize)]
struct SessionInfo {
    authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token_expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_in: Option<&'static str>,
    /// The IdP's own page where the person sees their sessions and changes
    /// their password (`<issuer>/account`).
    #[serde(skip_serializing_if = "Option::is_none")]
    account_url: Option<String>,
}

#[derive(Serialize)]
struct UserInfo {
    sub: String,
    name: Option<String>,
    email: Option<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
}

async fn session_info(
    State(app): State<AppState>,
    jar: CookieJar,
) -> Result<Response, GatewayError> {
    let data = match session_id(&jar, app.config.secure_cookies()) {
        Some(id) => app.sessions.load(&id).await?,
        None => None,
    };
    let info = match data {
        None => SessionInfo {
            authenticated: false,
            user: None,
            csrf_token: None,
            access_token_expires_at: None,
            sign_in: Some(SIGN_IN_PATH),
            account_url: None,
        },
        Some(d) => SessionInfo {
            authenticated: true,
            csrf_token: Some(d.csrf_token),
            access_token_expires_at: Some(d.tokens.expires_at),
            sign_in: None,
            account_url: Some(format!("{}/account", app.config.issuer)),
            user: Some(UserInfo {
                scopes: d
                    .user
                    .scope
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect(),
                sub: d.user.sub,
                name: d.user.name,
                email: d.user.email,
                roles: d.user.roles,
            }),
        },
    };
    let mut response = Json(info).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_always_a_local_path() {
        assert_eq!(local_path(Some("/orders?x=1")), "/orders?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "orders",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_http_only_lax_and_host_prefixed_over_https() {
        let c = cookie(session_cookie_name(true), "v".into(), true);
        let text = c.to_string();
        assert!(text.starts_with("__Host-baton_session=v"));
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(text.contains(part), "{text}");
        }
        let plain = cookie(session_cookie_name(false), "v".into(), false).to_string();
        assert!(plain.starts_with("baton_session=v") && !plain.contains("Secure"));
    }
}
