//! `POST /login/otp`: the second step of a sign-in for a person with an
//! authenticator app ([`crate::totp`]), or who must have one and sets it up
//! here (`idp users|clients require-second-factor`).
//!
//! The page is shown by `POST /login` once the password was right, or by
//! `/authorize` when a client asks for a second factor (`acr_values`, or it
//! requires one) and the live session was made with the password alone
//! (step-up: the password is not asked again). Setting one up at sign-in:
//! the new secret waits in the sealed flow cookie until a code of it is
//! entered; then the app is stored, the session made, and the recovery codes
//! shown once with a link that continues the authorization request (the
//! session answers it). The sealed flow cookie carries who proved the first
//! factor ([`SecondFactorDue`]); the form carries the flow's CSRF token. A
//! code counts only for a time step newer than the last one accepted, a
//! recovery code only once; wrong codes count in the same lock-outs as
//! passwords, on the person's second-factor key and the address. A person
//! with passkeys may use one instead ([`super::passkey_login`]).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_extra::extract::cookie::CookieJar;

use crate::error::PageError;
use crate::flow::LoginFlow;
use crate::http::cookies;
use crate::http::pages::{self, AuthenticatorSetup, SecondFactorPage};
use crate::http::params::read_form;
use crate::http::peer::peer_addr;
use crate::http::sign_in::{FLOW_GONE, LOGIN_LOCKED, display_name, establish, finish, open_flow};
use crate::realm::{self, Client, User};
use crate::state::AppState;
use crate::totp::Proof;
use crate::{sessions, throttle, totp};
use platform::crypto::{b64url, b64url_decode};
use time::OffsetDateTime;

pub fn router() -> Router<AppState> {
    Router::new().route("/login/otp", post(verify))
}

/// The answer to a wrong, used or replayed code (it never says which).
pub const CODE_REFUSED: &str =
    "That code is not right, or it was used already. Enter the current code from your app.";

/// The next step of `flow` (its first factor done) under `policy`: the code
/// of the person's app, or setting one up.
pub fn next_step(
    state: &AppState,
    jar: CookieJar,
    mut flow: LoginFlow,
    client: &Client,
    user: &User,
    policy: totp::Policy,
) -> Response {
    if let Some(due) = flow.pending.as_mut() {
        due.app = policy.app;
        due.passkeys = policy.passkeys;
    }
    if policy.enrolled() {
        ask(state, jar, &flow, client, StatusCode::OK, None)
    } else {
        set_up(state, jar, flow, client, user, StatusCode::OK, None)
    }
}

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
    let due = flow.pending.as_ref();
    let passkey = state.webauthn.is_some() && due.is_some_and(|d| d.passkeys);
    let page = SecondFactorPage {
        client_name: display_name(client),
        csrf: &flow.csrf,
        // The code form, unless passkeys are all the person has.
        code: !passkey || due.is_some_and(|d| d.app),
        passkey,
        setup: None,
        recovery_codes: Vec::new(),
        continue_to: None,
        error,
    };
    render(state, jar, flow, &page, status)
}

/// The page that sets up an app during the sign-in: a new secret (kept in
/// the flow until a code of it is entered), or the one shown before.
fn set_up(
    state: &AppState,
    jar: CookieJar,
    mut flow: LoginFlow,
    client: &Client,
    user: &User,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let secret = setup_secret(&flow).unwrap_or_else(totp::new_secret);
    if let Some(due) = flow.pending.as_mut() {
        due.setup = Some(b64url(&secret));
    }
    let p = totp::provisioning(&secret, ISSUER_LABEL, &user.username);
    let page = SecondFactorPage {
        client_name: display_name(client),
        csrf: &flow.csrf,
        code: true,
        passkey: false,
        setup: Some(AuthenticatorSetup {
            qr_svg: p.qr_svg,
            base32: p.base32,
            sealed: String::new(),
        }),
        recovery_codes: Vec::new(),
        continue_to: None,
        error,
    };
    render(state, jar, &flow, &page, status)
}

/// The secret being set up in `flow`, if any.
fn setup_secret(flow: &LoginFlow) -> Option<Vec<u8>> {
    b64url_decode(flow.pending.as_ref()?.setup.as_deref()?)
}

