//! `POST /login`: the login form behind `/authorize` ([`super::authorize`]).
//!
//! Under a flood of wrong passwords a real user still signs in: the attempt
//! first reserves its place on its throttle keys ([`crate::in_flight`], so no
//! more hashes run than the lock-outs allow), then waits for the password
//! pool in the queue its keys earned (no recent failures: ahead), and when
//! that queue is full it is answered at once with the form and a "try again"
//! message (503, `Retry-After`) instead of waiting without bound.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_extra::extract::cookie::CookieJar;

use crate::blocking::Priority;
use crate::config::CODE_TTL;
use crate::error::{AuthorizeError, PageError};
use crate::flow::{AuthRequest, LoginFlow};
use crate::http::authorize::{MAX_USERNAME, create_code, display_name, redirect_with_code};
use crate::http::pages::{self, LoginPage};
use crate::http::params::{Params, read_form};
use crate::http::peer::peer_addr;
use crate::http::{cookies, second_factor};
use crate::in_flight::{self, Admission};
use crate::password::Passwords;
use crate::realm::{Client, User};
use crate::sessions::{NewSession, Session};
use crate::state::AppState;
use crate::{realm, sessions, throttle, totp};
use platform::crypto::ct_eq;

pub fn router() -> Router<AppState> {
    Router::new().route("/login", post(login))
}

/// The generic answer to a failed sign-in: it never says which part was wrong.
pub const LOGIN_FAILED: &str = "Invalid username or password.";
/// The answer while a name or address is locked out (the same for unknown names).
pub const LOGIN_LOCKED: &str =
    "Too many failed sign-in attempts. Please wait a few minutes and try again.";
/// The answer when the password checks are fully booked.
pub const LOGIN_BUSY: &str = "Sign-in is very busy right now. Please try again in a moment.";

/// The "try again" answer: `page` with `Retry-After: 1`.
fn busy(mut page: Response) -> Response {
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    page
}

/// Checks the CSRF token and the credentials, starts (or refreshes) the SSO
/// session and completes the authorization request.
/// Counts a sign-in attempt in `idp_sign_ins_total{outcome}`: `succeeded`,
/// `failed` (wrong name or password), `locked_out` (refused while a name or
/// address is locked) or `busy` (asked to retry).
fn sign_in(outcome: &'static str) {
    metrics::counter!("idp_sign_ins_total", "outcome" => outcome).increment(1);
}

async fn login(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    match login_inner(&state, jar, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn login_inner(
    state: &AppState,
    jar: CookieJar,
    req: Request,
) -> Result<Response, PageError> {
    let (parts, body) = req.into_parts();
    let params = read_form(&parts.headers, body).await?;
    params.check()?;
    let (flow, client) = open_flow(state, &jar, &params).await?;
    let username = params
        .get("username")
        .filter(|u| u.len() <= MAX_USERNAME)
        .unwrap_or("");
    let password = params
        .get("password")
        .filter(|p| p.len() <= crate::password::MAX_BYTES)
        .unwrap_or("");
    let addr = peer_addr(&parts, &state.config.trusted_proxies);
    let form_again = |status: StatusCode, error: &'static str| {
        let page = LoginPage {
            client_name: display_name(&client),
            csrf: &flow.csrf,
            username,
            error: Some(error),
            passkeys: state.webauthn.is_some(),
        };
        let origin = pages::origin_of(&flow.request.redirect_uri);
        pages::render(status, &page, origin.as_deref())
    };
    let event = |kind| throttle::AuthEvent {
        kind,
        username: Some(username),
        client_id: Some(&client.id),
        addr: &addr,
    };

    // Brute-force defence: the submitted name and the address, whether or not
    // the account exists, so the lock-out reveals nothing either.
    let (account_key, addr_key) = (throttle::account_key(username), throttle::addr_key(&addr));
    // An address served behind meets a full queue: refused before any
    // database work (see `crate::cache`).
    if state.passwords.full() && state.auth_cache.is_behind(&addr_key) {
        return Ok(busy(form_again(
            StatusCode::SERVICE_UNAVAILABLE,
            LOGIN_BUSY,
        )));
    }
    let reservation = match in_flight::reserve(
        &state.db,
        &[
            (&account_key, throttle::ACCOUNT),
            (&addr_key, throttle::ADDRESS),
        ],
    )
    .await?
    {
        Admission::Admitted(r) => r,
        Admission::Refused => {
            sign_in("locked_out");
            throttle::audit(&state.db, event("login_locked")).await?;
            return Ok(form_again(StatusCode::OK, LOGIN_LOCKED));
        }
    };

    let priority = reservation.priority();
    if priority == Priority::Low {
        state.auth_cache.mark_behind(&addr_key);
    }
    let user = realm::user_by_username(&state.db, username)
        .await?
        .filter(|u| !u.disabled);
    let checked = state
        .passwords
        .verify(
            password.to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
            priority,
        )
        .await;
    let ok = match checked {
        Ok(ok) => ok,
        Err(e) if Passwords::is_busy(&e) => {
            reservation.busy().await?;
            sign_in("busy");
            tracing::info!(client_id = %client.id, "password checks fully booked; asked to retry");
            return Ok(busy(form_again(
                StatusCode::SERVICE_UNAVAILABLE,
                LOGIN_BUSY,
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let user = match user {
        Some(u) if ok => u,
        _ => {
            sign_in("failed");
            tracing::info!(client_id = %client.id, %addr, "sign-in failed");
            reservation.failed(event("login_failed")).await?;
            return Ok(form_again(StatusCode::OK, LOGIN_FAILED));
        }
    };
    // The password was right, so another user than the hinted one is no
    // failure, but gets no code and no session.
    if let Some(refused) = other_user_than_hinted(state, &jar, &flow, &user) {
        reservation.succeeded().await?;
        return Ok(refused);
    }
    // A person with an authenticator app, or who must have one: the password
    // was right, the second factor (or setting one up) is next (the
    // account's failures are cleared only once the sign-in is complete).
    let policy = totp::policy(&state.db, user.id, &client.id).await?;
    if policy.enrolled() || policy.required {
        reservation.succeeded().await?;
        tracing::info!(user = %user.id, client_id = %client.id, "password accepted; second factor asked for");
        let flow = flow.second_factor_due(user.id, None);
        return Ok(second_factor::next_step(
            state, jar, flow, &client, &user, policy,
        ));
    }
    let done = finish(
        state,
        jar,
        &flow.request,
        &user,
        crate::amr::PASSWORD,
        &addr,
        &[&account_key],
    )
    .await?;
    // The account's counter is gone with its row; the address's place is given back.
    reservation.succeeded().await?;
    Ok(done)
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
    sign_in("succeeded");
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
