//! `POST /login/passkey/options` and `POST /login/passkey`: signing in with
//! a passkey ([`crate::passkeys`]), on the login page or as the second step.
//!
//! On the login page no one is named yet: the ceremony allows any
//! discoverable credential, the authenticator answers with the person's
//! user handle (their id), and the credential must be one of theirs; the
//! passkey is both factors ([`crate::amr::PASSKEY`]). On the second-factor
//! page the password was right for a known person (or their session steps
//! up): the ceremony allows their passkeys only, so another person's passkey
//! is refused by the signature check itself ([`crate::amr::PASSWORD_AND_PASSKEY`]).
//! Either way the ceremony is bound to this sign-in flow (its CSRF token,
//! inside the sealed flow cookie) and counts once; refusals are
//! `passkey_failed` audit rows and never say why.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableKey, PublicKeyCredential};

use crate::error::PageError;
use crate::flow::LoginFlow;
use crate::http::params::read_form;
use crate::http::peer::peer_addr;
use crate::http::second_factor;
use crate::http::sign_in::{self, FLOW_GONE, open_flow};
use crate::passkeys::{self, Ceremony, UNAVAILABLE};
use crate::realm::{self, Client, User};
use crate::state::AppState;
use crate::{amr, throttle};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/passkey/options", post(options))
        .route("/login/passkey", post(verify))
}

/// The answer to a passkey that did not sign anyone in (it never says why).
pub const PASSKEY_REFUSED: &str =
    "That passkey could not sign you in. Try again, or use your password.";

