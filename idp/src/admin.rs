//! Administrative changes to users and clients (the `idp users …` and
//! `idp clients …` commands): each one also ends what the change makes
//! invalid — sessions, refresh tokens, and the access tokens already out
//! there (through the revocation stream), so a disabled account or client
//! stops working everywhere, not only at its next sign-in.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::catalog;
use crate::keys::Alg;
use crate::realm::{self, Client, NewClient, RealmError, Registration, User};
use crate::throttle::{self, AuthEvent};
use platform::crypto::{random_token, sha256};

/// Where administrative audit lines come from (`auth_events.addr`).
pub const ADMIN_ADDR: &str = "admin-cli";

/// One row of `idp users list`.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    pub disabled: bool,
    pub roles: Vec<String>,
}

pub async fn users(db: &PgPool) -> sqlx::Result<Vec<UserSummary>> {
    sqlx::query_as!(
        UserSummary,
        r#"SELECT id, username, name, email, disabled,
                  ARRAY(SELECT role FROM user_roles WHERE user_id = users.id ORDER BY role) AS "roles!"
           FROM users ORDER BY username"#,
    )
    .fetch_all(db)
    .await
}

/// Disables (or enables) a user. Disabling ends every session of the user
/// and revokes every token issued to them so far; answers how many sessions
/// ended.
pub async fn set_user_disabled(
    db: &PgPool,
    user: &User,
    disabled: bool,
    access_ttl: Duration,
) -> sqlx::Result<usize> {
    sqlx::query!(
        "UPDATE users SET disabled = $2, updated_at = now() WHERE id = $1",
        user.id,
        disabled,
    )
    .execute(db)
    .await?;
    let kind = if disabled {
        "user_disabled"
    } else {
        "user_enabled"
    };
    audit_user(db, kind, &user.username).await?;
    if !disabled {
        return Ok(0);
    }
    crate::sessions::end_all_for_user(db, user.id, "user disabled", access_ttl).await
}

/// Removes a user's second factors (authenticator app, recovery codes and
/// passkeys), audited as `second_factor_reset`; answers whether they had any.
pub async fn reset_second_factor(db: &PgPool, user: &User) -> sqlx::Result<bool> {
    let app = crate::totp::remove(db, user.id).await?;
    let passkeys = crate::passkeys::remove_all(db, user.id).await?;
    let removed = app || passkeys > 0;
    if removed {
        audit_user(db, "second_factor_reset", &user.username).await?;
    }
    Ok(removed)
}

/// Deletes a user: disabled first (no new sign-in or refresh can start),
/// every session ended and token revoked, the deletion audited, then the row
/// (with its roles, sessions and grants) removed. Answers how many sessions
/// ended.
pub async fn delete_user(db: &PgPool, user: &User, access_ttl: Duration) -> sqlx::Result<usize> {
    sqlx::query!("UPDATE users SET disabled = true WHERE id = $1", user.id)
        .execute(db)
        .await?;
    let ended = crate::sessions::end_all_for_user(db, user.id, "user deleted", access_ttl).await?;
    audit_user(db, "user_deleted", &user.username).await?;
    sqlx::query!("DELETE FROM users WHERE id = $1", user.id)
        .execute(db)
        .await?;
    Ok(ended)
}

async fn audit_user(db: &PgPool, kind: &'static str, username: &str) -> sqlx::Result<()> {
    throttle::audit(
        db,
        AuthEvent {
            kind,
            username: Some(username),
            client_id: None,
            addr: ADMIN_ADDR,
        },
    )
    .await
}

/// What `idp clients update` changes; `None` leaves a field as it is, a
/// list replaces the registered one.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    /// Added to (and removed from) the scopes, after `scopes` replaced them.
    pub add_scopes: Vec<String>,
    pub remove_scopes: Vec<String>,
    /// Added to (and removed from) the resources, after `resources` replaced them.
    pub add_resources: Vec<String>,
    pub remove_resources: Vec<String>,
    /// `Some(None)` goes back to the IdP's default algorithm.
    pub id_token_alg: Option<Option<Alg>>,
}

