//! `GET|POST /logout`: RP-initiated logout (OpenID Connect RP-Initiated
//! Logout 1.0). Ends the SSO session, revokes its refresh tokens, and
//! redirects only to a post-logout URI registered for the client.
//!
//! Only a browser's own session is ever ended, and silently only when a valid
//! `id_token_hint` names that very session (§2: the OP need not ask then).
//! Every other case where the browser is signed in — no hint, a hint of
//! another session, a hint signed by a key since withdrawn — gets a
//! confirmation page (a CSRF-protected form), so neither a foreign page nor
//! someone holding an old ID token can sign anybody out. A hint never ends a
//! session the browser does not hold.

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::cookie::CookieJar;
use uuid::Uuid;

use crate::error::PageError;
use crate::http::cookies;
use crate::http::pages::{self, LogoutPage, SignedOutPage};
use crate::http::params::{Params, read_form};
use crate::state::AppState;
use crate::tokens::{self, IdTokenHint};
use crate::{realm, sessions};

pub fn router() -> Router<AppState> {
    Router::new().route("/logout", get(logout_get).post(logout_post))
}

async fn logout_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse_lenient(q.unwrap_or_default().as_bytes());
    logout(&state, jar, params).await.into_response()
}

async fn logout_post(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(&parts.headers, body).await {
        Ok(params) => logout(&state, jar, params).await.into_response(),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// What the `id_token_hint` tells.
enum Hint {
    /// Signed by a key we still publish: names a client and a session.
    Verified(IdTokenHint),
    /// Ours in form, but its key has since been withdrawn: it still names the
    /// client (used only to look up registered redirect URIs), never a session.
    Unverifiable { aud: String },
}

impl Hint {
    fn parse(state: &AppState, token: &str) -> Result<Self, PageError> {
        let invalid = || {
            PageError::bad_request("The id_token_hint is not an ID token issued by this provider.")
        };
        match tokens::verify_own::<IdTokenHint>(state, token, "JWT", true) {
            Ok(hint) => Ok(Hint::Verified(hint)),
            Err(tokens::UNKNOWN_KEY) => {
                let unverified =
                    tokens::unverified_claims::<IdTokenHint>(token).ok_or_else(invalid)?;
                Ok(Hint::Unverifiable {
                    aud: unverified.aud,
                })
            }
            Err(_) => Err(invalid()),
        }
    }

    fn aud(&self) -> &str {
        match self {
            Hint::Verified(h) => &h.aud,
            Hint::Unverifiable { aud } => aud,
        }
    }

    /// The session a verified hint names.
    fn sid(&self) -> Option<Uuid> {
        match self {
            Hint::Verified(h) => h.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
            Hint::Unverifiable { .. } => None,
        }
    }
}

async fn logout(state: &AppState, jar: CookieJar, params: Params) -> Result<Response, PageError> {
    params.check()?;
    let hint = match params.get("id_token_hint") {
        Some(t) => Some(Hint::parse(state, t)?),
        None => None,
    };
    let client_id = match (hint.as_ref().map(Hint::aud), params.get("client_id")) {
        (Some(a), Some(b)) if a != b => {
            return Err(PageError::bad_request(
                "client_id does not match the id_token_hint.",
            ));
        }
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) if id.len() <= 64 => Some(
            realm::client(&state.db, id)
                .await?
                .ok_or_else(|| PageError::bad_request("The application is not registered here."))?,
        ),
        Some(_) => {
            return Err(PageError::bad_request(
                "The application is not registered here.",
            ));
        }
        None => None,
    };
    let target = params.get("post_logout_redirect_uri");
    if let Some(uri) = target
        && !client
            .as_ref()
            .is_some_and(|c| c.has_post_logout_redirect_uri(uri))
    {
        return Err(PageError::bad_request(
            "The post-logout redirect URI is not registered for this application (send client_id or id_token_hint).",
        ));
    }

    let cookie = cookies::session_value(&state.config, &jar);
    let current = match &cookie {
        Some(v) => sessions::find(&state.db, v).await?,
        None => None,
    };
    let ttl = state.config.access_token_ttl;
    let mut jar = jar;
    if let (Some(session), Some(cookie)) = (&current, &cookie) {
        let named = hint.as_ref().and_then(Hint::sid) == Some(session.id);
        let confirmed = params.get("confirm") == Some("yes")
            && cookies::session_csrf_matches("logout", cookie, params.get("csrf_token"));
        if !named && !confirmed {
            let user = realm::user_by_id(&state.db, session.user_id).await?;
            let csrf = cookies::session_csrf("logout", cookie);
            let page = LogoutPage {
                username: user.as_ref().map_or("", |u| u.username.as_str()),
                csrf: &csrf,
                client_id,
                post_logout_redirect_uri: target,
                state: params.get("state"),
            };
            let origin = target.and_then(pages::origin_of);
            return Ok(pages::render(StatusCode::OK, &page, origin.as_deref()));
        }
        sessions::end(&state.db, session.id, "logout", ttl).await?;
        if named {
            tracing::info!(sid = %session.id, "session ended by RP-initiated logout");
        } else {
            tracing::info!(sid = %session.id, "session ended by the user");
        }
        jar = cookies::clear_session(&state.config, jar);
    }

    match target {
        Some(uri) => {
            let mut url = url::Url::parse(uri)
                .map_err(|_| PageError::bad_request("Invalid redirect URI."))?;
            if let Some(s) = params.get("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            Ok((jar, Redirect::to(url.as_str())).into_response())
        }
        None => Ok((jar, pages::render(StatusCode::OK, &SignedOutPage, None)).into_response()),
    }
}