fn render(
    state: &AppState,
    jar: CookieJar,
    flow: &LoginFlow,
    page: &SecondFactorPage<'_>,
    status: StatusCode,
) -> Response {
    let jar = cookies::set_flow(&state.config, jar, flow.seal(&state.flow_sealer));
    let origin = pages::origin_of(&flow.request.redirect_uri);
    (jar, pages::render(status, page, origin.as_deref())).into_response()
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
    let user = pending_user(state, &jar, &flow).await?.ok_or_else(gone)?;
    let addr = peer_addr(&parts, &state.config.trusted_proxies);
    let typed = params.get("code").unwrap_or("");
    let Some(authenticator) = totp::authenticator_of(&state.db, user.id).await? else {
        // No app yet: this flow sets one up (or it was removed meanwhile,
        // by the person elsewhere or an administrator: start again).
        let secret = setup_secret(&flow).ok_or_else(gone)?;
        return set_up_with(state, jar, flow, &client, &user, &secret, typed, &addr).await;
    };
    let secret = totp::open(&state.totp_sealer, user.id, &authenticator.secret_sealed)
        .ok_or_else(|| PageError::Server(totp::UNSEALABLE.into()))?;
    let event = |kind| throttle::AuthEvent {
        kind,
        username: Some(&user.username),
        client_id: Some(&client.id),
        addr: &addr,
    };
    let refused = match totp::prove(&state.db, user.id, &secret, typed, &addr, event).await? {
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
    let cleared = cleared_keys(&user);
    finish(
        state,
        jar,
        &flow.request,
        &user,
        crate::amr::PASSWORD_AND_CODE,
        &addr,
        &[&cleared[0], &cleared[1]],
    )
    .await
}

/// The person whose first factor `flow` has done (not disabled), when this
/// browser may finish it: a step-up continues the session it started from,
/// in this browser only. `None`: start again.
pub(super) async fn pending_user(
    state: &AppState,
    jar: &CookieJar,
    flow: &LoginFlow,
) -> Result<Option<User>, PageError> {
    let Some(due) = flow.pending.as_ref() else {
        return Ok(None);
    };
    let Some(user) = realm::user_by_id(&state.db, due.user)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    if let Some(sid) = due.session {
        let current = match cookies::session_value(&state.config, jar) {
            Some(v) => sessions::find(&state.db, &v).await?,
            None => None,
        };
        if current.is_none_or(|s| s.id != sid) {
            return Ok(None);
        }
    }
    Ok(Some(user))
}

/// The failure counters a completed sign-in of `user` clears.
pub(super) fn cleared_keys(user: &User) -> [String; 2] {
    [
        throttle::account_key(&user.username),
        totp::throttle_key(user.id),
    ]
}

/// The code `typed` for the app being set up with `secret`: a wrong one
/// shows the same secret again; a right one stores the app with its recovery
/// codes, signs the person in, and shows the codes once with the way on.
#[allow(clippy::too_many_arguments)]
async fn set_up_with(
    state: &AppState,
    jar: CookieJar,
    flow: LoginFlow,
    client: &Client,
    user: &User,
    secret: &[u8],
    typed: &str,
    addr: &str,
) -> Result<Response, PageError> {
    let now = OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
    let Some(step) = totp::matching_step(secret, typed, now) else {
        return Ok(set_up(
            state,
            jar,
            flow,
            client,
            user,
            StatusCode::OK,
            Some(NOT_YET),
        ));
    };
    let event = throttle::AuthEvent {
        kind: "totp_enrolled",
        username: Some(&user.username),
        client_id: Some(&client.id),
        addr,
    };
    let enrolled = totp::enrol(&state.db, &state.totp_sealer, user.id, secret, step, event);
    let Some(codes) = enrolled.await? else {
        // Set up meanwhile elsewhere: its code is what counts now.
        return Ok(ask(state, jar, &flow, client, StatusCode::OK, None));
    };
    tracing::info!(user = %user.id, client_id = %client.id, "authenticator app set up at sign-in");
    let cleared = cleared_keys(user);
    let (jar, _, _) = establish(
        state,
        jar,
        &flow.request,
        user,
        crate::amr::PASSWORD_AND_CODE,
        addr,
        &[&cleared[0], &cleared[1]],
    )
    .await?;
    // The way on: the same authorization request, which the new session
    // answers at once (the code made with the session is left to expire).
    let continue_to = flow.request.authorize_path();
    let page = SecondFactorPage {
        client_name: display_name(client),
        csrf: &flow.csrf,
        code: false,
        passkey: false,
        setup: None,
        recovery_codes: codes,
        continue_to: Some(&continue_to),
        error: None,
    };
    Ok((jar, pages::render(StatusCode::OK, &page, None)).into_response())
}

/// A setup code that does not match.
pub const NOT_YET: &str =
    "That code does not match. Check the app's clock and enter the code it shows now.";

/// The name authenticator apps list the account under.
pub const ISSUER_LABEL: &str = "Baton";
