//! `/account/passkeys`: a signed-in person registers passkeys, names them,
//! sees when each was last used, and removes them ([`crate::passkeys`];
//! issue 17 items 2 and 5).
//!
//! Registering: the page's script asks `POST /account/passkeys/options` (the
//! account CSRF token) for a ceremony bound to this session, the browser's
//! authenticator creates the credential, and the form posts the answer to
//! `POST /account/passkeys`, where webauthn-rs checks it against the stored
//! challenge, origin and RP id. Adding and removing one both need the
//! current password (throttled like a sign-in): a passkey signs in on its
//! own, so a borrowed session cookie alone must neither plant one (a way
//! back in for whoever held the cookie) nor take a second factor away. Each
//! is an `auth_events` row.

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;
use webauthn_rs_proto::{AuthenticatorSelectionCriteria, ResidentKeyRequirement};

use crate::error::PageError;
use crate::http::account::{
    FORM, SignedIn, check_password, event, form, signed_in, signed_out_page,
};
use crate::http::cookies;
use crate::http::pages::{self, PasskeyRow, PasskeysPage};
use crate::http::passkey_login::{options_answer, refused_json};
use crate::passkeys::{self, Added, Ceremony, UNAVAILABLE};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/passkeys", get(show).post(register))
        .route("/account/passkeys/options", post(options))
        .route("/account/passkeys/remove", post(remove))
}

const NOT_REGISTERED: &str =
    "The passkey could not be registered. Start again with \"Add a passkey\".";
const DUPLICATE: &str = "That passkey is registered already.";
const FULL: &str = "You have as many passkeys as an account may have. Remove one first.";
const NOT_YOURS: &str = "That passkey is not one of yours, or it was removed already.";

/// What `/account/passkeys?done=…` tells (fixed texts: nothing from the
/// query reaches the page).
#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "added" => Some("Your passkey was added. You can sign in with it alone."),
        "removed" => Some("The passkey was removed."),
        _ => None,
    }
}

/// The registration binding of `me`'s session.
fn binding(me: &SignedIn) -> [u8; 32] {
    passkeys::binding("register", &me.session.id.to_string())
}

async fn page(
    state: &AppState,
    me: &SignedIn,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&'static str>,
) -> Result<Response, PageError> {
    let rows = passkeys::list(&state.db, me.user.id)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id.to_string(),
            name: p.name,
            added: pages::when(p.created_at),
            last_used: p.last_used_at.map(pages::when),
        })
        .collect();
    let csrf = cookies::session_csrf(FORM, &me.cookie);
    let page = PasskeysPage {
        csrf: &csrf,
        available: state.webauthn.is_some(),
        passkeys: rows,
        notice,
        error,
    };
    Ok(pages::render(status, &page, None))
}

