//! `/account/authenticator`: a signed-in person sets up an authenticator app
//! (TOTP, [`crate::totp`]) or removes theirs (issue 17 items 1 and 5).
//!
//! Setting one up: the page draws a fresh secret as a QR code (server-side
//! SVG, no third-party host) and carries it to the confirming form sealed
//! under the TOTP key and bound to this session, so nothing is stored until
//! the person proves their app reads it with a current code. Then the
//! authenticator is stored (its first code's step counts as used) with ten
//! recovery codes, shown once. Removing it takes a current code or a
//! recovery code, throttled like a sign-in, so a borrowed session cookie
//! alone cannot turn the second factor off. Both are `auth_events` rows.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::PageError;
use crate::http::account::{FORM, SignedIn, event, form, signed_in, signed_out_page};
use crate::http::cookies;
use crate::http::pages::{self, AuthenticatorPage, AuthenticatorSetup};
use crate::http::second_factor::{CODE_REFUSED, ISSUER_LABEL, NOT_YET};
use crate::http::sign_in::LOGIN_LOCKED;
use crate::state::AppState;
use crate::totp::Proof;
use crate::{throttle, totp};
use platform::crypto::{b64url, b64url_decode};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/authenticator", get(show).post(confirm))
        .route("/account/authenticator/remove", post(remove))
}

const ALREADY: &str = "You already have an authenticator app. Remove it first to set up another.";
const SETUP_EXPIRED: &str =
    "This setup page has expired. A new code is shown below: scan it again.";

/// The additional data that binds a secret being set up to the session.
fn setup_aad(session: Uuid) -> Vec<u8> {
    format!("baton-idp totp setup v1 {session}").into_bytes()
}

/// The setup of `secret` for the person behind `me`.
fn setup(state: &AppState, me: &SignedIn, secret: &[u8]) -> AuthenticatorSetup {
    let p = totp::provisioning(secret, ISSUER_LABEL, &me.user.username);
    AuthenticatorSetup {
        qr_svg: p.qr_svg,
        base32: p.base32,
        sealed: b64url(&state.totp_sealer.seal(secret, &setup_aad(me.session.id))),
    }
}

/// What the page shows besides the person's state.
enum Shown {
    /// A fresh secret to set up (without an authenticator), or the
    /// authenticator they have.
    Current,
    /// The secret being set up, again (its code did not match).
    SetupAgain(Vec<u8>),
    /// The recovery codes just made, this once.
    RecoveryCodes(Vec<String>),
}

async fn page(
    state: &AppState,
    me: &SignedIn,
    status: StatusCode,
    error: Option<&'static str>,
    shown: Shown,
) -> Result<Response, PageError> {
    let csrf = cookies::session_csrf(FORM, &me.cookie);
    let enrolled = totp::authenticator_of(&state.db, me.user.id)
        .await?
        .is_some();
    let (setup, recovery_codes) = match shown {
        Shown::Current if enrolled => (None, Vec::new()),
        Shown::Current => (Some(setup(state, me, &totp::new_secret())), Vec::new()),
        Shown::SetupAgain(secret) => (Some(setup(state, me, &secret)), Vec::new()),
        Shown::RecoveryCodes(codes) => (None, codes),
    };
    let page = AuthenticatorPage {
        csrf: &csrf,
        setup,
        recovery_codes_left: if enrolled && recovery_codes.is_empty() {
            Some(totp::recovery_codes_left(&state.db, me.user.id).await?)
        } else {
            None
        },
        recovery_codes,
        error,
    };
    Ok(pages::render(status, &page, None))
}

/// `GET /account/authenticator`.
async fn show(State(state): State<AppState>, jar: CookieJar) -> Response {
    let result = async {
        match signed_in(&state, &jar).await? {
            Some(me) => page(&state, &me, StatusCode::OK, None, Shown::Current).await,
            None => Ok(signed_out_page()),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /account/authenticator`: `setup` (the sealed secret) and `code`.
async fn confirm(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let Some(secret) = params
            .get("setup")
            .and_then(b64url_decode)
            .and_then(|sealed| state.totp_sealer.open(&sealed, &setup_aad(me.session.id)))
        else {
            return page(
                &state,
                &me,
                StatusCode::BAD_REQUEST,
                Some(SETUP_EXPIRED),
                Shown::Current,
            )
            .await;
        };
        let now = OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
        let Some(step) = totp::matching_step(&secret, params.get("code").unwrap_or(""), now) else {
            // The same secret again, so the app just scanned keeps working.
            let again = Shown::SetupAgain(secret);
            return page(&state, &me, StatusCode::BAD_REQUEST, Some(NOT_YET), again).await;
        };
        let enrolled = totp::enrol(
            &state.db,
            &state.totp_sealer,
            me.user.id,
            &secret,
            step,
            event("totp_enrolled", &me, &addr),
        )
        .await?;
        let Some(codes) = enrolled else {
            return page(
                &state,
                &me,
                StatusCode::CONFLICT,
                Some(ALREADY),
                Shown::Current,
            )
            .await;
        };
        tracing::info!(user = %me.user.id, "authenticator app set up");
        page(
            &state,
            &me,
            StatusCode::OK,
            None,
            Shown::RecoveryCodes(codes),
        )
        .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /account/authenticator/remove`: `code` (current, or a recovery code).
async fn remove(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let Some(authenticator) = totp::authenticator_of(&state.db, me.user.id).await? else {
            return Ok(Redirect::to("/account").into_response());
        };
        let secret = totp::open(&state.totp_sealer, me.user.id, &authenticator.secret_sealed)
            .ok_or_else(|| PageError::Server(totp::UNSEALABLE.into()))?;
        let typed = params.get("code").unwrap_or("");
        let proof = totp::prove(&state.db, me.user.id, &secret, typed, &addr, |kind| {
            event(kind, &me, &addr)
        })
        .await?;
        let (status, message) = match proof {
            Proof::Accepted => (StatusCode::SEE_OTHER, None),
            Proof::Refused => (StatusCode::BAD_REQUEST, Some(CODE_REFUSED)),
            Proof::Locked => (StatusCode::TOO_MANY_REQUESTS, Some(LOGIN_LOCKED)),
        };
        if message.is_some() {
            return page(&state, &me, status, message, Shown::Current).await;
        }
        totp::remove(&state.db, me.user.id).await?;
        throttle::audit(&state.db, event("totp_disabled", &me, &addr)).await?;
        tracing::info!(user = %me.user.id, "authenticator app removed");
        Ok(Redirect::to("/account?done=authenticator-removed").into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
