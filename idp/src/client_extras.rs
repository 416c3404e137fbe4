//! What a client registers beyond its core record ([`crate::realm::Client`]):
//! where the IdP posts its logout tokens (OpenID Connect Back-Channel Logout
//! 1.0, §2.2) and the browser origins allowed to call the IdP (CORS, see
//! [`crate::http::cors`]). Kept in columns and functions of their own so the
//! core registration path stays as it is: `idp clients add` and `idp seed`
//! write these after the client itself.

use sqlx::PgExecutor;

use crate::realm::RealmError;

/// A client's back-channel logout and CORS registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientExtras {
    /// Where logout tokens are posted; `None`: the client gets none.
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in logout tokens (ours always carry it).
    pub backchannel_logout_session_required: bool,
    /// Exact origins (`scheme://host[:port]`) allowed to call the IdP from a browser.
    pub allowed_origins: Vec<String>,
}

impl ClientExtras {
    /// Checks the registration of a client (`public`: it has no secret).
    pub fn validate(&self, public: bool) -> Result<(), RealmError> {
        if let Some(uri) = &self.backchannel_logout_uri {
            check_backchannel_logout_uri(uri, public).map_err(RealmError::Invalid)?;
        }
        if self.backchannel_logout_session_required && self.backchannel_logout_uri.is_none() {
            return Err(RealmError::Invalid(
                "backchannel_logout_session_required needs a backchannel_logout_uri".into(),
            ));
        }
        for origin in &self.allowed_origins {
            check_origin(origin).map_err(RealmError::Invalid)?;
        }
        Ok(())
    }

    /// Stores the registration of the existing client `id`.
    pub async fn save(
        &self,
        db: impl PgExecutor<'_>,
        id: &str,
        public: bool,
    ) -> Result<(), RealmError> {
        self.validate(public)?;
        let updated = sqlx::query!(
            "UPDATE clients SET backchannel_logout_uri = $2, backchannel_logout_session_required = $3,
                 allowed_origins = $4, updated_at = now()
             WHERE id = $1",
            id,
            self.backchannel_logout_uri,
            self.backchannel_logout_session_required,
            &self.allowed_origins,
        )
        .execute(db)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(RealmError::Invalid(format!("no client {id:?}")));
        }
        Ok(())
    }

    /// The registration of client `id` (the default when there is no such client).
    pub async fn of(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Self> {
        let row = sqlx::query_as!(
            Self,
            "SELECT backchannel_logout_uri, backchannel_logout_session_required, allowed_origins
             FROM clients WHERE id = $1",
            id,
        )
        .fetch_optional(db)
        .await?;
        Ok(row.unwrap_or_default())
    }
}

/// §2.2: an absolute http(s) URL without a fragment; http only for a
/// confidential client (this OP allows it, for calls inside a private network).
pub fn check_backchannel_logout_uri(uri: &str, public: bool) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{uri:?} must not carry credentials"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if !public => Ok(()),
        "http" => Err(format!(
            "{uri:?}: a public client's back-channel logout URI must use https"
        )),
        _ => Err(format!("{uri:?} must be an http(s) URL")),
    }
}

/// An origin exactly as a browser sends it in `Origin` (RFC 6454):
/// `https://host[:port]`, or `http://` for this machine only; no path, no
/// trailing slash, lower-case host, default port left out.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|_| format!("{origin:?} is not an origin"))?;
    let serialized = url.origin().ascii_serialization();
    if serialized != origin {
        return Err(format!(
            "{origin:?} is not an origin as browsers send it (expected {serialized:?})"
        ));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{origin:?} must use https (http only for localhost)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_exact_browser_origins() {
        for good in [
            "https://app.example",
            "https://app.example:8443",
            "http://localhost:3000",
            "http://127.0.0.1:5173",
        ] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "https://app.example/",
            "https://app.example/path",
            "https://App.example",
            "https://app.example:443",
            "http://app.example",
            "*",
            "null",
            "app.example",
            "ftp://app.example",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backchannel_uris_are_absolute_and_http_only_for_confidential_clients() {
        assert!(check_backchannel_logout_uri("https://rp.example/bcl", true).is_ok());
        assert!(check_backchannel_logout_uri("http://gateway:8080/bcl", false).is_ok());
        assert!(check_backchannel_logout_uri("http://gateway:8080/bcl", true).is_err());
        assert!(check_backchannel_logout_uri("https://rp.example/bcl#x", false).is_err());
        assert!(check_backchannel_logout_uri("https://u:p@rp.example/bcl", false).is_err());
        assert!(check_backchannel_logout_uri("/bcl", false).is_err());
        assert!(check_backchannel_logout_uri("javascript:alert(1)", false).is_err());
        let required_without_uri = ClientExtras {
            backchannel_logout_session_required: true,
            ..Default::default()
        };
        assert!(required_without_uri.validate(false).is_err());
    }
}
