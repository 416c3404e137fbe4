//! Acting as the stack's users: a cookie-jar client that signs in through the
//! gateway exactly as a browser does, and the authorization-code + PKCE flow
//! of the public `cli` client for API-client tests.
//!
//! `cli` is a public client, so the IdP binds its tokens to a DPoP key
//! (RFC 9449): like one installation of a command-line tool, this test
//! process holds one key ([`cli_key`]), proves it at `/token`, and
//! [`authorize`] sends a token bound to it as `Authorization: DPoP` with a
//! fresh proof for each request.

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guard::dpop::DpopKey;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use reqwest::{Method, RequestBuilder, Response, StatusCode, redirect};
use serde_json::Value;
use url::Url;

use super::html::{self, Control};
pub use super::stack::CLI_REDIRECT_URI;
use super::stack::Stack;

/// The demo users of `idp seed` (CONTRIBUTING.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Alice,
    Bob,
    Carol,
}

impl User {
    pub fn name(self) -> &'static str {
        match self {
            User::Alice => "alice",
            User::Bob => "bob",
            User::Carol => "carol",
        }
    }
    pub fn password(self) -> String {
        format!("{}-password", self.name())
    }
}

/// A browser-like HTTP client: cookie jar, follows redirects, sends `Origin`
/// on state-changing requests as browsers do, and the session's CSRF token in
/// `X-CSRF-Token` as the page's script does.
pub struct Browser {
    pub http: reqwest::Client,
    pub gateway: Url,
    csrf_token: Option<String>,
}