/// Changes a client's registration; the result is checked as a whole, like a
/// new registration. The change reaches every replica within the client
/// cache's life ([`crate::cache::CLIENT_TTL`]).
pub async fn update_client(
    db: &PgPool,
    id: &str,
    changes: ClientChanges,
) -> Result<Client, RealmError> {
    let mut tx = db.begin().await?;
    let mut c = client_for_update(&mut tx, id).await?;
    let set = |field: &mut Vec<String>, new: Option<Vec<String>>| {
        if let Some(new) = new {
            *field = new;
        }
    };
    if let Some(name) = changes.name {
        c.name = name;
    }
    set(&mut c.redirect_uris, changes.redirect_uris);
    set(
        &mut c.post_logout_redirect_uris,
        changes.post_logout_redirect_uris,
    );
    set(&mut c.grant_types, changes.grant_types);
    set(&mut c.scopes, changes.scopes);
    set(&mut c.resources, changes.resources);
    edit(&mut c.scopes, changes.add_scopes, &changes.remove_scopes);
    edit(
        &mut c.resources,
        changes.add_resources,
        &changes.remove_resources,
    );
    if let Some(alg) = changes.id_token_alg {
        c.id_token_signed_response_alg = alg.map(|a| a.as_str().to_owned());
    }
    realm::check_registration(&Registration {
        public: c.public,
        grant_types: &c.grant_types,
        redirect_uris: &c.redirect_uris,
        post_logout_redirect_uris: &c.post_logout_redirect_uris,
        resources: &c.resources,
    })?;
    crate::catalog::check(&mut *tx, &c.scopes, &c.resources).await?;
    sqlx::query!(
        "UPDATE clients SET name = $2, redirect_uris = $3, post_logout_redirect_uris = $4,
             grant_types = $5, scopes = $6, resources = $7, id_token_signed_response_alg = $8,
             updated_at = now()
         WHERE id = $1",
        c.id,
        c.name,
        &c.redirect_uris,
        &c.post_logout_redirect_uris,
        &c.grant_types,
        &c.scopes,
        &c.resources,
        c.id_token_signed_response_alg,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(c)
}

/// Appends what `add` has that `list` lacks, then drops what `remove` names.
fn edit(list: &mut Vec<String>, add: Vec<String>, remove: &[String]) {
    for a in add {
        if !list.contains(&a) {
            list.push(a);
        }
    }
    list.retain(|x| !remove.contains(x));
}

async fn client_for_update(tx: &mut sqlx::PgConnection, id: &str) -> Result<Client, RealmError> {
    sqlx::query!(
        "SELECT 1 AS locked FROM clients WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    realm::any_client(&mut *tx, id)
        .await?
        .ok_or_else(|| RealmError::NotFound(format!("no client {id:?}")))
}

/// Disables (or enables) a client. A disabled client can neither
/// authenticate nor start a sign-in; disabling also revokes its refresh
/// tokens (with the access tokens issued beside them) and its own
/// `client_credentials` tokens. Answers how many refresh tokens were revoked.
pub async fn set_client_disabled(
    db: &PgPool,
    id: &str,
    disabled: bool,
    access_ttl: Duration,
) -> Result<u64, RealmError> {
    let mut tx = db.begin().await?;
    let found = sqlx::query!(
        "UPDATE clients SET disabled = $2, updated_at = now() WHERE id = $1",
        id,
        disabled,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(RealmError::NotFound(format!("no client {id:?}")));
    }
    let revoked = if disabled {
        revoke_client_tokens(&mut tx, id, "client disabled", access_ttl).await?
    } else {
        0
    };
    tx.commit().await?;
    Ok(revoked)
}

async fn revoke_client_tokens(
    tx: &mut sqlx::PgConnection,
    id: &str,
    reason: &str,
    access_ttl: Duration,
) -> sqlx::Result<u64> {
    let revoked =
        crate::grants::revoke_refresh(&mut *tx, crate::grants::RefreshTokens::OfClient(id), reason)
            .await?;
    // A client_credentials token names the client as its subject.
    crate::revocations::record_subject(tx, id, reason, access_ttl + Duration::from_secs(60))
        .await?;
    Ok(revoked)
}

/// Deletes a client: its tokens are revoked (as [`set_client_disabled`]),
/// then the registration and its grants are removed.
pub async fn delete_client(db: &PgPool, id: &str, access_ttl: Duration) -> Result<u64, RealmError> {
    let mut tx = db.begin().await?;
    client_for_update(&mut tx, id).await?;
    let revoked = revoke_client_tokens(&mut tx, id, "client deleted", access_ttl).await?;
    sqlx::query!("DELETE FROM clients WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Gives a confidential client a new random secret (only its SHA-256 is
/// stored); answers the secret, to be shown once. The old secret stops
/// working within the client cache's life.
pub async fn rotate_secret(db: &PgPool, id: &str) -> Result<String, RealmError> {
    let secret = random_token(32);
    let public = sqlx::query_scalar!(
        "UPDATE clients SET secret_hash = CASE WHEN public THEN NULL ELSE $2::bytea END, updated_at = now()
         WHERE id = $1 RETURNING public",
        id,
        &sha256(secret.as_bytes())[..],
    )
    .fetch_optional(db)
    .await?;
    match public {
        None => Err(RealmError::NotFound(format!("no client {id:?}"))),
        Some(true) => Err(RealmError::Invalid(format!(
            "{id} is a public client: it has no secret"
        ))),
        Some(false) => Ok(secret),
    }
}

/// Inserts or replaces a client; the secret is stored as SHA-256 only.
pub async fn upsert_client(db: &PgPool, c: &NewClient) -> Result<(), RealmError> {
    c.validate()?;
    catalog::check(db, &c.scopes, &c.resources).await?;
    let hash = c.secret.as_deref().map(|s| sha256(s.as_bytes()).to_vec());
    sqlx::query!(
        "INSERT INTO clients (id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, grant_types, scopes, resources)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET name = $2, secret_hash = $3, public = $4, redirect_uris = $5,
             post_logout_redirect_uris = $6, grant_types = $7, scopes = $8, resources = $9, updated_at = now()",
        c.id,
        c.name,
        hash.as_deref(),
        hash.is_none(),
        &c.redirect_uris,
        &c.post_logout_redirect_uris,
        &c.grant_types,
        &c.scopes,
        &c.resources,
    )
    .execute(db)
    .await?;
    Ok(())
}
