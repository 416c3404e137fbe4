//! The gateway as a confidential OpenID Connect client of the IdP:
//! discovery, the authorization request (code + PKCE S256 + state + nonce),
//! code redemption, ID token validation (guard's [`IdTokenVerifier`], on the
//! gateway's shared key cache), refresh, revocation and end-session.

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

use guard::{IdTokenClaims, IdTokenError, IdTokenVerifier, StepUpChallenge, unix_now};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

/// Largest discovery/token response read from the IdP.
const MAX_IDP_RESPONSE: usize = 256 * 1024;

/// What the IdP says about itself (OIDC Discovery 1.0).
#[derive(Debug, Clone)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub end_session_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    end_session_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

impl DiscoveryDocument {
    fn into_metadata(self) -> Result<Metadata, String> {
        let url = |s: &str| Url::parse(s).map_err(|e| format!("bad endpoint {s:?}: {e}"));
        Ok(Metadata {
            authorization_endpoint: url(&self.authorization_endpoint)?,
            token_endpoint: url(&self.token_endpoint)?,
            end_session_endpoint: self.end_session_endpoint.as_deref().map(url).transpose()?,
            revocation_endpoint: self.revocation_endpoint.as_deref().map(url).transpose()?,
            issuer: self.issuer,
        })
    }
}

/// Why a call to the IdP did not give tokens.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The IdP answered and refused (e.g. `invalid_grant`): do not retry.
    #[error("refused: {0}")]
    Rejected(String),
    /// The IdP could not be reached or failed: retrying later may work.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Tokens of one session. `Debug` never prints them.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    /// Unix time at which the access token expires.
    pub expires_at: i64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// `true` when the access token expires within `margin` from now.
    pub fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at - unix_now() <= margin.as_secs() as i64
    }

    /// The access token's claims, read without verifying the signature.
    ///
    /// Safe only because the token came straight from the IdP's token endpoint
    /// over the back channel, authenticated with the client secret; it is used
    /// for display (name, roles) and expiry. Every relay still validates the
    /// token fully with guard first.
    pub fn access_claims(&self) -> Option<AccessInfo> {
        jsonwebtoken::dangerous::insecure_decode_claims::<AccessInfo>(&self.access_token).ok()
    }
}

/// The few access-token claims the session keeps.
#[derive(Debug, Deserialize)]
pub struct AccessInfo {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scope: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The OIDC client.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    post_logout_redirect_uri: String,
    scopes: String,
    id_tokens: IdTokenVerifier,
    metadata: tokio::sync::OnceCell<Arc<Metadata>>,
}

/// What the authorization request needs remembered until the callback.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

/// Settings of [`Oidc`].
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub scopes: String,
    /// Verifies the IdP's ID tokens for `client_id` (made from the gateway's
    /// guard: same issuer, algorithms, leeway and key cache).
    pub id_tokens: IdTokenVerifier,
    pub timeout: Duration,
}

