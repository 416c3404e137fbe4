//! Who is calling, and with which access token: the one place where a request's
//! credentials are resolved, for the relay and for any handler that calls
//! services itself (aggregations).
//!
//! * `Authorization` present: an API client; its token (`Bearer`, or `DPoP`
//!   with a proof made for the gateway's URL) is used as is (the caller
//!   validates it for the audience it needs).
//! * else the session cookie: state-changing methods must pass the CSRF
//!   checks, and the access token is refreshed first when it expires within
//!   `GATEWAY_REFRESH_BEFORE_SECS` (once per session, see [`crate::session`]).
//! * neither: 401 with a sign-in hint (page navigations: a redirect).

use axum_extra::extract::CookieJar;
use guard::{AuthError, Guard, Principal, TokenError};
use http::header;
use http::request::Parts;

use crate::AppState;
use crate::csrf::{self, CSRF_HEADER};
use crate::error::GatewayError;
use crate::http::auth::session_id;
use crate::http::is_navigation;
use crate::session::SessionId;

/// How the access token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The caller's own `Authorization: Bearer` (or `DPoP`) token.
    Bearer,
    /// The browser session's token, held by the gateway.
    Session,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Session => "session",
        }
    }
}

/// A caller's credentials, not yet validated for any audience.
pub enum Credentials {
    /// The request's headers carry the bearer token.
    Bearer,
    /// A fresh access token from the session.
    Session(SessionToken),
}

/// A session's access token, and what is needed to end the session.
pub struct SessionToken {
    token: String,
    id: SessionId,
    navigation: bool,
    return_to: String,
}

impl Credentials {
    /// Resolves the request's credentials (CSRF checks and refresh included).
    pub async fn resolve(
        app: &AppState,
        parts: &Parts,
        jar: &CookieJar,
    ) -> Result<Self, GatewayError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Self::Bearer);
        }
        let navigation = is_navigation(&parts.headers);
        let return_to = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
            .to_owned();
        let Some(id) = session_id(jar, app.config.secure_cookies()) else {
            return Err(GatewayError::SignInRequired {
                navigation,
                return_to,
            });
        };
        let Some(data) = app.sessions.load(&id).await? else {
            return Err(GatewayError::SessionEnded {
                navigation,
                return_to,
            });
        };
        if csrf::is_state_changing(&parts.method) {
            csrf::check_origin(&parts.headers, &app.config.public_origin())?;
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            csrf::check_token(presented, &data.csrf_token)?;
        }
        let data = app
            .sessions
            .with_fresh_tokens(
                &id,
                data,
                app.config.refresh_before,
                &app.oidc,
                navigation,
                &return_to,
            )
            .await?;
        Ok(Self::Session(SessionToken {
            token: data.tokens.access_token,
            id,
            navigation,
            return_to,
        }))
    }

    /// Validates the token with `guard` (one audience) and returns the caller.
    /// A session whose token the IdP has revoked is ended here.
    pub async fn validate(
        &self,
        app: &AppState,
        guard: &Guard,
        parts: &Parts,
    ) -> Result<(Principal, TokenSource), GatewayError> {
        Ok(match self {
            Self::Bearer => (guard.authenticate(parts).await?, TokenSource::Bearer),
            Self::Session(session) => match guard.validate(&session.token).await {
                Ok(principal) => (principal, TokenSource::Session),
                // The IdP revoked it (sign-out elsewhere, an admin, refresh-token
                // reuse): the session is over, and the person is told to sign in.
                Err(AuthError::InvalidToken(TokenError::Revoked)) => {
                    app.sessions.delete(&session.id).await?;
                    tracing::info!(session = %session.id.fingerprint(), "token revoked by the IdP; session ended");
                    return Err(GatewayError::SessionEnded {
                        navigation: session.navigation,
                        return_to: session.return_to.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            },
        })
    }
}
