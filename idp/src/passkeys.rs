//! Passkeys (WebAuthn, issue 17 item 2): the relying party, the ceremonies
//! in progress and the stored credentials. The pages are
//! [`crate::http::passkeys`] (registration and removal at `/account`) and
//! [`crate::http::passkey_login`] (sign-in).
//!
//! - The relying party is the issuer: its host is the RP id and its origin
//!   the only origin accepted. WebAuthn needs a domain name, so an issuer at
//!   an IP address has no passkeys (the pages say so); `localhost` works.
//! - Every ceremony requires user verification (a PIN or a biometric on the
//!   authenticator), so a passkey alone is two factors: `amr`
//!   [`crate::amr::PASSKEY`], `acr` mfa. After a password it is the second
//!   factor ([`crate::amr::PASSWORD_AND_PASSKEY`]).
//! - Registration asks for a discoverable credential (`residentKey:
//!   required`), so the passkey later signs in without a username: the
//!   browser names the person (the user handle is their id) and the
//!   credential must be theirs.
//! - A ceremony's state (its challenge) stays on the server, in PostgreSQL,
//!   bound to the session or sign-in flow that started it, and is taken
//!   with `DELETE … RETURNING`: an answer counts once, on any replica, and a
//!   replayed answer finds nothing.
//! - The signature counter is kept per credential and must grow (when the
//!   authenticator keeps one: synced passkeys send 0); the update that
//!   records a use is conditional, so one counter value signs in once even
//!   when a cloned authenticator races the original.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::throttle::AuthEvent;
use platform::crypto::sha256;

/// How long a ceremony can be finished after it started (the browser's
/// prompt times out before).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Passkeys a person may have.
pub const MAX_PER_USER: i64 = 20;
/// The answer when the issuer is at an IP address.
pub const UNAVAILABLE: &str =
    "Passkeys need the identity provider at a domain name (its issuer is an IP address).";
/// Characters of a passkey's name.
pub const MAX_NAME: usize = 64;

/// The relying party of `issuer`; `None` when its host is no domain name.
pub fn relying_party(issuer: &str) -> Option<Webauthn> {
    let origin = Url::parse(issuer).ok()?;
    let rp_id = origin.domain()?.to_owned();
    let origin = Url::parse(&origin.origin().ascii_serialization()).ok()?;
    WebauthnBuilder::new(&rp_id, &origin)
        .ok()?
        .rp_name("Baton")
        .timeout(CEREMONY_TTL)
        .build()
        .ok()
}

/// A ceremony's server-side state, as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Ceremony {
    /// Registering a new passkey for the signed-in person.
    Register(PasskeyRegistration),
    /// Signing in with any passkey: the browser says whose.
    SignIn(DiscoverableAuthentication),
    /// The second factor of a known person: one of their passkeys.
    SecondFactor(PasskeyAuthentication),
}

/// What binds a ceremony to what started it (`purpose` and an id only that
/// browser holds: the session id, or the sign-in flow's CSRF token).
pub fn binding(purpose: &str, holder: &str) -> [u8; 32] {
    sha256(format!("baton-idp passkey {purpose} {holder}").as_bytes())
}

/// Stores a ceremony for `user` (if known), bound to `binding`; its id goes
/// to the browser.
#[tracing::instrument(name = "db.passkeys.begin", skip_all)]
pub async fn begin(
    db: &PgPool,
    binding: &[u8; 32],
    user: Option<Uuid>,
    ceremony: &Ceremony,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    let state = serde_json::to_value(ceremony).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let expires = OffsetDateTime::now_utc() + CEREMONY_TTL;
    sqlx::query!(
        "INSERT INTO passkey_ceremonies (id, binding, user_id, state, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        &binding[..],
        user,
        state,
        expires,
    )
    .execute(db)
    .await?;
    Ok(id)
}

/// A ceremony taken to be finished.
pub struct Taken {
    pub user: Option<Uuid>,
    pub ceremony: Ceremony,
}

/// Takes ceremony `id` if it is bound to `binding` and not expired: once.
#[tracing::instrument(name = "db.passkeys.take", skip_all)]
pub async fn take(db: &PgPool, id: Uuid, binding: &[u8; 32]) -> sqlx::Result<Option<Taken>> {
    let row = sqlx::query!(
        r#"DELETE FROM passkey_ceremonies
           WHERE id = $1 AND binding = $2 AND expires_at > now()
           RETURNING user_id, state AS "state!: Json<Ceremony>""#,
        id,
        &binding[..],
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Taken {
        user: r.user_id,
        ceremony: r.state.0,
    }))
}

