//! Strict request parameters (RFC 6749 §3.1, §3.2): form bodies only with the
//! form content type, a size limit, every parameter at most once, and empty
//! values treated as absent.

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};

use crate::error::{AuthorizeError, OAuthError, PageError};

/// Largest form body accepted (a few long tokens fit comfortably).
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the content type must be application/x-www-form-urlencoded")]
    ContentType,
    #[error("the request body is too large")]
    TooLarge,
    #[error("the request is not valid UTF-8 form data")]
    Malformed,
    #[error("parameter {0} is repeated")]
    Repeated(String),
}

impl From<ParamError> for OAuthError {
    fn from(e: ParamError) -> Self {
        OAuthError::invalid_request(e.to_string())
    }
}

impl From<ParamError> for AuthorizeError {
    fn from(e: ParamError) -> Self {
        Self::Page(e.into())
    }
}

impl From<ParamError> for PageError {
    fn from(e: ParamError) -> Self {
        PageError::bad_request(format!("The request is invalid: {e}."))
    }
}

/// Parameters of one request, each name at most once.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: HashMap<String, String>,
    repeated: Option<String>,
    /// A name or value held a NUL character (which PostgreSQL text refuses).
    malformed: bool,
}

impl Params {
    /// Parses `a=b&c=d`, remembering (not failing on) the first repeated name,
    /// so `/authorize` can still find a trustworthy redirect URI to report it to.
    pub fn parse_lenient(raw: &[u8]) -> Self {
        let mut params = Params::default();
        for (k, v) in url::form_urlencoded::parse(raw) {
            if k.contains('\0') || v.contains('\0') {
                params.malformed = true;
            } else if params.map.contains_key(k.as_ref()) {
                params
                    .repeated
                    .get_or_insert_with(|| k.clone().into_owned());
            } else {
                params.map.insert(k.into_owned(), v.into_owned());
            }
        }
        params
    }

    pub fn parse(raw: &[u8]) -> Result<Self, ParamError> {
        let params = Self::parse_lenient(raw);
        params.check()?;
        Ok(params)
    }

    /// Refuses what [`Params::parse_lenient`] let through: repeated names and NUL characters.
    pub fn check(&self) -> Result<(), ParamError> {
        if self.malformed {
            return Err(ParamError::Malformed);
        }
        match &self.repeated {
            Some(name) => Err(ParamError::Repeated(name.clone())),
            None => Ok(()),
        }
    }

    /// `true` when `name` appeared more than once.
    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.as_deref() == Some(name)
    }

    /// The value of `name`; empty values count as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }
}

/// Reads a form body with the checks above; repeated names are remembered
/// (see [`Params::check`]), not refused here.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, ParamError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(ParamError::ContentType);
    }
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ParamError::TooLarge)?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(ParamError::Malformed);
    }
    Ok(Params::parse_lenient(&bytes))
}

/// Extractor for OAuth endpoints: a strict form body, errors as OAuth JSON.
pub struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _: &S) -> Result<Self, OAuthError> {
        let (parts, body) = req.into_parts();
        let params = read_form(&parts.headers, body).await?;
        params.check()?;
        Ok(Form(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_are_absent() {
        assert_eq!(
            Params::parse(b"a=1&a=2").unwrap_err(),
            ParamError::Repeated("a".into())
        );
        let p = Params::parse(b"a=&b=x%20y&c=+").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("x y"));
        assert_eq!(p.get("c"), Some(" "));
        let lenient = Params::parse_lenient(b"x=1&x=2&y=3");
        assert!(lenient.is_repeated("x") && !lenient.is_repeated("y"));
        assert_eq!(lenient.get("x"), Some("1"));
        let nul = Params::parse_lenient(b"client_id=a%00b&y=1");
        assert_eq!(nul.get("client_id"), None, "values with NUL are dropped");
        assert_eq!(nul.check().unwrap_err(), ParamError::Malformed);
    }

    #[tokio::test]
    async fn only_small_form_bodies_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(
            read_form(&h, Body::from("a=1")).await.unwrap_err(),
            ParamError::ContentType
        );
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            read_form(&h, Body::from("a=1")).await.unwrap_err(),
            ParamError::ContentType
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            read_form(&h, Body::from("a=1")).await.unwrap().get("a"),
            Some("1")
        );
        let big = "a=".to_owned() + &"x".repeat(MAX_BODY);
        assert_eq!(
            read_form(&h, Body::from(big)).await.unwrap_err(),
            ParamError::TooLarge
        );
        assert_eq!(
            read_form(&h, Body::from(vec![0xff, 0xfe]))
                .await
                .unwrap_err(),
            ParamError::Malformed
        );
    }
}