impl Browser {
    pub fn new(stack: &Stack) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(redirect::Policy::limited(10))
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            gateway: stack.gateway.clone(),
            csrf_token: None,
        }
    }

    /// Signs in as `user`: GET / → "Sign in" → the IdP's login form → POST
    /// with its CSRF token → the gateway's callback → back on the gateway.
    pub async fn sign_in(stack: &Stack, user: User) -> Browser {
        let mut browser = Browser::new(stack);
        let home = browser
            .http
            .get(stack.gateway.clone())
            .send()
            .await
            .expect("GET /");
        assert_eq!(home.status(), StatusCode::OK, "GET / on the gateway");
        let home_url = home.url().clone();
        let page = home.text().await.expect("home page");
        let login_page = match html::control(&page, "Sign in") {
            Some(Control::Link(href)) => browser.http.get(resolve(&home_url, &href)).send().await,
            Some(Control::Form(form)) => submit(&browser.http, &home_url, &form).await,
            None => panic!("no \"Sign in\" control on the gateway's page:\n{page}"),
        }
        .expect("follow Sign in");
        let login_url = login_page.url().clone();
        assert_eq!(
            login_url.port(),
            stack.idp.port(),
            "Sign in leads to the IdP, got {login_url}"
        );
        let answer = fill_login_form(&browser.http, login_page, user).await;
        assert_eq!(
            answer.url().port(),
            stack.gateway.port(),
            "after the login form the browser is back on the gateway"
        );
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "the gateway's page after sign-in"
        );

        // What the page's script asks first: who am I, and the CSRF token.
        let (status, session) = browser.get("/auth/session").await;
        assert_eq!(status, StatusCode::OK, "GET /auth/session: {session}");
        assert_eq!(
            session["authenticated"],
            true,
            "signed in as {}: {session}",
            user.name()
        );
        browser.csrf_token = Some(
            session["csrf_token"]
                .as_str()
                .expect("the session's CSRF token")
                .to_owned(),
        );
        browser
    }

    /// A call to the gateway, as the page's script makes it.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        json_answer(self.send(method, path, body, &[]).await).await
    }

    /// [`call`](Self::call) with `headers` added (an `Idempotency-Key`),
    /// answering the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.http.request(
            method.clone(),
            self.gateway
                .join(path.trim_start_matches('/'))
                .expect("path"),
        );
        if method != Method::GET {
            req = req.header(ORIGIN, origin(&self.gateway));
            if let Some(token) = &self.csrf_token {
                req = req.header("x-csrf-token", token);
            }
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("call the gateway")
    }

    /// Takes the CSRF token of a new session (after a sign-in elsewhere).
    pub fn set_csrf(&mut self, token: &str) {
        self.csrf_token = Some(token.to_owned());
    }

    /// Sets up an authenticator app at the IdP's account page (this browser
    /// holds the IdP session): answers its secret. The confirming code's
    /// time step counts as used.
    pub async fn set_up_authenticator(&self, stack: &Stack) -> Vec<u8> {
        let page_url = stack.idp.join("account/authenticator").expect("url");
        let page = self
            .http
            .get(page_url.clone())
            .send()
            .await
            .expect("setup page");
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.expect("setup page");
        let marker = r#"<code class="secret">"#;
        let start = body.find(marker).expect("the secret, for typing in") + marker.len();
        let base32 = body[start..].split('<').next().expect("secret").to_owned();
        let secret = totp_rs::Secret::Encoded(base32)
            .to_bytes()
            .expect("a base32 secret");
        let mut form = html::forms(&body)
            .into_iter()
            .find(|f| f.fields.iter().any(|(n, _)| n == "setup"))
            .expect("the setup form");
        form.set("code", &totp_code(&secret, 0));
        let answer = submit(&self.http, &page_url, &form).await.expect("confirm");
        assert_eq!(answer.status(), StatusCode::OK, "the app is set up");
        secret
    }

    /// Follows the gateway's step-up link (`x-baton-step-up`) as the page
    /// does: the IdP asks for the second factor only, the code of the next
    /// time step is entered, and the browser is back on the gateway with a
    /// new session (whose CSRF token it takes).
    pub async fn step_up(&mut self, link: &str, secret: &[u8]) {
        let page = self
            .http
            .get(
                self.gateway
                    .join(link.trim_start_matches('/'))
                    .expect("link"),
            )
            .send()
            .await
            .expect("follow the step-up link");
        let page_url = page.url().clone();
        let body = page.text().await.expect("second-factor page");
        assert!(
            html::login_form(&body).is_none(),
            "no password asked again: {body}"
        );
        let mut form = html::forms(&body)
            .into_iter()
            .find(|f| f.action == "/login/otp")
            .unwrap_or_else(|| {
                panic!(
                    "the second-factor form at {page_url}:
{body}"
                )
            });
        form.set("code", &totp_code(secret, 1));
        let back = submit(&self.http, &page_url, &form).await.expect("code");
        assert_eq!(
            back.url().port(),
            self.gateway.port(),
            "back on the gateway"
        );
        let (_, session) = self.get("/auth/session").await;
        self.csrf_token = session["csrf_token"].as_str().map(str::to_owned);
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// The TOTP code of `secret` `steps` time steps from now.
pub fn totp_code(secret: &[u8], steps: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    idp::totp::code_at(secret, now.saturating_add_signed(steps * 30))
}

/// Status and JSON body (`Null` when the body is not JSON).
pub async fn json_answer(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Fills and posts the IdP's login form shown by `page`; returns where the
/// redirects end.
async fn fill_login_form(http: &reqwest::Client, page: Response, user: User) -> Response {
    let page_url = page.url().clone();
    let body = page.text().await.expect("login page");
    let mut form =
        html::login_form(&body).unwrap_or_else(|| panic!("no login form at {page_url}:\n{body}"));
    form.set("username", user.name());
    form.set("password", &user.password());
    submit(http, &page_url, &form)
        .await
        .expect("post the login form")
}

async fn submit(
    http: &reqwest::Client,
    page: &Url,
    form: &html::Form,
) -> reqwest::Result<Response> {
    let action = if form.action.is_empty() {
        page.clone()
    } else {
        resolve(page, &form.action)
    };
    if form.method == "post" {
        http.post(action)
            .header(ORIGIN, origin(page))
            .form(&form.fields)
            .send()
            .await
    } else {
        http.get(action).query(&form.fields).send().await
    }
}

fn resolve(base: &Url, href: &str) -> Url {
    base.join(href)
        .unwrap_or_else(|e| panic!("bad link {href:?}: {e}"))
}

pub fn origin(url: &Url) -> HeaderValue {
    HeaderValue::from_str(&url.origin().ascii_serialization()).expect("origin header")
}

/// Runs the authorization-code + PKCE (S256) flow of the public `cli`
/// client for `user` with `scope`, through the real login form, and redeems
/// the code: what a command-line tool does to call the API directly. Returns
/// the access token.
pub async fn cli_token(stack: &Stack, user: User, scope: &str) -> String {
    cli_tokens(stack, user, scope).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// [`cli_token`]'s whole token response (access, refresh and ID tokens).
pub async fn cli_tokens(stack: &Stack, user: User, scope: &str) -> Value {
    code_flow(stack, ("cli", None), CLI_REDIRECT_URI, user, scope)
        .await
        .0
}

/// As [`cli_tokens`], with the browser that signed in (it holds the IdP
/// session cookie, e.g. for RP-initiated logout).
pub async fn cli_sign_in(stack: &Stack, user: User, scope: &str) -> (Value, reqwest::Client) {
    code_flow(stack, ("cli", None), CLI_REDIRECT_URI, user, scope).await
}

/// The same flow for the confidential `gateway` client (its secret at
/// `/token`), as the gateway signs a person in: the token the gateway keeps
/// in its session, for tests that play the gateway's part at the IdP.
pub async fn gateway_tokens(stack: &Stack, user: User, scope: &str) -> Value {
    let redirect_uri = stack.gateway.join("auth/callback").expect("callback url");
    let client = ("gateway", Some(super::stack::GATEWAY_CLIENT_SECRET));
    code_flow(stack, client, redirect_uri.as_str(), user, scope)
        .await
        .0
}

/// Authorization code + PKCE for `client` (id, secret of a confidential one);
/// the token response and the browser that signed in.
async fn code_flow(
    stack: &Stack,
    client: (&str, Option<&str>),
    redirect_uri: &str,
    user: User,
    scope: &str,
) -> (Value, reqwest::Client) {
    let stop_at = redirect_uri.to_owned();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        // Follow redirects inside the IdP, stop at the client's redirect URI.
        .redirect(redirect::Policy::custom(move |attempt| {
            if attempt.url().as_str().starts_with(&stop_at) || attempt.previous().len() > 10 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).expect("system randomness");
    let verifier = URL_SAFE_NO_PAD.encode(random); // 43 characters, RFC 7636 §4.1
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let state = uuid::Uuid::new_v4().simple().to_string();
    let mut authorize = stack.idp.join("authorize").expect("authorize url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.0)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("nonce", &uuid::Uuid::new_v4().simple().to_string())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let login_page = http.get(authorize).send().await.expect("GET /authorize");
    assert_eq!(
        login_page.status(),
        StatusCode::OK,
        "the IdP shows its login form"
    );
    let answer = fill_login_form(&http, login_page, user).await;
    assert!(
        answer.status().is_redirection(),
        "login redirects to the client: {}",
        answer.status()
    );
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("Location");
    let callback = Url::parse(location).expect("callback url");
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {callback}"))
    };
    assert_eq!(param("state"), state, "state is echoed");
    let code = param("code");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.as_str()),
    ];
    let token_url = stack.idp.join("token").expect("token url");
    let redeem = http.post(token_url.clone());
    let redeem = match client {
        (id, Some(secret)) => redeem.basic_auth(id, Some(secret)),
        (id, None) => {
            form.push(("client_id", id));
            redeem.header("dpop", cli_proof(&Method::POST, &token_url, None))
        }
    }
    .form(&form);
    let (status, json) = json_answer(redeem.send().await.expect("POST /token")).await;
    assert_eq!(status, StatusCode::OK, "token response: {json}");
    (json, http)
}

/// The `cli` client's DPoP key in this test process.
pub fn cli_key() -> &'static DpopKey {
    static KEY: LazyLock<DpopKey> = LazyLock::new(DpopKey::generate);
    &KEY
}

/// A fresh proof of [`cli_key`] for `method` `url` (with `ath` of `token`).
pub fn cli_proof(method: &Method, url: &Url, token: Option<&str>) -> String {
    cli_key().proof(method.as_str(), url.as_str(), token)
}

/// Whether `token` is an access token bound to [`cli_key`] (its `cnf.jkt`;
/// the payload is read unverified: this only picks the scheme to send).
pub fn bound_to_cli_key(token: &str) -> bool {
    let payload = token.split('.').nth(1).unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .is_some_and(|claims| claims["cnf"]["jkt"] == cli_key().jkt())
}

/// `request` (`method` to `url`) with `token`: a token bound to [`cli_key`]
/// as `Authorization: DPoP` with a proof for this request, any other as `Bearer`.
pub fn authorize(
    request: RequestBuilder,
    method: &Method,
    url: &Url,
    token: &str,
) -> RequestBuilder {
    if bound_to_cli_key(token) {
        request
            .header(reqwest::header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", cli_proof(method, url, Some(token)))
    } else {
        request.bearer_auth(token)
    }
}

/// A refresh of one of `cli`'s refresh tokens at the IdP, with a proof of
/// [`cli_key`] (the key the refresh token is bound to).
/// `idp` is the IdP's base URL.
pub fn cli_refresh(http: &reqwest::Client, idp: &Url, refresh_token: &str) -> RequestBuilder {
    let url = idp.join("token").expect("token url");
    http.post(url.clone())
        .header("dpop", cli_proof(&Method::POST, &url, None))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "cli"),
        ])
}

/// A plain client for calls with an explicit access token (or none): a
/// token bound to [`cli_key`] goes with a DPoP proof (see [`authorize`]).
pub async fn call_with_token(
    method: Method,
    url: Url,
    token: Option<&str>,
    body: Option<&Value>,
    extra: HeaderMap,
) -> (StatusCode, Value, HeaderMap) {
    let mut req = reqwest::Client::new()
        .request(method.clone(), url.clone())
        .headers(extra);
    if let Some(token) = token {
        req = authorize(req, &method, &url, token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let response = req.send().await.expect("send");
    let headers = response.headers().clone();
    let (status, json) = json_answer(response).await;
    (status, json, headers)
}
