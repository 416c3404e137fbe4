//! `GET|POST /authorize`: the authorization endpoint (RFC 6749 §4.1, OIDC
//! Core §3.1.2). It shows the login form, which posts to `POST /login`
//! ([`super::login`]).

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::cookie::CookieJar;
use time::OffsetDateTime;

use crate::error::{AuthorizeError, PageError};
use crate::flow::{AuthRequest, LoginFlow};
use crate::http::params::{Params, read_form};
use crate::http::sign_in::{MAX_USERNAME, issue_code, login_form};
use crate::http::{cookies, second_factor};
use crate::realm::{self, Client};
use crate::sessions::{self, Session};
use crate::state::AppState;
use crate::tokens::{self, IdTokenHint};
use crate::totp;
use guard::claims::acr;

pub fn router() -> Router<AppState> {
    Router::new().route("/authorize", get(authorize_get).post(authorize_post))
}

const MAX_STATE: usize = 1024;
const MAX_NONCE: usize = 512;

async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse_lenient(query.unwrap_or_default().as_bytes());
    authorize(&state, jar, params).await.into_response()
}

async fn authorize_post(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(&parts.headers, body).await {
        Ok(params) => authorize(&state, jar, params).await.into_response(),
        Err(e) => AuthorizeError::from(e).into_response(),
    }
}

/// A parameter that decides where errors go must be present exactly once.
fn trusted<'a>(params: &'a Params, name: &str) -> Result<&'a str, PageError> {
    if params.is_repeated(name) {
        return Err(PageError::bad_request(format!(
            "The request repeats the {name} parameter."
        )));
    }
    params
        .get(name)
        .ok_or_else(|| PageError::bad_request(format!("The request has no {name} parameter.")))
}

async fn authorize(
    state: &AppState,
    jar: CookieJar,
    params: Params,
) -> Result<Response, AuthorizeError> {
    // Until client and redirect URI are verified, every error is a page.
    let client_id = trusted(&params, "client_id")?;
    let client = match client_id.len() {
        1..=64 => {
            state
                .auth_cache
                .client_or_load(&state.db, client_id)
                .await?
        }
        _ => None,
    }
    .ok_or_else(|| PageError::bad_request("The application is not registered here."))?;
    let redirect_uri = trusted(&params, "redirect_uri")?;
    if !client.has_redirect_uri(redirect_uri) {
        return Err(PageError::bad_request(
            "The redirect URI is not registered for this application.",
        )
        .into());
    }

    // From here on, errors go back to the client.
    let client_state = params
        .get("state")
        .filter(|s| s.len() <= MAX_STATE)
        .map(str::to_owned);
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        error,
        description: description.to_owned().into(),
        state: client_state.clone(),
        issuer: state.config.issuer.clone(),
    };
    let mut request = validate(&params, &client, redirect_uri).map_err(|(e, d)| fail(e, &d))?;
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Err(fail("invalid_request", "state is too long"));
    }

    let prompts: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| fail("invalid_request", "max_age must be a non-negative integer"))?,
        ),
    };

    // OIDC Core §3.1.2.1: `id_token_hint` names the user the client expects
    // (an ID token of ours, expired or not). A session of anyone else is not
    // used: with prompt=none that is login_required, never their code.
    let hinted_sub = match params.get("id_token_hint") {
        None => None,
        Some(hint) => Some(
            tokens::verify_own::<IdTokenHint>(state, hint, "JWT", true)
                .map_err(|_| {
                    fail(
                        "invalid_request",
                        "id_token_hint is not an ID token issued by this provider",
                    )
                })?
                .sub,
        ),
    };
    // OIDC Core §3.1.2.1: `acr_values` is voluntary. A second factor asked
    // for is asked of a person who has one; the `acr` the tokens carry says
    // what was done, and the service that needs more refuses (RFC 9470).
    let wants_second_factor = params
        .get("acr_values")
        .is_some_and(|v| v.split(' ').any(|a| a == acr::SECOND_FACTOR));
    let session = match cookies::session_value(&state.config, &jar) {
        Some(value) => sessions::find(&state.db, &value).await?,
        None => None,
    }
    .filter(|s| {
        hinted_sub
            .as_deref()
            .is_none_or(|sub| s.user_id.to_string() == sub)
    });
    // Whoever signs in on the login form must be that user too.
    request.expected_sub = hinted_sub;
    let now = OffsetDateTime::now_utc();
    // OIDC Core §3.1.2.1: max_age=0 is equivalent to prompt=login.
    let fresh_enough = |s: &Session| {
        max_age.is_none_or(|m| m > 0 && (now - s.auth_time).whole_seconds() <= i64::from(m))
    };
    match session {
        Some(s) if !prompts.contains(&"login") && fresh_enough(&s) => {
            // A session made with the password alone, for a request or a
            // client (or person) that needs a second factor: step up.
            let policy = if crate::amr::acr_of(&s.amr) == acr::SECOND_FACTOR {
                None
            } else {
                Some(totp::policy(&state.db, s.user_id, &client.id).await?)
            };
            let Some(policy) =
                policy.filter(|p| p.required || (wants_second_factor && p.enrolled()))
            else {
                return Ok(issue_code(state, &request, &s).await?);
            };
            if prompt_none {
                return Err(fail(
                    "interaction_required",
                    "a second factor is needed, which takes the user's interaction",
                ));
            }
            // Step-up: the session's password sign-in stands for the first
            // factor; only the second is asked for (or set up).
            let flow = LoginFlow::new(request).second_factor_due(s.user_id, Some(s.id));
            let user = realm::user_by_id(&state.db, s.user_id)
                .await?
                .ok_or_else(|| PageError::bad_request("This account is no longer here."))?;
            Ok(second_factor::next_step(
                state, jar, flow, &client, &user, policy,
            ))
        }
        _ if prompt_none => Err(fail(
            "login_required",
            "the user is not signed in (or not as the id_token_hint's user)",
        )),
        _ => {
            let flow = LoginFlow::new(request);
            let hint = params
                .get("login_hint")
                .filter(|h| h.len() <= MAX_USERNAME)
                .unwrap_or("");
            let page = login_form(state, &flow, &client, hint, None, StatusCode::OK);
            let jar = cookies::set_flow(&state.config, jar, flow.seal(&state.flow_sealer));
            Ok((jar, page).into_response())
        }
    }
}

