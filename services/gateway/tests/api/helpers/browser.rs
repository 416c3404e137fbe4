//! A test browser: a cookie jar that follows the gateway's sign-in, and
//! what a test reads from the pages and cookies it gets.

use reqwest::{Method, StatusCode, header};
use serde_json::Value;

/// A browser: cookie jar, no automatic redirects (the tests follow them).
/// A clone shares the cookie jar (another tab).
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    pub gateway: String,
    /// The session's CSRF token, from `/auth/session`.
    pub csrf: Option<String>,
    /// The last `baton_session` cookie value the gateway set, and its whole `Set-Cookie`.
    pub session_cookie: Option<String>,
    pub session_set_cookie: Option<String>,
}

impl Browser {
    /// Follows redirects from `response` with GETs until a non-redirect answer.
    pub async fn follow(&mut self, mut response: reqwest::Response) -> reqwest::Response {
        for _ in 0..10 {
            if let Some(c) = set_cookie(&response, "baton_session") {
                let value = c["baton_session=".len()..].split(';').next().unwrap_or("");
                self.session_cookie = Some(value.to_owned()).filter(|v| !v.is_empty());
                self.session_set_cookie = Some(c.to_owned());
            }
            if !response.status().is_redirection() {
                return response;
            }
            let location = response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            let next = response.url().join(&location).unwrap();
            response = self.client.get(next).send().await.unwrap();
        }
        panic!("too many redirects");
    }

    /// Starts sign-in at the gateway and answers the IdP's login form;
    /// returns the final response (the page sign-in returned to).
    pub async fn sign_in_to(&mut self, path: &str, user: &str) -> reqwest::Response {
        let start = self
            .client
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .unwrap();
        let login_page = self.follow(start).await;
        if login_page.url().as_str().starts_with(&self.gateway) {
            // Single sign-on: the IdP session was still there, no login form.
            self.csrf = self.session().await["csrf_token"]
                .as_str()
                .map(str::to_owned);
            return login_page;
        }
        assert_eq!(login_page.status(), StatusCode::OK, "the IdP's login page");
        let login_url = login_page.url().join("/login").unwrap();
        let html = login_page.text().await.unwrap();
        let csrf =
            extract(&html, "name=\"csrf_token\" value=\"").expect("csrf field on the login page");
        let origin = login_url.origin().ascii_serialization();
        let submitted = self
            .client
            .post(login_url)
            .header(header::ORIGIN, origin)
            .form(&[
                ("username", user),
                ("password", &format!("{user}-password")),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(submitted.status(), StatusCode::SEE_OTHER, "login accepted");
        let done = self.follow(submitted).await;
        self.csrf = self.session().await["csrf_token"]
            .as_str()
            .map(str::to_owned);
        done
    }

    pub async fn sign_in(&mut self, user: &str) {
        let page = self.sign_in_to("/auth/login", user).await;
        assert_eq!(page.url().path(), "/");
        assert!(self.csrf.is_some(), "signed in as {user}");
    }

    /// `GET /auth/session`.
    pub async fn session(&self) -> Value {
        self.client
            .get(format!("{}/auth/session", self.gateway))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An API call as the page makes it: same-origin `Origin`, the CSRF token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.gateway))
            .header(header::ORIGIN, &self.gateway)
            .header(header::ACCEPT, "application/json");
        if let Some(csrf) = &self.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.api(Method::GET, path, None).await
    }
}

/// The text after `marker` up to the next `"`.
fn extract(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The `baton_session` cookie set by `response`, if any (name=value).
pub fn set_cookie<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}
