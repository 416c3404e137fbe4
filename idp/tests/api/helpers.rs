//! A test IdP with the demo realm, and a small browser for its pages.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guard::dpop::DpopKey;
use idp::Config;
use idp::seed::SeedConfig;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;

pub const GATEWAY_REDIRECT: &str = "http://localhost:8080/auth/callback";
pub const GATEWAY_SECRET: &str = "gateway-dev-secret";
pub const CLI_REDIRECT: &str = "http://127.0.0.1:8976/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct TestIdp {
    pub idp: idp::Spawned,
    pub pool: PgPool,
    /// Plain client: no cookies, no redirects followed.
    pub http: reqwest::Client,
}

pub async fn spawn(pool: PgPool) -> TestIdp {
    spawn_with(pool, |_| {}).await
}

pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut Config)) -> TestIdp {
    guard::testing::log::init();
    let idp = idp::spawn(pool.clone(), configure)
        .await
        .expect("the IdP starts");
    idp.seed(&SeedConfig::default())
        .await
        .expect("the demo realm applies");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestIdp { idp, pool, http }
}

impl TestIdp {
    pub fn url(&self, path: &str) -> String {
        self.idp.url(path)
    }

    /// How many `auth_events` rows of `kind` name `username`.
    pub async fn audit_lines(&self, username: &str, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = $1 AND username = $2")
            .bind(kind)
            .bind(username)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The id (`sub`) of the demo user `username`.
    pub async fn user_id(&self, username: &str) -> uuid::Uuid {
        sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub fn browser(&self) -> Browser {
        Browser {
            base: self.idp.issuer.clone(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// POST a form to the token endpoint as the gateway (client_secret_basic).
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth("gateway", Some(GATEWAY_SECRET))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A refresh grant of the gateway client: the status and the JSON answer.
    pub async fn refresh(&self, refresh_token: &str) -> (reqwest::StatusCode, Value) {
        let r = self
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await;
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// A proof of `key` for `POST /token`.
    pub fn token_proof(&self, key: &DpopKey) -> String {
        key.proof("POST", &self.url("/token"), None)
    }

    /// A code for the public `cli` client: alice signs in through `browser`
    /// (the gateway's flow), then the same IdP session answers `cli` at once.
    pub async fn cli_code(&self, browser: &Browser, scope: &str) -> String {
        browser
            .sign_in_gateway("alice", "alice-password", scope)
            .await;
        let r = browser.authorize(&cli_authorize(scope)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        location_query(&r).1["code"].clone()
    }

    /// POST a form to the token endpoint as the public `cli` client, with a
    /// DPoP proof of `key` when given.
    pub async fn cli_token(
        &self,
        form: &[(&str, &str)],
        key: Option<&DpopKey>,
    ) -> reqwest::Response {
        let mut form = form.to_vec();
        form.push(("client_id", "cli"));
        let mut request = self.http.post(self.url("/token")).form(&form);
        if let Some(key) = key {
            request = request.header("dpop", self.token_proof(key));
        }
        request.send().await.unwrap()
    }

    /// Redeems a `cli` code (see [`cli_token`](Self::cli_token)).
    pub async fn cli_redeem(&self, code: &str, key: Option<&DpopKey>) -> reqwest::Response {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CLI_REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        self.cli_token(&form, key).await
    }

    /// Signs alice in through the gateway and redeems the code: the token response.
    pub async fn gateway_tokens(&self, scope: &str) -> Value {
        self.gateway_tokens_in(&self.browser(), scope).await
    }

    /// As [`gateway_tokens`](Self::gateway_tokens), signing in with `browser`
    /// (which then holds the IdP session, e.g. for RP-initiated logout).
    pub async fn gateway_tokens_in(&self, browser: &Browser, scope: &str) -> Value {
        self.gateway_tokens_of(browser, "alice", scope).await
    }

    /// As [`gateway_tokens_in`](Self::gateway_tokens_in), for the demo `user`
    /// (password `<user>-password`).
    pub async fn gateway_tokens_of(&self, browser: &Browser, user: &str, scope: &str) -> Value {
        let code = browser
            .sign_in_gateway(user, &format!("{user}-password"), scope)
            .await;
        let r = self.redeem_gateway_code(&code).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Redeems a code issued to the gateway (PKCE verifier [`VERIFIER`]).
    pub async fn redeem_gateway_code(&self, code: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", GATEWAY_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await
    }

    /// A `client_credentials` grant as `client` (HTTP Basic), with `extra` parameters.
    pub async fn client_credentials(
        &self,
        client: (&str, &str),
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.http
            .post(self.url("/token"))
            .basic_auth(client.0, Some(client.1))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// GET `path` of the IdP as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies a JWT with the key of its `kid` fetched over HTTP from the JWKS
    /// endpoint; the algorithm comes from the JWK, never from the token.
    pub async fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str, aud: &str) -> T {
        let jwks: JwkSet = self.get_json("/jwks.json").await;
        let header = decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some(typ));
        let jwk = jwks
            .find(header.kid.as_deref().expect("kid"))
            .expect("kid published in JWKS");
        let alg = jwk
            .common
            .key_algorithm
            .expect("alg in JWK")
            .to_string()
            .parse()
            .unwrap();
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.idp.issuer]);
        v.set_audience(&[aud]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
        decode::<T>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims
    }

    /// Revokes `token` (RFC 7009) as `client` (id, secret); the answer is always 200.
    pub async fn revoke_as(&self, client: (&str, &str), token: &str) {
        let r = self
            .http
            .post(self.url("/revoke"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }

    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }
}

/// The status and `error` code of an OAuth error response.
pub async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

/// The unverified payload of a JWT (to look at, never to trust).
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
}

/// The query of a redirect's `Location`.
pub fn location_query(r: &reqwest::Response) -> (String, HashMap<String, String>) {
    let loc = r
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned();
    let url = url::Url::parse(&loc).unwrap();
    let q = url.query_pairs().into_owned().collect();
    let base = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    (format!("{base}{}", url.path()), q)
}

pub fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// `cli`'s authorization request (PKCE S256, `state` = `cli-state`).
pub fn cli_authorize(scope: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", "cli"),
        ("redirect_uri", CLI_REDIRECT),
        ("scope", scope),
        ("state", "cli-state"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

pub fn gateway_authorize(scope: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", "gateway"),
        ("redirect_uri", GATEWAY_REDIRECT),
        ("scope", scope),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

impl Browser {
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    /// Posts `form` to `path` (a page's form, as the browser submits it).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Opens the gateway's sign-in (scope `openid`): the login form's CSRF token.
    pub async fn login_csrf(&self) -> String {
        csrf_of(
            &self
                .authorize(&gateway_authorize("openid"))
                .await
                .text()
                .await
                .unwrap(),
        )
    }

    pub async fn authorize(&self, query: &[(String, String)]) -> reqwest::Response {
        self.get("/authorize", query).await
    }

    pub async fn post_login(
        &self,
        csrf: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/login", self.base))
            .form(&[
                ("csrf_token", csrf),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    /// GET /authorize → login form → POST credentials: the redirect response.
    pub async fn sign_in(
        &self,
        query: &[(String, String)],
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self.authorize(query).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        self.post_login(&csrf_of(&html), username, password).await
    }

    /// Signs in through the gateway client; answers the code.
    pub async fn sign_in_gateway(&self, username: &str, password: &str, scope: &str) -> String {
        let r = self
            .sign_in(&gateway_authorize(scope), username, password)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (target, q) = location_query(&r);
        assert_eq!(target, GATEWAY_REDIRECT);
        assert_eq!(q["state"], "st-123");
        q["code"].clone()
    }
}
