//! The realm in PostgreSQL: users, roles, scopes and clients.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use platform::crypto::{ct_eq, sha256};

/// The scope a client must be registered with to read `/revocations/stream`.
pub const REVOCATIONS_READ: &str = "revocations:read";

/// Scopes about the person, meaningless in a `client_credentials` token.
pub const USER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// RFC 8693 token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

pub const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    TOKEN_EXCHANGE,
];

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
}

pub async fn user_by_username(
    db: impl PgExecutor<'_>,
    username: &str,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, username, password_hash, name, email, email_verified, disabled
         FROM users WHERE username = $1",
        username,
    )
    .fetch_optional(db)
    .await
}

pub async fn user_by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, username, password_hash, name, email, email_verified, disabled
         FROM users WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// The user `id` if not disabled, with their roles (sorted), in one statement:
/// what every grant issued for a person needs.
pub async fn active_user_with_roles(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<(User, Vec<String>)>> {
    let row = sqlx::query!(
        r#"SELECT id, username, password_hash, name, email, email_verified, disabled,
                  ARRAY(SELECT role FROM user_roles WHERE user_id = users.id ORDER BY role) AS "roles!"
           FROM users WHERE id = $1 AND NOT disabled"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let user = User {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            name: r.name,
            email: r.email,
            email_verified: r.email_verified,
            disabled: r.disabled,
        };
        (user, r.roles)
    }))
}

pub async fn roles_of(db: impl PgExecutor<'_>, user: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role",
        user,
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Default)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<Vec<u8>>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    /// A disabled client cannot authenticate nor start a sign-in.
    pub disabled: bool,
    /// The algorithm of this client's ID tokens; `None`: `IDP_SIGNING_ALG`.
    pub id_token_signed_response_alg: Option<String>,
}

impl Client {
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Exact string comparison (RFC 9700 §4.1.3): no prefix, no pattern.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Constant-time check of a presented secret against the stored SHA-256.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = sha256(secret.as_bytes());
        match &self.secret_hash {
            Some(stored) => ct_eq(&presented, stored),
            None => false,
        }
    }
}

/// The client `id` if it is registered and enabled: what every protocol
/// endpoint may deal with.
pub async fn client(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<Client>> {
    sqlx::query_as!(
        Client,
        "SELECT id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris,
                grant_types, scopes, resources, disabled, id_token_signed_response_alg
         FROM clients WHERE id = $1 AND NOT disabled",
        id,
    )
    .fetch_optional(db)
    .await
}

/// The client `id`, enabled or not (administration).
pub async fn any_client(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<Client>> {
    sqlx::query_as!(
        Client,
        "SELECT id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris,
                grant_types, scopes, resources, disabled, id_token_signed_response_alg
         FROM clients WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Every client, enabled or not (administration).
pub async fn clients(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Client>> {
    sqlx::query_as!(
        Client,
        "SELECT id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris,
                grant_types, scopes, resources, disabled, id_token_signed_response_alg
         FROM clients ORDER BY id",
    )
    .fetch_all(db)
    .await
}

/// What `idp clients add` and `idp seed` register.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    /// `None` registers a public client.
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RealmError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl NewClient {
    /// Checks what the database constraints cannot express (scopes and
    /// resources are checked against their tables by [`crate::admin::upsert_client`]).
    pub fn validate(&self) -> Result<(), RealmError> {
        check_registration(&Registration {
            public: self.secret.is_none(),
            grant_types: &self.grant_types,
            redirect_uris: &self.redirect_uris,
            post_logout_redirect_uris: &self.post_logout_redirect_uris,
            resources: &self.resources,
        })
    }
}

/// What must hold together in a client's registration, new or updated.
pub struct Registration<'a> {
    pub public: bool,
    pub grant_types: &'a [String],
    pub redirect_uris: &'a [String],
    pub post_logout_redirect_uris: &'a [String],
    pub resources: &'a [String],
}

pub fn check_registration(r: &Registration<'_>) -> Result<(), RealmError> {
    let bad = |m: String| Err(RealmError::Invalid(m));
    for g in r.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return bad(format!(
                "unknown grant type {g:?} (known: {})",
                GRANT_TYPES.join(", ")
            ));
        }
    }
    if r.resources.is_empty() {
        return bad("a client needs at least one resource (the audience of its tokens)".into());
    }
    if r.public
        && r.grant_types
            .iter()
            .any(|g| g == "client_credentials" || g == TOKEN_EXCHANGE)
    {
        return bad("a public client cannot use client_credentials or token exchange".into());
    }
    if r.grant_types.iter().any(|g| g == "authorization_code") && r.redirect_uris.is_empty() {
        return bad("authorization_code needs at least one redirect URI".into());
    }
    for uri in r.redirect_uris.iter().chain(r.post_logout_redirect_uris) {
        check_redirect_uri(uri).map_err(RealmError::Invalid)?;
    }
    Ok(())
}

/// A redirect URI must be absolute, without a fragment, and https unless it
/// points at this machine (RFC 9700 §2.6, RFC 8252 §7.3).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} must not have a fragment"));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!("{uri:?} must use https (http only for localhost)")),
        // Private-use schemes of native apps (RFC 8252 §7.1) contain a dot.
        s if s.contains('.') => Ok(()),
        _ => Err(format!("{uri:?} has an unsupported scheme")),
    }
}

