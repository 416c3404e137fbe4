//! `/account`: a signed-in person's own page at the IdP (issue 17 item 5).
//!
//! It lists their live sessions with the applications each one signed in to,
//! signs one (or every other one) out, and changes their password. Only the
//! SSO session cookie identifies the person; every form carries a CSRF token
//! bound to that cookie ([`cookies::session_csrf`]), and the cookie is
//! `SameSite=Lax`, so a foreign page can neither read the page nor post its
//! forms. A password change needs the current password, counts wrong ones in
//! the same lock-outs as sign-in ([`crate::in_flight`]), rotates this
//! browser's cookie, and ends every other session: each of those publishes a
//! `sid` revocation that reaches every service and queues its back-channel
//! logout tokens ([`crate::sessions::end`]). Every change is an
//! `auth_events` row.

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use uuid::Uuid;

use crate::account;
use crate::error::PageError;
use crate::http::cookies;
use crate::http::pages::{self, AccountPage, AccountSignedOutPage, SessionRow};
use crate::http::params::{Params, read_form};
use crate::http::peer::peer_addr;
use crate::http::sign_in::{LOGIN_BUSY, LOGIN_LOCKED};
use crate::in_flight::{self, Admission};
use crate::password::{self, Passwords};
use crate::realm::{self, User};
use crate::sessions::{self, Session};
use crate::state::AppState;
use crate::throttle::{self, AuthEvent};
use crate::totp;

/// The CSRF token's purpose (see [`cookies::session_csrf`]).
pub(super) const FORM: &str = "account";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route("/account/password", post(change_password))
        .route("/account/sessions/end", post(end_session))
        .route("/account/sessions/end-others", post(end_other_sessions))
}

/// What `/account?done=…` tells after a change (fixed texts: nothing from the
/// query reaches the page).
#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "password" => Some("Your password was changed. Every other session was signed out."),
        "session" => Some("The session was signed out."),
        "others" => Some("Every other session was signed out."),
        "authenticator-removed" => {
            Some("Your authenticator app was removed: signing in asks for your password only.")
        }
        _ => None,
    }
}

/// The person behind this browser's session cookie.
pub(super) struct SignedIn {
    pub cookie: String,
    pub session: Session,
    pub user: User,
}

pub(super) async fn signed_in(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<SignedIn>, PageError> {
    let Some(cookie) = cookies::session_value(&state.config, jar) else {
        return Ok(None);
    };
    let Some(session) = sessions::find(&state.db, &cookie).await? else {
        return Ok(None);
    };
    let Some(user) = realm::user_by_id(&state.db, session.user_id).await? else {
        return Ok(None);
    };
    Ok(Some(SignedIn {
        cookie,
        session,
        user,
    }))
}

async fn show(State(state): State<AppState>, jar: CookieJar, Query(q): Query<Done>) -> Response {
    match signed_in(&state, &jar).await {
        Ok(Some(me)) => page(&state, &me, notice(q.done.as_deref()), None, StatusCode::OK)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Ok(None) => signed_out_page(),
        Err(e) => e.into_response(),
    }
}

pub(super) fn signed_out_page() -> Response {
    pages::render(StatusCode::OK, &AccountSignedOutPage, None)
}

async fn page(
    state: &AppState,
    me: &SignedIn,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let sessions = account::sessions_of(&state.db, me.user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            current: s.id == me.session.id,
            signed_in: pages::when(s.created_at),
            authenticated: pages::when(s.auth_time),
            expires: pages::when(s.expires_at),
            apps: s.clients.join(", "),
        })
        .collect();
    let csrf = cookies::session_csrf(FORM, &me.cookie);
    let authenticator = totp::authenticator_of(&state.db, me.user.id)
        .await?
        .is_some();
    let passkeys = crate::passkeys::list(&state.db, me.user.id).await?.len();
    let page = AccountPage {
        authenticator,
        passkeys: i64::try_from(passkeys).unwrap_or(i64::MAX),
        username: &me.user.username,
        name: &me.user.name,
        csrf: &csrf,
        sessions,
        notice,
        error,
    };
    Ok(pages::render(status, &page, None))
}

/// Reads a form of the account page: the person behind the cookie and the
/// fields, once the CSRF token matched. `None`: nobody is signed in.
pub(super) async fn form(
    state: &AppState,
    jar: &CookieJar,
    req: Request,
) -> Result<Option<(SignedIn, Params, String)>, PageError> {
    let (parts, body) = req.into_parts();
    let params = read_form(&parts.headers, body).await?;
    params.check()?;
    let Some(me) = signed_in(state, jar).await? else {
        return Ok(None);
    };
    if !cookies::session_csrf_matches(FORM, &me.cookie, params.get("csrf_token")) {
        return Err(PageError::bad_request(
            "The form could not be verified (CSRF check failed). Please reload the page and try again.",
        ));
    }
    let addr = peer_addr(&parts, &state.config.trusted_proxies);
    Ok(Some((me, params, addr)))
}

pub(super) fn event<'a>(kind: &'static str, me: &'a SignedIn, addr: &'a str) -> AuthEvent<'a> {
    AuthEvent {
        kind,
        username: Some(&me.user.username),
        client_id: None,
        addr,
    }
}

