//! Talking OAuth to the IdP as the bench's clients do: client credentials,
//! refresh, and a user's password login (authorization code + PKCE through
//! the real login form) as a [`UserClient`]: the public `cli` client, which
//! proves one DPoP key ([`cli_key`]) at `/token`, so its tokens are bound to
//! that key (RFC 9449), or the confidential `gateway` client, whose tokens
//! (those of the gateway's browser sessions) are unbound.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guard::dpop::DpopKey;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::Value;

/// The `cli` client's redirect URI (`idp seed` default).
pub const CLI_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
/// What the bench's user tokens ask for.
pub const CLI_SCOPE: &str =
    "openid offline_access orders:read orders:write payments:read inventory:read";

/// The `cli` client's DPoP key for the whole bench run.
pub fn cli_key() -> &'static DpopKey {
    static KEY: LazyLock<DpopKey> = LazyLock::new(DpopKey::generate);
    &KEY
}

/// The client a user signs in with.
pub struct UserClient {
    id: &'static str,
    /// A confidential client's secret (HTTP Basic at `/token`, no DPoP
    /// proof); `None`: the public `cli`, which proves [`cli_key`].
    secret: Option<&'static str>,
    redirect_uri: Cow<'static, str>,
}

impl UserClient {
    /// The public `cli` client: DPoP-bound tokens, as an API client holds.
    pub fn cli() -> Self {
        Self {
            id: "cli",
            secret: None,
            redirect_uri: Cow::Borrowed(CLI_REDIRECT_URI),
        }
    }

    /// The gateway's own confidential client (registered with the gateway
    /// at `gateway_origin`), signing in as its browser sessions do: unbound
    /// Bearer tokens for order, payment and inventory, the tokens a route
    /// with `relay = "plain"` passes on unchanged.
    pub fn gateway(gateway_origin: &str) -> Self {
        Self {
            id: "gateway",
            secret: Some(crate::stack::GATEWAY_SECRET),
            redirect_uri: Cow::Owned(format!("{gateway_origin}/auth/callback")),
        }
    }

    /// Whether its tokens are DPoP-bound to [`cli_key`].
    pub fn binds(&self) -> bool {
        self.secret.is_none()
    }

    /// A `/token` request with this client's authentication: HTTP Basic, or
    /// `client_id` in `form` and a fresh proof of [`cli_key`].
    fn token_request(
        &self,
        http: &reqwest::Client,
        token_url: &str,
        mut form: Vec<(&str, &str)>,
    ) -> reqwest::RequestBuilder {
        let request = http.post(token_url);
        let request = match self.secret {
            Some(secret) => request.basic_auth(self.id, Some(secret)),
            None => {
                form.push(("client_id", self.id));
                request.header("dpop", cli_key().proof("POST", token_url, None))
            }
        };
        request.form(&form)
    }
}

/// An HTTP client for load: no proxy, no redirects, kept-alive connections.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client with static settings")
}

/// A client_credentials grant; the access token.
pub async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    client: (&str, &str),
    scope: Option<&str>,
) -> anyhow::Result<String> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let answer = http
        .post(token_url)
        .basic_auth(client.0, Some(client.1))
        .form(&form)
        .send()
        .await?;
    token_field(answer, "access_token").await
}

/// A refresh_token grant of `client`, for the grant's whole scope or a
/// narrower `scope`: (access, refresh).
pub async fn refresh(
    http: &reqwest::Client,
    client: &UserClient,
    token_url: &str,
    refresh_token: &str,
    scope: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let answer = client.token_request(http, token_url, form).send().await?;
    let json = json_ok(answer).await?;
    Ok((
        field(&json, "access_token")?,
        field(&json, "refresh_token")?,
    ))
}

/// A login page's flow: its cookies, its CSRF token and the PKCE verifier.
pub struct LoginFlow {
    cookies: String,
    csrf: String,
    pub verifier: String,
}

