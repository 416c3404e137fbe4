//! How a part authenticates to the IdP as an OAuth client: HTTP Basic with the
//! client id and secret form-encoded first (RFC 6749 §2.3.1), as the IdP
//! decodes them. Secrets made by `openssl rand -base64 32` (what the
//! deployment files suggest) contain `+`, `/` and `=`; sent raw, a `+` would
//! arrive as a space and the client would be refused.

/// `request` with `Authorization: Basic` for this client.
pub fn basic_auth(
    request: reqwest::RequestBuilder,
    id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    request.basic_auth(form_encode(id), Some(form_encode(secret)))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn reserved_characters_are_form_encoded() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
        assert_eq!(form_encode("k+/x=%"), "k%2B%2Fx%3D%25");
    }
}