/// `POST /account/sessions/end` (`session`: the id of one of the person's sessions).
async fn end_session(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let id = params
            .get("session")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| PageError::bad_request("Which session? The form named none."))?;
        let ttl = state.config.access_token_ttl;
        if !account::end_own_session(&state.db, me.user.id, id, ttl).await? {
            // Someone else's session, or one already over: nothing to end.
            return page(&state, &me, None, Some(NOT_YOURS), StatusCode::NOT_FOUND).await;
        }
        throttle::audit(&state.db, event("session_signed_out", &me, &addr)).await?;
        tracing::info!(user = %me.user.id, sid = %id, "session signed out from the account page");
        if id == me.session.id {
            let jar = cookies::clear_session(&state.config, jar);
            return Ok((jar, Redirect::to("/account")).into_response());
        }
        Ok(Redirect::to("/account?done=session").into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

const NOT_YOURS: &str = "That session is not one of yours, or it has already ended.";

/// `POST /account/sessions/end-others`.
async fn end_other_sessions(
    State(state): State<AppState>,
    jar: CookieJar,
    req: Request,
) -> Response {
    let result = async {
        let Some((me, _, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let ended = account::end_other_sessions(
            &state.db,
            me.user.id,
            me.session.id,
            "signed out from the account page",
            state.config.access_token_ttl,
        )
        .await?;
        if ended > 0 {
            throttle::audit(&state.db, event("session_signed_out", &me, &addr)).await?;
        }
        tracing::info!(user = %me.user.id, ended, "other sessions signed out from the account page");
        Ok::<_, PageError>(Redirect::to("/account?done=others").into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

const WRONG_PASSWORD: &str = "Your current password is not right.";

/// Checks `typed` against the signed-in person's password, for a change
/// that needs it: in the same lock-outs as sign-in, so a stolen session
/// cookie does not become a free password oracle. A wrong one is counted
/// and audited as `failed`. `Err((status, message))`: refused.
pub(super) async fn check_password(
    state: &AppState,
    me: &SignedIn,
    addr: &str,
    typed: &str,
    failed: &'static str,
) -> Result<Result<(), (StatusCode, &'static str)>, PageError> {
    if typed.len() > password::MAX_BYTES {
        return Ok(Err((StatusCode::BAD_REQUEST, WRONG_PASSWORD)));
    }
    let account_key = throttle::account_key(&me.user.username);
    let addr_key = throttle::addr_key(addr);
    let keys = [
        (account_key.as_str(), throttle::ACCOUNT),
        (addr_key.as_str(), throttle::ADDRESS),
    ];
    let reservation = match in_flight::reserve(&state.db, &keys).await? {
        Admission::Admitted(r) => r,
        Admission::Refused => {
            throttle::audit(&state.db, event("login_locked", me, addr)).await?;
            return Ok(Err((StatusCode::BAD_REQUEST, LOGIN_LOCKED)));
        }
    };
    let checked = state
        .passwords
        .verify(
            typed.to_owned(),
            Some(me.user.password_hash.clone()),
            reservation.priority(),
        )
        .await;
    match checked {
        Ok(true) => {
            reservation.succeeded().await?;
            Ok(Ok(()))
        }
        Ok(false) => {
            reservation.failed(event(failed, me, addr)).await?;
            tracing::info!(user = %me.user.id, %addr, "change refused: wrong current password");
            Ok(Err((StatusCode::BAD_REQUEST, WRONG_PASSWORD)))
        }
        Err(e) if Passwords::is_busy(&e) => {
            reservation.busy().await?;
            Ok(Err((StatusCode::SERVICE_UNAVAILABLE, LOGIN_BUSY)))
        }
        Err(e) => Err(e.into()),
    }
}
const TOO_SHORT: &str = "The new password must have at least 8 characters.";
const TOO_LONG: &str = "The new password is too long.";
const MISMATCH: &str = "The two new passwords are not the same.";
const UNCHANGED: &str = "The new password is the one you have now.";

/// `POST /account/password`: `current_password`, `new_password`,
/// `new_password_again`.
async fn change_password(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let current = params.get("current_password").unwrap_or("");
        let new = params.get("new_password").unwrap_or("");
        let refused = |message| page(&state, &me, None, Some(message), StatusCode::BAD_REQUEST);
        if new.chars().count() < password::MIN_CHARS {
            return refused(TOO_SHORT).await;
        }
        if new.len() > password::MAX_BYTES || current.len() > password::MAX_BYTES {
            return refused(TOO_LONG).await;
        }
        if params.get("new_password_again") != Some(new) {
            return refused(MISMATCH).await;
        }
        if new == current {
            return refused(UNCHANGED).await;
        }

        if let Err((status, message)) =
            check_password(&state, &me, &addr, current, "password_change_failed").await?
        {
            return page(&state, &me, None, Some(message), status).await;
        }

        let hash = state.passwords.hash(new.to_owned()).await?;
        realm::set_password(&state.db, me.user.id, &hash).await?;
        // The password was just proven: a fresh auth_time and a new cookie
        // value for this browser (no fixation across the change).
        let (session, cookie) =
            sessions::reauthenticate(&state.db, me.session.id, crate::amr::PASSWORD).await?;
        let ended = account::end_other_sessions(
            &state.db,
            me.user.id,
            session.id,
            "password changed",
            state.config.access_token_ttl,
        )
        .await?;
        throttle::audit(&state.db, event("password_changed", &me, &addr)).await?;
        tracing::info!(user = %me.user.id, ended, "password changed from the account page");
        let jar = cookies::set_session(&state.config, jar, cookie);
        Ok((jar, Redirect::to("/account?done=password")).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_notices_reach_the_page() {
        assert!(notice(Some("password")).is_some());
        assert!(notice(Some("<script>")).is_none());
        assert!(notice(None).is_none());
    }
}
