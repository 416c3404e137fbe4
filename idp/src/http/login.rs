//! `POST /login`: the login form behind `/authorize` ([`super::authorize`]).
//!
//! Under a flood of wrong passwords a real user still signs in: the attempt
//! first reserves its place on its throttle keys ([`crate::in_flight`], so no
//! more hashes run than the lock-outs allow), then waits for the password
//! pool in the queue its keys earned (no recent failures: ahead), and when
//! that queue is full it is answered at once with the form and a "try again"
//! message (503, `Retry-After`) instead of waiting without bound.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_extra::extract::cookie::CookieJar;

use crate::blocking::Priority;
use crate::error::PageError;
use crate::http::params::read_form;
use crate::http::peer::peer_addr;
use crate::http::second_factor;
use crate::http::sign_in::{
    self, LOGIN_BUSY, LOGIN_FAILED, LOGIN_LOCKED, MAX_USERNAME, finish, login_form, open_flow,
    other_user_than_hinted,
};
use crate::in_flight::{self, Admission};
use crate::password::Passwords;
use crate::state::AppState;
use crate::{realm, throttle, totp};

pub fn router() -> Router<AppState> {
    Router::new().route("/login", post(login))
}

/// The "try again" answer: `page` with `Retry-After: 1`.
fn busy(mut page: Response) -> Response {
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    page
}

/// Checks the CSRF token and the credentials, starts (or refreshes) the SSO
/// session and completes the authorization request.
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
        login_form(state, &flow, &client, username, Some(error), status)
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
            sign_in::attempt("locked_out");
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
            sign_in::attempt("busy");
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
            sign_in::attempt("failed");
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