/// `GET /account/passkeys`.
async fn show(State(state): State<AppState>, jar: CookieJar, Query(q): Query<Done>) -> Response {
    let result = async {
        match signed_in(&state, &jar).await? {
            Some(me) => page(&state, &me, StatusCode::OK, notice(q.done.as_deref()), None).await,
            None => Ok(signed_out_page()),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /account/passkeys/options`: a registration ceremony for the signed-in
/// person (JSON: `ceremony`, `publicKey`), excluding the passkeys they have.
async fn options(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some(webauthn) = state.webauthn.as_ref() else {
            return Ok::<_, PageError>(refused_json(StatusCode::NOT_FOUND, UNAVAILABLE));
        };
        let Some((me, _, _)) = form(&state, &jar, req).await? else {
            return Ok(refused_json(
                StatusCode::UNAUTHORIZED,
                "You are not signed in.",
            ));
        };
        let held = passkeys::of_user(&state.db, me.user.id).await?;
        let exclude = held.iter().map(|s| s.passkey.cred_id().clone()).collect();
        let display = if me.user.name.is_empty() {
            &me.user.username
        } else {
            &me.user.name
        };
        let (mut challenge, registration) = webauthn
            .start_passkey_registration(me.user.id, &me.user.username, display, Some(exclude))
            .map_err(|e| PageError::Server(format!("passkey registration failed to start: {e}")))?;
        // A discoverable credential, so the passkey signs in without a
        // username (webauthn-rs asks for a server-side one by default).
        challenge.public_key.authenticator_selection = Some(AuthenticatorSelectionCriteria {
            resident_key: Some(ResidentKeyRequirement::Required),
            require_resident_key: true,
            ..challenge
                .public_key
                .authenticator_selection
                .take()
                .unwrap_or_default()
        });
        let ceremony = Ceremony::Register(registration);
        let id = passkeys::begin(&state.db, &binding(&me), Some(me.user.id), &ceremony).await?;
        Ok(options_answer(id, &challenge.public_key))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /account/passkeys`: `ceremony`, `credential` (the browser's answer,
/// JSON), `name` and `current_password`.
async fn register(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let refused = |message| page(&state, &me, StatusCode::BAD_REQUEST, None, Some(message));
        let Some(webauthn) = state.webauthn.as_ref() else {
            return refused(UNAVAILABLE).await;
        };
        let typed = params.get("current_password").unwrap_or("");
        if let Err((status, message)) =
            check_password(&state, &me, &addr, typed, "passkey_change_refused").await?
        {
            return page(&state, &me, status, None, Some(message)).await;
        }
        let credential = params
            .get("credential")
            .and_then(|c| serde_json::from_str::<RegisterPublicKeyCredential>(c).ok());
        let ceremony = params.get("ceremony").and_then(|c| Uuid::parse_str(c).ok());
        let (Some(credential), Some(ceremony)) = (credential, ceremony) else {
            return refused(NOT_REGISTERED).await;
        };
        let taken = passkeys::take(&state.db, ceremony, &binding(&me)).await?;
        let Some(passkeys::Taken {
            ceremony: Ceremony::Register(registration),
            user: Some(user),
        }) = taken
        else {
            return refused(NOT_REGISTERED).await;
        };
        if user != me.user.id {
            return refused(NOT_REGISTERED).await;
        }
        let passkey = match webauthn.finish_passkey_registration(&credential, &registration) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(user = %me.user.id, error = %e, "passkey registration refused");
                return refused(NOT_REGISTERED).await;
            }
        };
        let name: String = params
            .get("name")
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("Passkey")
            .chars()
            .take(passkeys::MAX_NAME)
            .collect();
        let added = passkeys::add(
            &state.db,
            me.user.id,
            &name,
            &passkey,
            event("passkey_registered", &me, &addr),
        )
        .await?;
        match added {
            Added::Added => {
                tracing::info!(user = %me.user.id, "passkey registered");
                Ok(Redirect::to("/account/passkeys?done=added").into_response())
            }
            Added::Duplicate => refused(DUPLICATE).await,
            Added::Full => refused(FULL).await,
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /account/passkeys/remove`: `passkey` (its id) and `current_password`.
async fn remove(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some((me, params, addr)) = form(&state, &jar, req).await? else {
            return Ok(signed_out_page());
        };
        let Some(id) = params.get("passkey").and_then(|p| Uuid::parse_str(p).ok()) else {
            return page(&state, &me, StatusCode::NOT_FOUND, None, Some(NOT_YOURS)).await;
        };
        let typed = params.get("current_password").unwrap_or("");
        if let Err((status, message)) =
            check_password(&state, &me, &addr, typed, "passkey_change_refused").await?
        {
            return page(&state, &me, status, None, Some(message)).await;
        }
        let removed = passkeys::remove(
            &state.db,
            me.user.id,
            id,
            event("passkey_removed", &me, &addr),
        );
        if !removed.await? {
            return page(&state, &me, StatusCode::NOT_FOUND, None, Some(NOT_YOURS)).await;
        }
        tracing::info!(user = %me.user.id, "passkey removed");
        Ok(Redirect::to("/account/passkeys?done=removed").into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