/// Checks every rule of an authorization request once the redirect URI is
/// trusted; the error is `(code, description)`.
fn validate(
    params: &Params,
    client: &Client,
    redirect_uri: &str,
) -> Result<AuthRequest, (&'static str, String)> {
    let invalid = |d: &str| ("invalid_request", d.to_owned());
    params
        .check()
        .map_err(|e| ("invalid_request", e.to_string()))?;
    if params.get("request").is_some() {
        return Err((
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    if params.get("request_uri").is_some() {
        return Err((
            "request_uri_not_supported",
            "request_uri is not supported".into(),
        ));
    }
    match params.get("response_type") {
        None => return Err(invalid("missing parameter response_type")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(invalid("only response_mode=query is supported"));
    }
    if !client.allows_grant("authorization_code") {
        return Err((
            "unauthorized_client",
            "this client may not use the authorization code flow".into(),
        ));
    }
    let requested = normalise_scope(params.get("scope").unwrap_or(""));
    if !requested.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "the openid scope is required".into()));
    }
    // RFC 6749 §3.3: the grant may be narrower than the request. Scopes this
    // client may not have (or that do not exist) are left out, not refused;
    // the token response names what was granted.
    let scope = within(&requested, |s| client.allows_scope(s));
    if !scope.split(' ').any(|s| s == "openid") {
        return Err((
            "invalid_scope",
            "this client may not use the openid scope".into(),
        ));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, Some(_)) => return Err(invalid("code_challenge_method without code_challenge")),
        (Some(_), None | Some("plain")) => {
            return Err(invalid(
                "PKCE method plain is not allowed: use code_challenge_method=S256",
            ));
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(invalid("unsupported code_challenge_method"));
        }
        (Some(c), Some(_)) => {
            if c.len() != 43
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    "code_challenge must be the base64url SHA-256 of the verifier",
                ));
            }
            Some(c.to_owned())
        }
        (None, None) if client.public => {
            return Err(invalid(
                "PKCE (code_challenge with S256) is required for public clients",
            ));
        }
        (None, None) => None,
    };
    let nonce = params.get("nonce");
    if nonce.is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(invalid("nonce is too long"));
    }
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: params.get("state").map(str::to_owned),
        nonce: nonce.map(str::to_owned),
        code_challenge,
        expected_sub: None,
    })
}

/// The scopes of `requested` (normalised) that `allowed` accepts, in order.
pub fn within(requested: &str, allowed: impl Fn(&str) -> bool) -> String {
    let kept: Vec<&str> = requested.split(' ').filter(|s| allowed(s)).collect();
    kept.join(" ")
}

/// Space-separated, duplicates removed, order kept.
pub fn normalise_scope(scope: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_in_order() {
        assert_eq!(
            normalise_scope("openid  profile openid email"),
            "openid profile email"
        );
        assert_eq!(normalise_scope(""), "");
    }
}
