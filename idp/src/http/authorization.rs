//! The one parser of the `Authorization` header (RFC 9110 §11.6.2): its
//! scheme and credentials, for client authentication (`Basic`, see
//! [`super::client_auth`]) and access tokens (`Bearer` and `DPoP`, see
//! [`super::userinfo`]). Each caller maps a bad header to its own error.

use axum::http::{HeaderMap, header};

/// The `Authorization` header split as `<scheme> <credentials>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub scheme: &'a str,
    /// What follows the first space; `None` when there is no space.
    pub credentials: Option<&'a str>,
}

/// The header is not visible ASCII text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

impl<'a> Authorization<'a> {
    /// The request's `Authorization` header, if it has one.
    pub fn of(headers: &'a HeaderMap) -> Result<Option<Self>, Unreadable> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| Unreadable)?;
        Ok(Some(match value.split_once(' ') {
            Some((scheme, credentials)) => Authorization {
                scheme,
                credentials: Some(credentials),
            },
            None => Authorization {
                scheme: value,
                credentials: None,
            },
        }))
    }

    /// `true` when the scheme is `scheme` (schemes are case-insensitive).
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The trimmed credentials of a `scheme` header, when there are some.
    pub fn token(&self, scheme: &str) -> Option<&'a str> {
        let credentials = self.credentials?.trim();
        (self.is(scheme) && !credentials.is_empty()).then_some(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn the_header_splits_into_scheme_and_credentials() {
        assert_eq!(Authorization::of(&HeaderMap::new()), Ok(None));
        assert_eq!(Authorization::of(&with("é".as_bytes())), Err(Unreadable));
        let h = with(b"bEaReR  abc ");
        let a = Authorization::of(&h).unwrap().unwrap();
        assert!(a.is("Bearer") && !a.is("Basic"));
        assert_eq!(a.token("bearer"), Some("abc"));
        assert_eq!(a.token("dpop"), None);
        let h = with(b"Bearer");
        let a = Authorization::of(&h).unwrap().unwrap();
        assert_eq!(
            (a.scheme, a.credentials, a.token("bearer")),
            ("Bearer", None, None)
        );
        let h = with(b"Bearer   ");
        assert_eq!(
            Authorization::of(&h).unwrap().unwrap().token("bearer"),
            None
        );
    }
}