/// A stored passkey, as the account page lists it.
pub struct Listed {
    pub id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

#[tracing::instrument(name = "db.passkeys.list", skip_all)]
pub async fn list(db: &PgPool, user: Uuid) -> sqlx::Result<Vec<Listed>> {
    sqlx::query_as!(
        Listed,
        "SELECT id, name, created_at, last_used_at FROM passkeys
         WHERE user_id = $1 ORDER BY created_at",
        user,
    )
    .fetch_all(db)
    .await
}

/// A person's credential with its row id.
pub struct Stored {
    pub id: Uuid,
    pub passkey: Passkey,
}

/// Every passkey of `user` (to exclude at registration, or to allow as the
/// second factor).
#[tracing::instrument(name = "db.passkeys.of_user", skip_all)]
pub async fn of_user(db: &PgPool, user: Uuid) -> sqlx::Result<Vec<Stored>> {
    let rows = sqlx::query!(
        r#"SELECT id, credential AS "credential: Json<Passkey>" FROM passkeys WHERE user_id = $1"#,
        user,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Stored {
            id: r.id,
            passkey: r.credential.0,
        })
        .collect())
}

/// The passkey of `user` with credential id `credential_id`, if theirs.
#[tracing::instrument(name = "db.passkeys.find", skip_all)]
pub async fn find(db: &PgPool, user: Uuid, credential_id: &[u8]) -> sqlx::Result<Option<Stored>> {
    let row = sqlx::query!(
        r#"SELECT id, credential AS "credential: Json<Passkey>" FROM passkeys
           WHERE user_id = $1 AND credential_id = $2"#,
        user,
        credential_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Stored {
        id: r.id,
        passkey: r.credential.0,
    }))
}

/// What adding a passkey came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The credential is registered already (to this person or another).
    Duplicate,
    /// The person has [`MAX_PER_USER`] passkeys.
    Full,
}

/// Stores `passkey` for `user` under `name`, with the audit line `event`,
/// in one statement.
#[tracing::instrument(name = "db.passkeys.add", skip_all)]
pub async fn add(
    db: &PgPool,
    user: Uuid,
    name: &str,
    passkey: &Passkey,
    event: AuthEvent<'_>,
) -> sqlx::Result<Added> {
    let credential = serde_json::to_value(passkey).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let row = sqlx::query!(
        r#"WITH n AS (SELECT count(*) AS held FROM passkeys WHERE user_id = $2),
                k AS (INSERT INTO passkeys (id, user_id, credential_id, credential, name, sign_count)
                      SELECT $1, $2, $3, $4, $5, $6 FROM n WHERE n.held < $7
                      ON CONFLICT (credential_id) DO NOTHING RETURNING id),
                e AS (INSERT INTO auth_events (kind, username, client_id, addr)
                      SELECT $8, $9, $10, $11 FROM k)
           SELECT (SELECT count(*) FROM k) AS "added!", (SELECT held FROM n) AS "held!""#,
        Uuid::new_v4(),
        user,
        passkey.cred_id().as_slice(),
        credential,
        name,
        0_i64,
        MAX_PER_USER,
        event.kind,
        event.username,
        event.client_id,
        event.addr,
    )
    .fetch_one(db)
    .await?;
    Ok(if row.added == 1 {
        crate::throttle::log_event(&event);
        Added::Added
    } else if row.held >= MAX_PER_USER {
        Added::Full
    } else {
        Added::Duplicate
    })
}

/// Records a use of `stored` that `result` verified: its counter (which must
/// be newer than every one accepted before, unless the authenticator keeps
/// none) and the credential's new flags. `false`: the counter was seen
/// already (a cloned authenticator, or a race): refuse the sign-in.
#[tracing::instrument(name = "db.passkeys.used", skip_all)]
pub async fn used(
    db: &PgPool,
    mut stored: Stored,
    result: &AuthenticationResult,
) -> sqlx::Result<bool> {
    stored.passkey.update_credential(result);
    let credential =
        serde_json::to_value(&stored.passkey).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let counter = i64::from(result.counter());
    let updated = sqlx::query!(
        "UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = now()
         WHERE id = $1 AND ($3::bigint = 0 OR sign_count < $3)",
        stored.id,
        credential,
        counter,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Removes passkey `id` of `user`, with the audit line `event`; `false` when
/// it is not theirs (or gone already).
#[tracing::instrument(name = "db.passkeys.remove", skip_all)]
pub async fn remove(db: &PgPool, user: Uuid, id: Uuid, event: AuthEvent<'_>) -> sqlx::Result<bool> {
    let removed = sqlx::query_scalar!(
        r#"WITH k AS (DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING id),
                e AS (INSERT INTO auth_events (kind, username, client_id, addr)
                      SELECT $3, $4, $5, $6 FROM k)
           SELECT count(*) AS "removed!" FROM k"#,
        id,
        user,
        event.kind,
        event.username,
        event.client_id,
        event.addr,
    )
    .fetch_one(db)
    .await?;
    if removed == 1 {
        crate::throttle::log_event(&event);
    }
    Ok(removed == 1)
}

/// Removes every passkey of `user` (an administrator's reset); how many went.
pub async fn remove_all(db: &PgPool, user: Uuid) -> sqlx::Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM passkeys WHERE user_id = $1", user)
            .execute(db)
            .await?
            .rows_affected(),
    )
}