pub async fn ensure_roles(db: impl PgExecutor<'_>, roles: &[&str]) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO roles (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        roles as &[&str],
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Creates a user unless the username is taken; answers the user's id and
/// whether it was created.
pub async fn insert_user(
    db: &PgPool,
    username: &str,
    password_hash: &str,
    name: &str,
    email: Option<&str>,
) -> Result<(Uuid, bool), RealmError> {
    let created = sqlx::query_scalar!(
        "INSERT INTO users (id, username, password_hash, name, email, email_verified)
         VALUES ($1, $2, $3, $4, $5::text, $5::text IS NOT NULL) ON CONFLICT (username) DO NOTHING RETURNING id",
        Uuid::now_v7(),
        username,
        password_hash,
        name,
        email,
    )
    .fetch_optional(db)
    .await?;
    match created {
        Some(id) => Ok((id, true)),
        None => {
            let id = sqlx::query_scalar!("SELECT id FROM users WHERE username = $1", username)
                .fetch_one(db)
                .await?;
            Ok((id, false))
        }
    }
}

pub async fn set_password(
    db: impl PgExecutor<'_>,
    user: Uuid,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user,
        password_hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn grant_roles(db: &PgPool, user: Uuid, roles: &[&str]) -> sqlx::Result<()> {
    ensure_roles(db, roles).await?;
    sqlx::query!(
        "INSERT INTO user_roles (user_id, role) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        user,
        roles as &[&str],
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn revoke_roles(db: &PgPool, user: Uuid, roles: &[&str]) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM user_roles WHERE user_id = $1 AND role = ANY($2)",
        user,
        roles as &[&str],
    )
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://localhost:8080/auth/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8976/callback").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn client_validation_catches_inconsistent_registrations() {
        let base = NewClient {
            id: "c".into(),
            name: "C".into(),
            secret: None,
            redirect_uris: vec!["https://c.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["openid".into()],
            resources: vec!["order".into()],
        };
        assert!(base.validate().is_ok());
        let with = |f: &dyn Fn(&mut NewClient)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate()
        };
        assert!(with(&|c| c.grant_types = vec!["client_credentials".into()]).is_err());
        assert!(with(&|c| c.grant_types = vec!["password".into()]).is_err());
        assert!(with(&|c| c.resources.clear()).is_err());
        assert!(with(&|c| c.redirect_uris.clear()).is_err());
    }
}
