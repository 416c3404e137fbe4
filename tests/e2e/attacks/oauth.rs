//! OAuth attacks against the real IdP binary (RFC 9700): open redirect,
//! redeeming another client's code, PKCE downgrade, mix-up (RFC 9207 `iss`),
//! CSRF on the login form and session fixation.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode, redirect};
use serde_json::Value;
use url::Url;

use crate::harness::client::{CLI_REDIRECT_URI, json_answer};
use crate::harness::stack::GATEWAY_CLIENT_SECRET;
use crate::harness::{Stack, User, cli_proof, html};

/// A browser at the IdP that does not follow redirects, so every `Location`
/// is inspected.
pub struct Agent {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Agent {
    pub fn new() -> Agent {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(redirect::Policy::none())
            .build()
            .expect("client");
        Agent { http, jar }
    }

    /// The IdP session cookie's value, if any.
    pub fn session_cookie(&self, stack: &Stack) -> Option<String> {
        let cookies = self.jar.cookies(&stack.idp)?;
        cookies
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("baton_idp_session="))
            .map(str::to_owned)
    }
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// `/authorize` for the `cli` client with `extra` parameters (PKCE S256 added
/// unless `extra` names `code_challenge`).
pub fn authorize_url(
    stack: &Stack,
    client: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> Url {
    let mut url = stack.idp.join("authorize").expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid orders:read")
            .append_pair("state", "st4te");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url
}

/// Posts the login form of `page` as `user` (with `password`); the IdP's answer.
pub async fn post_login(
    agent: &Agent,
    stack: &Stack,
    page: Response,
    user: &str,
    password: &str,
) -> Response {
    let body = page.text().await.expect("login page");
    let mut form = html::login_form(&body).unwrap_or_else(|| panic!("no login form:\n{body}"));
    form.set("username", user);
    form.set("password", password);
    agent
        .http
        .post(stack.idp.join("login").expect("url"))
        .form(&form.fields)
        .send()
        .await
        .expect("POST /login")
}

fn location(r: &Response) -> Url {
    let l = r
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {} answer", r.status()));
    Url::parse(l).expect("absolute Location")
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs alice in for `cli` with PKCE (or reuses the agent's IdP session);
/// returns the callback URL and the verifier.
async fn code_for_cli(stack: &Stack, agent: &Agent) -> (Url, String) {
    let (verifier, challenge) = pkce();
    let page = agent
        .http
        .get(authorize_url(
            stack,
            "cli",
            CLI_REDIRECT_URI,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .expect("GET /authorize");
    if page.status().is_redirection() {
        return (location(&page), verifier); // already signed in (SSO)
    }
    assert_eq!(page.status(), StatusCode::OK, "login page");
    let answer = post_login(agent, stack, page, "alice", &User::Alice.password()).await;
    assert!(answer.status().is_redirection(), "{}", answer.status());
    (location(&answer), verifier)
}

async fn redeem(
    stack: &Stack,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let url = stack.idp.join("token").expect("url");
    let mut req = reqwest::Client::new().post(url.clone()).form(form);
    match basic {
        Some((id, secret)) => req = req.basic_auth(id, Some(secret)),
        // The public `cli` client proves its DPoP key.
        None => req = req.header("dpop", cli_proof(&reqwest::Method::POST, &url, None)),
    }
    json_answer(req.send().await.expect("POST /token")).await
}

#[tokio::test]
async fn open_redirects_are_refused_with_an_error_page() {
    let stack = Stack::start().await;
    let agent = Agent::new();
    let (_, challenge) = pkce();
    let pkce_params = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (client, redirect_uri) in [
        ("cli", "https://evil.example/callback"),
        ("cli", "http://127.0.0.1:8976/callback/../../evil"),
        (
            "cli",
            "http://127.0.0.1:8976/callback?next=https://evil.example",
        ),
        ("cli", "http://127.0.0.1:8976/callback#frag"),
        ("cli", "http://127.0.0.1:8977/callback"),
        ("cli", "http://127.0.0.1:8976/CALLBACK"),
        ("cli", "http://127.0.0.1:8976/callbackx"),
        ("cli", "http://127.0.0.1:8976@evil.example/callback"),
        ("cli", "//evil.example/callback"),
        ("cli", ""),
        ("gateway", CLI_REDIRECT_URI), // another client's URI
        ("no-such-client", "https://evil.example/callback"),
    ] {
        let r = agent
            .http
            .get(authorize_url(&stack, client, redirect_uri, &pkce_params))
            .send()
            .await
            .expect("GET /authorize");
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{client} {redirect_uri:?}: an error page"
        );
        assert!(
            r.headers().get(LOCATION).is_none(),
            "{client} {redirect_uri:?}: no redirect"
        );
    }

    // The post-logout redirect is checked just as strictly.
    let mut logout = stack.idp.join("logout").expect("url");
    logout
        .query_pairs_mut()
        .append_pair("client_id", "gateway")
        .append_pair("post_logout_redirect_uri", "https://evil.example/");
    let r = agent.http.get(logout).send().await.expect("GET /logout");
    let to = r
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(!to.contains("evil.example"), "logout redirected to {to:?}");
}

#[tokio::test]
async fn codes_pkce_mix_up_csrf_and_session_fixation() {
    let stack = Stack::start().await;
    let issuer = stack.idp.as_str().trim_end_matches('/');

    // Mix-up defence (RFC 9207): advertised, and every authorization response
    // (success and error) names the issuer.
    let (status, metadata) = json_answer(
        reqwest::get(
            stack
                .idp
                .join(".well-known/openid-configuration")
                .expect("url"),
        )
        .await
        .expect("discovery"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // Session fixation: a session id planted before sign-in is not adopted.
    let agent = Agent::new();
    agent.jar.add_cookie_str(
        "baton_idp_session=attacker-chosen-value; Path=/",
        &stack.idp,
    );
    let (callback, verifier) = code_for_cli(&stack, &agent).await;
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some(issuer),
        "iss in {callback}"
    );
    assert_eq!(param(&callback, "state").as_deref(), Some("st4te"));
    let first = agent
        .session_cookie(&stack)
        .expect("a session cookie after sign-in");
    assert_ne!(
        first, "attacker-chosen-value",
        "the planted session id was adopted"
    );
    let code = param(&callback, "code").expect("code");

    // Another client cannot redeem cli's code, even with its own valid secret.
    let (status, body) = redeem(
        &stack,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CLI_REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        Some(("gateway", GATEWAY_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // PKCE: a wrong verifier or none at all does not redeem a code.
    let (callback, verifier) = code_for_cli(&stack, &agent).await;
    let code = param(&callback, "code").expect("code");
    let wrong = pkce().0;
    for (what, v) in [
        ("a wrong verifier", Some(wrong.as_str())),
        ("no verifier", None),
    ] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CLI_REDIRECT_URI),
            ("client_id", "cli"),
        ];
        if let Some(v) = v {
            form.push(("code_verifier", v));
        }
        let (status, body) = redeem(&stack, &form, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(
            body["error"] == "invalid_grant" || body["error"] == "invalid_request",
            "{what}: {body}"
        );
    }
    let _ = verifier;

    // Session rotation: signing in again (prompt=login) issues a new session id.
    let (_, challenge) = pkce();
    let page = agent
        .http
        .get(authorize_url(
            &stack,
            "cli",
            CLI_REDIRECT_URI,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("prompt", "login"),
            ],
        ))
        .send()
        .await
        .expect("GET /authorize");
    let answer = post_login(&agent, &stack, page, "alice", &User::Alice.password()).await;
    assert!(answer.status().is_redirection());
    let second = agent.session_cookie(&stack).expect("session cookie");
    assert_ne!(first, second, "the session id changes at every sign-in");

    // PKCE downgrade: plain, a missing challenge, or a malformed one: the
    // error goes back to the (registered) client, with iss; no code.
    for extra in [
        vec![
            ("code_challenge", "a".repeat(43)),
            ("code_challenge_method", "plain".to_owned()),
        ],
        vec![],
        vec![
            ("code_challenge", "short".to_owned()),
            ("code_challenge_method", "S256".to_owned()),
        ],
        vec![("code_challenge_method", "S256".to_owned())],
    ] {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = Agent::new()
            .http
            .get(authorize_url(&stack, "cli", CLI_REDIRECT_URI, &extra))
            .send()
            .await
            .expect("GET /authorize");
        assert!(r.status().is_redirection(), "{extra:?}: {}", r.status());
        let to = location(&r);
        assert_eq!(
            param(&to, "error").as_deref(),
            Some("invalid_request"),
            "{extra:?}: {to}"
        );
        assert_eq!(
            param(&to, "iss").as_deref(),
            Some(issuer),
            "{extra:?}: {to}"
        );
        assert!(param(&to, "code").is_none());
    }

    // PKCE downgrade at the token endpoint (RFC 9700 §2.1.1): a code issued
    // without a challenge (the confidential gateway may omit PKCE) is not
    // redeemed by a request carrying a code_verifier.
    let gateway_agent = Agent::new();
    let gateway_callback = format!("{}auth/callback", stack.gateway);
    let page = gateway_agent
        .http
        .get(authorize_url(&stack, "gateway", &gateway_callback, &[]))
        .send()
        .await
        .expect("GET /authorize");
    assert_eq!(page.status(), StatusCode::OK, "gateway login page");
    let answer = post_login(
        &gateway_agent,
        &stack,
        page,
        "alice",
        &User::Alice.password(),
    )
    .await;
    let code = param(&location(&answer), "code").expect("code");
    let (status, body) = redeem(
        &stack,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &gateway_callback),
            ("code_verifier", &pkce().0),
        ],
        Some(("gateway", GATEWAY_CLIENT_SECRET)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "verifier without challenge: {body}"
    );

    // CSRF on the login form: without the flow's token, with another one, or
    // without the flow cookie (a cross-site post), the password is not even
    // checked and no code is issued.
    let victim = Agent::new();
    let (_, challenge) = pkce();
    let page = victim
        .http
        .get(authorize_url(
            &stack,
            "cli",
            CLI_REDIRECT_URI,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .expect("GET /authorize");
    let body = page.text().await.expect("page");
    let form = html::login_form(&body).expect("login form");
    let csrf = form
        .fields
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.clone())
        .expect("a CSRF token in the form");
    let login = stack.idp.join("login").expect("url");
    for (what, client, token) in [
        ("no CSRF token", &victim.http, None),
        (
            "another CSRF token",
            &victim.http,
            Some("x".repeat(csrf.len())),
        ),
        ("no flow cookie", &Agent::new().http, Some(csrf.clone())),
    ] {
        let mut fields = vec![
            ("username", "alice".to_owned()),
            ("password", User::Alice.password()),
        ];
        if let Some(t) = token {
            fields.push(("csrf_token", t));
        }
        let r = client
            .post(login.clone())
            .form(&fields)
            .send()
            .await
            .expect("POST /login");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(
            r.headers().get(LOCATION).is_none(),
            "{what}: no redirect with a code"
        );
    }
}
