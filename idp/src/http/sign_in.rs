//! What every step of a sign-in shares (the login form, the second step,
//! passkeys, and `/authorize` when a session answers): the sealed flow
//! cookie opened and its CSRF token matched, the messages, the session made
//! or refreshed, the code issued and the redirect back to the client. The
//! step modules use this one; it uses none of them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use time::OffsetDateTime;

use crate::config::CODE_TTL;
use crate::error::{AuthorizeError, PageError};
use crate::flow::{AuthRequest, LoginFlow};
use crate::grants::{self, Code};
use crate::http::cookies;
use crate::http::pages::{self, LoginPage};
use crate::http::params::Params;
use crate::realm::{Client, User};
use crate::sessions::{self, NewSession, Session};
use crate::state::AppState;
use crate::throttle;
use platform::crypto::ct_eq;

/// The longest username a form may carry.
pub(super) const MAX_USERNAME: usize = 128;

/// The generic answer to a failed sign-in: it never says which part was wrong.
pub const LOGIN_FAILED: &str = "Invalid username or password.";
/// The answer while a name or address is locked out (the same for unknown names).
pub const LOGIN_LOCKED: &str =
    "Too many failed sign-in attempts. Please wait a few minutes and try again.";
/// The answer when the password checks are fully booked.
pub const LOGIN_BUSY: &str = "Sign-in is very busy right now. Please try again in a moment.";

/// Counts a sign-in attempt in `idp_sign_ins_total{outcome}`: `succeeded`,
/// `failed` (wrong name or password), `locked_out` (refused while a name or
/// address is locked) or `busy` (asked to retry).
pub(super) fn attempt(outcome: &'static str) {
    metrics::counter!("idp_sign_ins_total", "outcome" => outcome).increment(1);
}

/// The answer when the client asked for another user (`id_token_hint`) than
/// `user`, who signed in: `login_required` back to the client, the flow
/// ended, no code and no session (OIDC Core §3.1.2.1). `None`: the right user.
pub(super) fn other_user_than_hinted(
    state: &AppState,
    jar: &CookieJar,
    flow: &LoginFlow,
    user: &User,
) -> Option<Response> {
    let hinted = flow.request.expected_sub.as_deref()?;
    if hinted == user.id.to_string() {
        return None;
    }
    tracing::info!(client_id = %flow.request.client_id, "signed in as another user than the id_token_hint names");
    let refused = AuthorizeError::Redirect {
        redirect_uri: flow.request.redirect_uri.clone(),
        error: "login_required",
        description: "the user who signed in is not the id_token_hint's user".into(),
        state: flow.request.state.clone(),
        issuer: state.config.issuer.clone(),
    };
    Some((cookies::clear_flow(&state.config, jar.clone()), refused).into_response())
}

/// What a form posted from the sign-in pages needs first: the sealed flow
/// cookie, opened, with its CSRF token matched, and the client it is for.
pub(super) async fn open_flow(
    state: &AppState,
    jar: &CookieJar,
    params: &Params,
) -> Result<(LoginFlow, Arc<Client>), PageError> {
    let flow = cookies::flow_value(&state.config, jar)
        .and_then(|c| LoginFlow::open(&state.flow_sealer, &c))
        .ok_or_else(|| PageError::bad_request(FLOW_GONE))?;
    if !params
        .get("csrf_token")
        .is_some_and(|t| ct_eq(t.as_bytes(), flow.csrf.as_bytes()))
    {
        return Err(PageError::bad_request(
            "The form could not be verified (CSRF check failed). Please try again.",
        ));
    }
    let client = state
        .auth_cache
        .client_or_load(&state.db, &flow.request.client_id)
        .await?
        .ok_or_else(|| PageError::bad_request("The application is no longer registered here."))?;
    Ok((flow, client))
}

/// The answer when the flow cookie is missing, expired or not ours.
pub const FLOW_GONE: &str = "Your sign-in request has expired or was started elsewhere. Go back to the application and try again.";