/// A ceremony's options for the page's script: `{ceremony, publicKey}`.
pub fn options_answer(ceremony: Uuid, public_key: &impl serde::Serialize) -> Response {
    let mut r = Json(json!({"ceremony": ceremony, "publicKey": public_key})).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A refusal the page's script shows: `{error, error_description}`.
pub fn refused_json(status: StatusCode, description: &str) -> Response {
    let error = match status {
        StatusCode::UNAUTHORIZED => "login_required",
        StatusCode::NOT_FOUND => "not_available",
        _ => "invalid_request",
    };
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The binding of a sign-in flow's ceremonies.
fn binding(flow: &LoginFlow) -> [u8; 32] {
    passkeys::binding("sign-in", &flow.csrf)
}

/// `POST /login/passkey/options` (`csrf_token`): a ceremony for this flow.
async fn options(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let Some(webauthn) = state.webauthn.as_ref() else {
            return Ok(refused_json(StatusCode::NOT_FOUND, UNAVAILABLE));
        };
        let (parts, body) = req.into_parts();
        let params = read_form(&parts.headers, body).await?;
        params.check()?;
        let (flow, _) = open_flow(&state, &jar, &params).await?;
        let bound = binding(&flow);
        let started = |e: webauthn_rs::prelude::WebauthnError| {
            PageError::Server(format!("passkey sign-in failed to start: {e}"))
        };
        let (id, public_key) = match flow.pending.as_ref() {
            // The second step of a known person: their passkeys only.
            Some(due) => {
                let held: Vec<_> = passkeys::of_user(&state.db, due.user)
                    .await?
                    .into_iter()
                    .map(|s| s.passkey)
                    .collect();
                if held.is_empty() {
                    return Ok(refused_json(
                        StatusCode::BAD_REQUEST,
                        "You have no passkey.",
                    ));
                }
                let (challenge, auth) = webauthn
                    .start_passkey_authentication(&held)
                    .map_err(started)?;
                let ceremony = Ceremony::SecondFactor(auth);
                let id = passkeys::begin(&state.db, &bound, Some(due.user), &ceremony).await?;
                (id, challenge.public_key)
            }
            // Anyone: the authenticator says who.
            None => {
                let (mut challenge, auth) = webauthn
                    .start_discoverable_authentication()
                    .map_err(started)?;
                // A button the person pressed, not the autofill prompt
                // (conditional mediation) webauthn-rs prepares by default.
                challenge.mediation = None;
                let ceremony = Ceremony::SignIn(auth);
                let id = passkeys::begin(&state.db, &bound, None, &ceremony).await?;
                (id, challenge.public_key)
            }
        };
        Ok::<_, PageError>(options_answer(id, &public_key))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /login/passkey`: `csrf_token`, `ceremony` and `credential` (the
/// browser's answer, JSON).
async fn verify(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let result = async {
        let (parts, body) = req.into_parts();
        let params = read_form(&parts.headers, body).await?;
        params.check()?;
        let (flow, client) = open_flow(&state, &jar, &params).await?;
        // The second step: whose first factor is done, in this browser.
        let pending = match flow.pending {
            Some(_) => Some(
                second_factor::pending_user(&state, &jar, &flow)
                    .await?
                    .ok_or_else(|| PageError::bad_request(FLOW_GONE))?,
            ),
            None => None,
        };
        let addr = peer_addr(&parts, &state.config.trusted_proxies);
        let webauthn = state
            .webauthn
            .as_ref()
            .ok_or_else(|| PageError::bad_request(UNAVAILABLE))?;
        let credential = params
            .get("credential")
            .and_then(|c| serde_json::from_str::<PublicKeyCredential>(c).ok());
        let ceremony = params.get("ceremony").and_then(|c| Uuid::parse_str(c).ok());
        let taken = match ceremony {
            Some(id) => passkeys::take(&state.db, id, &binding(&flow)).await?,
            None => None,
        };
        let proven = match (credential, taken) {
            (Some(credential), Some(taken)) => {
                prove(&state, webauthn, pending, credential, taken).await?
            }
            _ => None,
        };
        let Some((user, methods)) = proven else {
            throttle::audit(
                &state.db,
                throttle::AuthEvent {
                    kind: "passkey_failed",
                    username: None,
                    client_id: Some(&client.id),
                    addr: &addr,
                },
            )
            .await?;
            tracing::info!(client_id = %client.id, %addr, "passkey sign-in refused");
            return Ok(refused_page(&state, jar, &flow, &client));
        };
        if let Some(refused) = sign_in::other_user_than_hinted(&state, &jar, &flow, &user) {
            return Ok(refused);
        }
        let cleared = second_factor::cleared_keys(&user);
        sign_in::finish(
            &state,
            jar,
            &flow.request,
            &user,
            methods,
            &addr,
            &[&cleared[0], &cleared[1]],
        )
        .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Checks `credential` against the ceremony `taken`: the person it signs in
/// and by which methods, or `None`. `pending` is the person of a second
/// step (their first factor done), `None` on the login page.
async fn prove(
    state: &AppState,
    webauthn: &webauthn_rs::Webauthn,
    pending: Option<User>,
    credential: PublicKeyCredential,
    taken: passkeys::Taken,
) -> Result<Option<(User, &'static [&'static str])>, PageError> {
    let (user, stored, result, methods) = match (taken.ceremony, pending) {
        (Ceremony::SignIn(auth), None) => {
            let Ok((id, credential_id)) =
                webauthn.identify_discoverable_authentication(&credential)
            else {
                return Ok(None);
            };
            let Some(stored) = passkeys::find(&state.db, id, credential_id).await? else {
                return Ok(None);
            };
            let key = DiscoverableKey::from(&stored.passkey);
            let Ok(result) = webauthn.finish_discoverable_authentication(&credential, auth, &[key])
            else {
                return Ok(None);
            };
            let Some(user) = realm::user_by_id(&state.db, id)
                .await?
                .filter(|u| !u.disabled)
            else {
                return Ok(None);
            };
            (user, stored, result, amr::PASSKEY)
        }
        (Ceremony::SecondFactor(auth), Some(user)) if taken.user == Some(user.id) => {
            let Some(stored) =
                passkeys::find(&state.db, user.id, credential.get_credential_id()).await?
            else {
                return Ok(None);
            };
            let Ok(result) = webauthn.finish_passkey_authentication(&credential, &auth) else {
                return Ok(None);
            };
            (user, stored, result, amr::PASSWORD_AND_PASSKEY)
        }
        _ => return Ok(None),
    };
    if !result.user_verified() {
        return Ok(None);
    }
    if !passkeys::used(&state.db, stored, &result).await? {
        tracing::warn!(user = %user.id, "passkey counter did not grow: a cloned authenticator?");
        return Ok(None);
    }
    Ok(Some((user, methods)))
}

/// The page a refused passkey comes back to: the second step again, or the
/// login form.
fn refused_page(state: &AppState, jar: CookieJar, flow: &LoginFlow, client: &Client) -> Response {
    if flow.pending.is_some() {
        return second_factor::ask(
            state,
            jar,
            flow,
            client,
            StatusCode::OK,
            Some(PASSKEY_REFUSED),
        );
    }
    sign_in::login_form(
        state,
        flow,
        client,
        "",
        Some(PASSKEY_REFUSED),
        StatusCode::OK,
    )
}