impl Oidc {
    pub fn new(s: OidcSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                issuer: s.issuer.trim_end_matches('/').to_owned(),
                client_id: s.client_id,
                client_secret: s.client_secret,
                redirect_uri: s.redirect_uri,
                post_logout_redirect_uri: s.post_logout_redirect_uri,
                scopes: s.scopes,
                id_tokens: s.id_tokens,
                metadata: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The IdP's metadata, fetched on first use (a failure is retried next time).
    pub async fn metadata(&self) -> Result<Arc<Metadata>, IdpError> {
        self.inner
            .metadata
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.inner.issuer);
                let body = self.get(&url).await?;
                let metadata = serde_json::from_slice::<DiscoveryDocument>(&body)
                    .map_err(|e| e.to_string())
                    .and_then(DiscoveryDocument::into_metadata)
                    .map_err(|e| IdpError::Unavailable(format!("bad discovery document: {e}")))?;
                // OIDC Discovery §4.3: the issuer must be exactly the one we trust.
                if metadata.issuer != self.inner.issuer {
                    return Err(IdpError::Unavailable(format!(
                        "discovery names issuer {:?}, expected {:?}",
                        metadata.issuer, self.inner.issuer
                    )));
                }
                Ok(Arc::new(metadata))
            })
            .await
            .cloned()
    }

    async fn get(&self, url: &str) -> Result<bytes::Bytes, IdpError> {
        let response = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| IdpError::Unavailable(format!("GET {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(IdpError::Unavailable(format!(
                "GET {url}: {}",
                response.status()
            )));
        }
        read_bounded(response).await
    }

    /// The authorization request URL with fresh `state`, `nonce` and PKCE verifier.
    /// A new authorization request; with `step_up`, one that asks the IdP
    /// for that sign-in (`acr_values`, `max_age`; RFC 9470 §4).
    pub async fn authorization_request(
        &self,
        step_up: Option<&StepUpChallenge>,
    ) -> Result<AuthorizationRequest, IdpError> {
        let metadata = self.metadata().await?;
        let state = platform::crypto::random_token(32);
        let nonce = platform::crypto::random_token(32);
        let code_verifier = platform::crypto::random_token(32);
        let challenge = platform::crypto::sha256_b64url(code_verifier.as_bytes());
        let mut url = metadata.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.inner.client_id)
            .append_pair("redirect_uri", &self.inner.redirect_uri)
            .append_pair("scope", &self.inner.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(step_up) = step_up {
            url.query_pairs_mut()
                .append_pair("acr_values", &step_up.acr_values);
            if let Some(max_age) = step_up.max_age {
                url.query_pairs_mut()
                    .append_pair("max_age", &max_age.to_string());
            }
        }
        Ok(AuthorizationRequest {
            url,
            state,
            nonce,
            code_verifier,
        })
    }

    /// Redeems an authorization code and validates the ID token against `nonce`.
    pub async fn redeem_code(
        &self,
        code: &str,
        code_verifier: &str,
        nonce: &str,
    ) -> Result<(TokenSet, IdTokenClaims), IdpError> {
        let tokens = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.inner.redirect_uri),
                ("code_verifier", code_verifier),
            ])
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| IdpError::Rejected("the token response has no id_token".into()))?;
        let claims = self
            .validate_id_token(id_token, nonce, &tokens.access_token)
            .await?;
        Ok((tokens, claims))
    }

    /// Redeems a refresh token (RFC 6749 §6).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdpError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet, IdpError> {
        let metadata = self.metadata().await?;
        let grant = form
            .iter()
            .find(|(name, _)| *name == "grant_type")
            .map_or("", |(_, grant)| *grant);
        let span = tracing::info_span!("idp_token", grant);
        let mut request = self.inner.http.post(metadata.token_endpoint.clone());
        // The IdP's spans join the caller's trace (when spans are exported).
        if let Some(trace) = span.in_scope(platform::TraceContext::current) {
            request = request.header(platform::trace::TRACEPARENT, trace.header_value());
        }
        let response = self
            .authenticated(request)
            .form(form)
            .send()
            .instrument(span)
            .await
            .map_err(|e| IdpError::Unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let body = read_bounded(response).await?;
        if status.is_server_error() {
            return Err(IdpError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            let reason = serde_json::from_slice::<OAuthErrorBody>(&body)
                .map(|e| format!("{}: {}", e.error, e.error_description.unwrap_or_default()))
                .unwrap_or_else(|_| format!("token endpoint answered {status}"));
            return Err(IdpError::Rejected(reason));
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| IdpError::Rejected(format!("malformed token response: {e}")))?;
        if !t.token_type.eq_ignore_ascii_case("bearer") {
            return Err(IdpError::Rejected(format!(
                "unexpected token_type {:?}",
                t.token_type
            )));
        }
        let mut set = TokenSet {
            expires_at: unix_now() + t.expires_in.unwrap_or(0),
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
        };
        if let Some(claims) = set.access_claims() {
            set.expires_at = if t.expires_in.is_some() {
                set.expires_at.min(claims.exp)
            } else {
                claims.exp
            };
        }
        Ok(set)
    }

    /// OIDC Core §3.1.3.7, by guard's [`IdTokenVerifier`] on the gateway's
    /// shared key cache (its rules are listed in [`guard::id_token`]).
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: &str,
        access_token: &str,
    ) -> Result<IdTokenClaims, IdpError> {
        self.inner
            .id_tokens
            .verify(id_token, nonce, Some(access_token))
            .await
            .map_err(|e| match e {
                IdTokenError::KeysUnavailable => {
                    IdpError::Unavailable("the IdP's signing keys are not available".into())
                }
                e => IdpError::Rejected(format!("invalid ID token: {e}")),
            })
    }

    /// `request` authenticated as the gateway's client (RFC 6749 §2.3.1).
    fn authenticated(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        guard::client_auth::basic_auth(
            request,
            &self.inner.client_id,
            self.inner.client_secret.expose_secret(),
        )
    }

    /// Revokes a refresh token (RFC 7009), best effort: sign-out never waits on it failing.
    pub async fn revoke(&self, refresh_token: &str) {
        let Ok(metadata) = self.metadata().await else {
            return;
        };
        let Some(endpoint) = metadata.revocation_endpoint.clone() else {
            return;
        };
        let result = self
            .authenticated(self.inner.http.post(endpoint))
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "refresh token revocation failed");
        }
    }

    /// Where to send the browser to end its IdP session (RP-Initiated Logout 1.0),
    /// or `None` when the IdP has no end-session endpoint.
    pub async fn end_session_url(&self, id_token_hint: Option<&str>) -> Option<Url> {
        let metadata = self.metadata().await.ok()?;
        let mut url = metadata.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.inner.client_id)
                .append_pair(
                    "post_logout_redirect_uri",
                    &self.inner.post_logout_redirect_uri,
                );
        }
        Some(url)
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<bytes::Bytes, IdpError> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| IdpError::Unavailable(format!("reading the IdP's answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_IDP_RESPONSE {
            return Err(IdpError::Unavailable(
                "the IdP's answer is too large".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sets_know_when_they_expire_and_never_print_tokens() {
        let t = TokenSet {
            access_token: "secret-at".into(),
            expires_at: unix_now() + 20,
            refresh_token: Some("secret-rt".into()),
            id_token: None,
        };
        assert!(t.expires_within(Duration::from_secs(30)));
        assert!(!t.expires_within(Duration::from_secs(5)));
        let printed = format!("{t:?}");
        assert!(!printed.contains("secret"));
    }
}
