//! Requests to an app under test: one HTTP client and base URL, with the
//! caller's bearer token when there is one.

use reqwest::{Method, RequestBuilder};

/// The HTTP client of a test, pointed at one app's base URL.
#[derive(Clone)]
pub struct TestClient {
    /// The app's base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// The client (kept for requests the helpers do not cover).
    pub http: reqwest::Client,
}

impl TestClient {
    /// A client for the app at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        super::log::init();
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    /// `method` on `<url><path>`, with `Authorization: Bearer <token>` when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}