/// Completes a sign-in of `user` by methods `amr`: the SSO session (the same
/// person's refreshed, anyone else's ended and a new one started), the
/// throttle counters `cleared` reset, the audit line, the code and the
/// redirect back to the client.
pub(super) async fn finish(
    state: &AppState,
    jar: CookieJar,
    request: &AuthRequest,
    user: &User,
    amr: &[&str],
    addr: &str,
    cleared: &[&str],
) -> Result<Response, PageError> {
    let (jar, session, code) = establish(state, jar, request, user, amr, addr, cleared).await?;
    let redirect = redirect_with_code(state, request, &session, &code)?;
    Ok((jar, redirect).into_response())
}

/// [`finish`] but the redirect: the session (and its cookie in the answered
/// jar, the flow cookie cleared) and the code.
pub(super) async fn establish(
    state: &AppState,
    jar: CookieJar,
    request: &AuthRequest,
    user: &User,
    amr: &[&str],
    addr: &str,
    cleared: &[&str],
) -> Result<(CookieJar, Session, String), PageError> {
    // Same person again: a fresh auth_time and cookie, same sid. Someone else:
    // the previous session ends and a new one starts.
    let previous = match cookies::session_value(&state.config, &jar) {
        Some(v) => sessions::find(&state.db, &v).await?,
        None => None,
    };
    attempt("succeeded");
    let succeeded = throttle::AuthEvent {
        kind: "login_succeeded",
        username: Some(&user.username),
        client_id: Some(&request.client_id),
        addr,
    };
    let (session, token, code) = match previous {
        Some(p) if p.user_id == user.id => {
            throttle::succeeded(&state.db, cleared, succeeded).await?;
            let (session, token) = sessions::reauthenticate(&state.db, p.id, amr).await?;
            let code = create_code(state, request, &session).await?;
            (session, token, code)
        }
        other => {
            if let Some(p) = other {
                sessions::end(
                    &state.db,
                    p.id,
                    "another user signed in",
                    state.config.access_token_ttl,
                )
                .await?;
            }
            // The common case: every write of the sign-in in one statement.
            let new = NewSession {
                user: user.id,
                amr,
                ttl: state.config.session_ttl,
            };
            sessions::sign_in(&state.db, new, request, CODE_TTL, cleared, succeeded).await?
        }
    };
    tracing::info!(user = %user.id, sid = %session.id, client_id = %request.client_id, "signed in");
    let jar = cookies::clear_flow(&state.config, jar);
    let jar = cookies::set_session(&state.config, jar, token);
    Ok((jar, session, code))
}

/// The login form of `flow` for `client`, with `username` filled in and
/// `error` shown; its forms may end up at the client's origin (CSP).
pub(super) fn login_form(
    state: &AppState,
    flow: &LoginFlow,
    client: &Client,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let page = LoginPage {
        client_name: display_name(client),
        csrf: &flow.csrf,
        username,
        error,
        passkeys: state.webauthn.is_some(),
    };
    let origin = pages::origin_of(&flow.request.redirect_uri);
    pages::render(status, &page, origin.as_deref())
}

pub(crate) fn display_name(client: &Client) -> &str {
    if client.name.is_empty() {
        &client.id
    } else {
        &client.name
    }
}

/// Stores a code for this request and session and sends the browser back.
pub(super) async fn issue_code(
    state: &AppState,
    request: &AuthRequest,
    session: &Session,
) -> Result<Response, PageError> {
    let code = create_code(state, request, session).await?;
    redirect_with_code(state, request, session, &code)
}

/// Stores a code for this request and session; answers the code.
pub(super) async fn create_code(
    state: &AppState,
    request: &AuthRequest,
    session: &Session,
) -> Result<String, PageError> {
    Ok(grants::create_code(
        &state.db,
        &Code {
            client_id: request.client_id.clone(),
            user_id: session.user_id,
            session_id: session.id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.auth_time,
            expires_at: OffsetDateTime::now_utc() + CODE_TTL,
            amr: session.amr.clone(),
        },
    )
    .await?)
}

/// Sends the browser back to the client with `code`.
pub(super) fn redirect_with_code(
    state: &AppState,
    request: &AuthRequest,
    session: &Session,
    code: &str,
) -> Result<Response, PageError> {
    let mut url = url::Url::parse(&request.redirect_uri)
        .map_err(|_| PageError::bad_request("The application's redirect URI is invalid."))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", code);
        if let Some(s) = &request.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &state.config.issuer);
    }
    tracing::info!(client_id = %request.client_id, sid = %session.id, "authorization code issued");
    Ok(Redirect::to(url.as_str()).into_response())
}