/// GET /authorize for `client`: the login page's flow.
pub async fn start_login(
    http: &reqwest::Client,
    client: &UserClient,
    issuer: &str,
) -> anyhow::Result<LoginFlow> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| anyhow!("no system randomness"))?;
    let verifier = URL_SAFE_NO_PAD.encode(random);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let state = uuid::Uuid::new_v4().simple().to_string();
    let page = http
        .get(format!("{issuer}/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client.id),
            ("redirect_uri", &client.redirect_uri),
            ("scope", CLI_SCOPE),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await?;
    if page.status() != StatusCode::OK {
        bail!("GET /authorize answered {}", page.status());
    }
    let cookies: Vec<String> = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let html = page.text().await?;
    let csrf = hidden_value(&html, "csrf_token").context("no csrf_token on the login page")?;
    Ok(LoginFlow {
        cookies: cookies.join("; "),
        csrf,
        verifier,
    })
}

/// POST /login of `flow` with these credentials, from `forwarded_for` when
/// given (the IdP trusts the bench's address as a proxy): the IdP's answer.
pub async fn post_login(
    http: &reqwest::Client,
    issuer: &str,
    flow: &LoginFlow,
    (username, password): (&str, &str),
    forwarded_for: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = http
        .post(format!("{issuer}/login"))
        .header(COOKIE, &flow.cookies)
        .header(ORIGIN, issuer)
        .form(&[
            ("csrf_token", flow.csrf.as_str()),
            ("username", username),
            ("password", password),
        ]);
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    Ok(request.send().await?)
}

/// One password login: GET /authorize (the login page and its flow cookie),
/// POST /login with the CSRF token; returns the authorization code and the
/// PKCE verifier.
pub async fn login(
    http: &reqwest::Client,
    client: &UserClient,
    issuer: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<(String, String)> {
    let flow = start_login(http, client, issuer).await?;
    let answer = post_login(http, issuer, &flow, (username, password), None).await?;
    let location = answer
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| {
            format!(
                "POST /login answered {} without a redirect",
                answer.status()
            )
        })?;
    let url = url::Url::parse(location)?;
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no code in {}", url.path()))?;
    Ok((code, flow.verifier))
}

/// A login with `client` followed by the code redemption: (access, refresh).
pub async fn login_tokens(
    http: &reqwest::Client,
    client: &UserClient,
    issuer: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<(String, String)> {
    let (code, verifier) = login(http, client, issuer, username, password).await?;
    let token_url = format!("{issuer}/token");
    let form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &*client.redirect_uri),
        ("code_verifier", verifier.as_str()),
    ];
    let answer = client.token_request(http, &token_url, form).send().await?;
    let json = json_ok(answer).await?;
    Ok((
        field(&json, "access_token")?,
        field(&json, "refresh_token")?,
    ))
}

/// `POST /revoke` of `token` by a confidential client.
pub async fn revoke(
    http: &reqwest::Client,
    issuer: &str,
    client: (&str, &str),
    token: &str,
) -> anyhow::Result<()> {
    let answer = http
        .post(format!("{issuer}/revoke"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("POST /revoke answered {}", answer.status());
    }
    Ok(())
}

/// The `value` of `<input ... name="{name}" value="...">` in a page we render ourselves.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = tag.split("value=\"").nth(1)?.split('"').next()?;
    Some(
        value
            .replace("&#x2B;", "+")
            .replace("&#x2F;", "/")
            .replace("&#x3D;", "="),
    )
}

async fn json_ok(answer: reqwest::Response) -> anyhow::Result<Value> {
    let status = answer.status();
    let text = answer.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

async fn token_field(answer: reqwest::Response, name: &str) -> anyhow::Result<String> {
    field(&json_ok(answer).await?, name)
}

fn field(json: &Value, name: &str) -> anyhow::Result<String> {
    json[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {name} in the token response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_its_hidden_input() {
        let page = r#"<form method="post" action="/login">
      <input type="hidden" name="csrf_token" value="a&#x2B;b&#x2F;c">
      <input id="username" name="username" value="">"#;
        assert_eq!(hidden_value(page, "csrf_token").as_deref(), Some("a+b/c"));
        assert_eq!(hidden_value(page, "other"), None);
    }
}
