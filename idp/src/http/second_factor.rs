//! `POST /login/otp`: the second step of a sign-in for a person with an
//! authenticator app ([`crate::totp`]).
//!
//! The page is shown by `POST /login` once the password was right, or by
//! `/authorize` when a client asks for a second factor (`acr_values`) and the
//! live session was made with the password alone (step-up: the password is
//! not asked again). The sealed flow cookie carries who proved the first
//! factor ([`SecondFactorDue`]); the form carries the flow's CSRF token. A
//! code counts only for a time step newer than the last one accepted, a
//! recovery code only once; wrong codes count in the same lock-outs as
//! passwords, on the person's second-factor key and the address.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_extra::extract::cookie::CookieJar;

use crate::error::PageError;
use crate::flow::LoginFlow;
use crate::http::authorize::display_name;
use crate::http::cookies;
use crate::http::login::{FLOW_GONE, LOGIN_LOCKED, finish, open_flow};
use crate::http::pages::{self, SecondFactorPage};
use crate::http::params::read_form;
use crate::http::peer::peer_addr;
use crate::realm::{self, Client};
use crate::state::AppState;
use crate::totp::Proof;
use crate::{sessions, throttle, totp};

pub fn router() -> Router<AppState> {
    Router::new().route("/login/otp", post(verify))
}

/// The answer to a wrong, used or replayed code (it never says which).
pub const CODE_REFUSED: &str =
    "That code is not right, or it was used already. Enter the current code from your app.";

/// The second-factor page for `flow` (its first factor done), with the flow
/// cookie that carries it.
pub fn ask(
    state: &AppState,
    jar: CookieJar,
    flow: &LoginFlow,
    client: &Client,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let page = SecondFactorPage {
        client_name: display_name(client),
        csrf: &flow.csrf,
        error,
    };
    let jar = cookies::set_flow(&state.config, jar, flow.seal(&state.flow_sealer));
    let origin = pages::origin_of(&flow.request.redirect_uri);
    (jar, pages::render(status, &page, origin.as_deref())).into_response()
}

async fn verify(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    verify_inner(&state, jar, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn verify_inner(
    state: &AppState,
    jar: CookieJar,
    req: Request,
) -> Result<Response, PageError> {
    let (parts, body) = req.into_parts();
    let params = read_form(&parts.headers, body).await?;
    params.check()?;
    let (flow, client) = open_flow(state, &jar, &params).await?;
    let gone = || PageError::bad_request(FLOW_GONE);
    let due = flow.pending.clone().ok_or_else(gone)?;
    let user = realm::user_by_id(&state.db, due.user)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(gone)?;
    // A step-up continues the session it started from, in this browser only.
    if let Some(sid) = due.session {
        let current = match cookies::session_value(&state.config, &jar) {
            Some(v) => sessions::find(&state.db, &v).await?,
            None => None,
        };
        if current.is_none_or(|s| s.id != sid) {
            return Err(gone());
        }
    }
    // Removed meanwhile (by the person elsewhere, or an administrator): start again.
    let authenticator = totp::authenticator_of(&state.db, user.id)
        .await?
        .ok_or_else(gone)?;
    let secret = totp::open(&state.totp_sealer, user.id, &authenticator.secret_sealed)
        .ok_or_else(|| PageError::Server(totp::UNSEALABLE.into()))?;

    let addr = peer_addr(&parts, &state.config.trusted_proxies);
    let event = |kind| throttle::AuthEvent {
        kind,
        username: Some(&user.username),
        client_id: Some(&client.id),
        addr: &addr,
    };
    let typed = params.get("code").unwrap_or("");
    let refused = match totp::prove(&state.db, user.id, &secret, typed, event).await? {
        Proof::Accepted => None,
        Proof::Refused => Some(CODE_REFUSED),
        Proof::Locked => Some(LOGIN_LOCKED),
    };
    if let Some(message) = refused {
        return Ok(ask(
            state,
            jar,
            &flow,
            &client,
            StatusCode::OK,
            Some(message),
        ));
    }
    let account_key = throttle::account_key(&user.username);
    let otp_key = totp::throttle_key(user.id);
    finish(
        state,
        jar,
        &flow.request,
        &user,
        totp::amr::WITH_SECOND_FACTOR,
        &addr,
        &[&account_key, &otp_key],
    )
    .await
}
