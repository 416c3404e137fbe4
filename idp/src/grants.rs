//! Authorization codes and refresh tokens, stored as SHA-256 hashes only.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::realm::User;
use platform::crypto::{random_token, sha256};

/// What a code stands for, as stored at `/authorize`.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// How the user signed in (RFC 8176), from the session.
    pub amr: Vec<String>,
}

/// Stores a new code; answers the code itself (returned to the client once).
#[tracing::instrument(name = "db.grants.create_code", skip_all)]
pub async fn create_code(db: &PgPool, code: &Code) -> sqlx::Result<String> {
    let secret = random_token(32);
    sqlx::query!(
        "INSERT INTO authorization_codes
            (code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, expires_at, amr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &sha256(secret.as_bytes())[..],
        &code.client_id,
        code.user_id,
        code.session_id,
        &code.redirect_uri,
        &code.scope,
        code.nonce.as_deref(),
        code.code_challenge.as_deref(),
        code.auth_time,
        code.expires_at,
        &code.amr,
    )
    .execute(db)
    .await?;
    Ok(secret)
}

pub enum Redeem {
    /// First use: the code is now consumed.
    Fresh(Box<Code>),
    /// The code was redeemed before by this client: a replay.
    Replayed,
    /// The code exists but was issued to another client: left untouched, so
    /// a client holding a leaked code can neither burn it nor, by replaying
    /// it, revoke what it issued.
    OtherClient,
    Unknown,
}

/// Consumes a code issued to `client_id`, atomically (two concurrent
/// redemptions: exactly one wins). A code of another client is not touched.
#[tracing::instrument(name = "db.grants.consume_code", skip_all)]
pub async fn consume_code(
    db: &mut PgConnection,
    code: &str,
    client_id: &str,
) -> sqlx::Result<Redeem> {
    let hash = sha256(code.as_bytes());
    let fresh = sqlx::query_as!(
        Code,
        "UPDATE authorization_codes SET consumed_at = now()
         WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NULL
         RETURNING client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, expires_at, amr",
        &hash[..],
        client_id,
    )
    .fetch_optional(&mut *db)
    .await?;
    if let Some(code) = fresh {
        return Ok(Redeem::Fresh(Box::new(code)));
    }
    let owner = sqlx::query_scalar!(
        "SELECT client_id FROM authorization_codes WHERE code_hash = $1",
        &hash[..],
    )
    .fetch_optional(&mut *db)
    .await?;
    Ok(match owner {
        Some(owner) if owner == client_id => Redeem::Replayed,
        Some(_) => Redeem::OtherClient,
        None => Redeem::Unknown,
    })
}

/// Remembers what redeeming a code issued, for a replay to revoke. Answers
/// `false` when a replay of the code arrived meanwhile: then nothing must be
/// handed out (the caller rolls back and revokes the access token).
#[tracing::instrument(name = "db.grants.record_code_issue", skip_all)]
pub async fn record_code_issue(
    db: &mut PgConnection,
    code: &str,
    jti: &str,
    access_expires_at: OffsetDateTime,
    family: Option<Uuid>,
) -> sqlx::Result<bool> {
    let replayed = sqlx::query_scalar!(
        r#"UPDATE authorization_codes SET issued_jti = $2, issued_access_expires_at = $3, issued_family = $4
         WHERE code_hash = $1 RETURNING replayed_at IS NOT NULL AS "replayed!""#,
        &sha256(code.as_bytes())[..],
        jti,
        access_expires_at,
        family,
    )
    .fetch_optional(db)
    .await?;
    Ok(replayed == Some(false))
}

/// A replayed code: marks it and revokes the access token and refresh-token
/// family its first redemption issued (RFC 6749 §4.1.2, RFC 9700 §4.5).
#[tracing::instrument(name = "db.grants.revoke_code_issue", skip_all)]
pub async fn revoke_code_issue(db: &PgPool, code: &str) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    let issued = sqlx::query!(
        "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, now()) WHERE code_hash = $1
         RETURNING issued_jti, issued_access_expires_at, issued_family",
        &sha256(code.as_bytes())[..],
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(issued) = issued {
        if let (Some(jti), Some(exp)) = (issued.issued_jti, issued.issued_access_expires_at) {
            crate::revocations::record(&mut tx, "jti", &jti, "code replay", exp).await?;
        }
        if let Some(family) = issued.issued_family {
            revoke_refresh(&mut tx, RefreshTokens::OfFamily(family), "code replay").await?;
        }
    }
    tx.commit().await
}

#[derive(Debug, Clone)]
pub struct Refresh {
    pub id: Uuid,
    pub family_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub scope: String,
    pub auth_time: OffsetDateTime,
    pub amr: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// The DPoP key (RFC 7638 thumbprint) a public client's family is bound to.
    pub dpop_jkt: Option<String>,
}

/// What a new refresh token records.
pub struct NewRefresh<'a> {
    pub family_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub client_id: &'a str,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub scope: &'a str,
    pub auth_time: OffsetDateTime,
    pub amr: &'a [String],
    pub access_jti: &'a str,
    pub access_expires_at: OffsetDateTime,
    /// Idle lifetime; capped by the session's end.
    pub ttl: Duration,
    pub session_expires_at: OffsetDateTime,
    /// The DPoP key the token is bound to (public clients).
    pub dpop_jkt: Option<&'a str>,
}

/// Stores the first refresh token of a new family (a code redeemed); answers
/// the token itself (returned to the client once).
#[tracing::instrument(name = "db.grants.create_refresh", skip_all)]
pub async fn create_refresh(db: &mut PgConnection, r: &NewRefresh<'_>) -> sqlx::Result<String> {
    store_refresh(db, r, None)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Rotates refresh token `old` into `next` in one statement (one commit):
/// marks `old` used and stores `next`, only if `old` was still unused and
/// unrevoked. `None` when another request used or revoked it first.
#[tracing::instrument(name = "db.grants.rotate_refresh", skip_all)]
pub async fn rotate_refresh(
    db: &PgPool,
    old: Uuid,
    next: &NewRefresh<'_>,
) -> sqlx::Result<Option<String>> {
    store_refresh(db, next, Some(old)).await
}

/// Stores `r`, in place of `rotating` when given (only if that one was still
/// unused and unrevoked); answers the new token, or `None` when the rotation
/// lost the race.
async fn store_refresh(
    db: impl sqlx::PgExecutor<'_>,
    r: &NewRefresh<'_>,
    rotating: Option<Uuid>,
) -> sqlx::Result<Option<String>> {
    let secret = random_token(32);
    let stored = sqlx::query!(
        "WITH old AS (
             UPDATE refresh_tokens SET rotated_at = now()
             WHERE id = $15 AND rotated_at IS NULL AND revoked_at IS NULL
             RETURNING id)
         INSERT INTO refresh_tokens
             (id, token_hash, family_id, parent_id, client_id, user_id, session_id, scope,
              auth_time, access_jti, access_expires_at, expires_at, dpop_jkt, amr)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
         WHERE $15::uuid IS NULL OR EXISTS (SELECT 1 FROM old)",
        Uuid::new_v4(),
        &sha256(secret.as_bytes())[..],
        r.family_id,
        r.parent_id,
        r.client_id,
        r.user_id,
        r.session_id,
        r.scope,
        r.auth_time,
        r.access_jti,
        r.access_expires_at,
        (OffsetDateTime::now_utc() + r.ttl).min(r.session_expires_at),
        r.dpop_jkt,
        r.amr,
        rotating,
    )
    .execute(db)
    .await?;
    Ok((stored.rows_affected() == 1).then_some(secret))
}

#[tracing::instrument(name = "db.grants.find_refresh", skip_all)]
pub async fn find_refresh(
    db: impl sqlx::PgExecutor<'_>,
    token: &str,
) -> sqlx::Result<Option<Refresh>> {
    sqlx::query_as!(
        Refresh,
        "SELECT id, family_id, client_id, user_id, session_id, scope, auth_time, amr, expires_at,
                rotated_at, revoked_at, dpop_jkt
         FROM refresh_tokens WHERE token_hash = $1",
        &sha256(token.as_bytes())[..],
    )
    .fetch_optional(db)
    .await
}

/// A refresh token that `client` may redeem now, with what the grant needs.
pub struct Redeemable {
    pub token: Refresh,
    pub session_expires_at: OffsetDateTime,
    pub user: User,
    pub roles: Vec<String>,
}

/// The refresh token `token` if `client_id` can redeem it now, in one read
/// that takes no lock: issued to that client, neither rotated, revoked nor
/// expired, its session live and its user active. `None` otherwise (the
/// caller tells which rule failed with [`find_refresh`]: errors are rare and
/// may cost more reads).
#[tracing::instrument(name = "db.grants.find_redeemable", skip_all)]
pub async fn find_redeemable(
    db: &PgPool,
    token: &str,
    client_id: &str,
) -> sqlx::Result<Option<Redeemable>> {
    let row = sqlx::query!(
        r#"SELECT r.id, r.family_id, r.client_id, r.user_id, r.session_id, r.scope, r.auth_time, r.amr,
                  r.expires_at, r.rotated_at, r.revoked_at, r.dpop_jkt, s.expires_at AS session_expires_at,
                  u.username, u.password_hash, u.name, u.email, u.email_verified,
                  ARRAY(SELECT role FROM user_roles WHERE user_id = u.id ORDER BY role) AS "roles!"
           FROM refresh_tokens r
           JOIN sso_sessions s ON s.id = r.session_id AND s.ended_at IS NULL AND s.expires_at > now()
           JOIN users u ON u.id = r.user_id AND NOT u.disabled
           WHERE r.token_hash = $1 AND r.client_id = $2
             AND r.rotated_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > now()"#,
        &sha256(token.as_bytes())[..],
        client_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Redeemable {
        user: User {
            id: r.user_id,
            username: r.username,
            password_hash: r.password_hash,
            name: r.name,
            email: r.email,
            email_verified: r.email_verified,
            disabled: false,
        },
        token: Refresh {
            id: r.id,
            family_id: r.family_id,
            client_id: r.client_id,
            user_id: r.user_id,
            session_id: r.session_id,
            scope: r.scope,
            auth_time: r.auth_time,
            amr: r.amr,
            expires_at: r.expires_at,
            rotated_at: r.rotated_at,
            revoked_at: r.revoked_at,
            dpop_jkt: r.dpop_jkt,
        },
        session_expires_at: r.session_expires_at,
        roles: r.roles,
    }))
}

/// Which refresh tokens [`revoke_refresh`] revokes.
#[derive(Debug, Clone, Copy)]
pub enum RefreshTokens<'a> {
    /// One family (reuse detected, a code replayed, RFC 7009 revocation).
    OfFamily(Uuid),
    /// Every one of an SSO session (it ended).
    OfSession(Uuid),
    /// Every live one of a client (disabled or deleted).
    OfClient(&'a str),
}

/// Revokes the refresh tokens `which` names and records a `jti` revocation
/// for each access token issued with them that may still be valid; answers
/// how many refresh tokens it touched.
#[tracing::instrument(name = "db.grants.revoke_refresh", skip_all)]
pub async fn revoke_refresh(
    db: &mut PgConnection,
    which: RefreshTokens<'_>,
    reason: &str,
) -> sqlx::Result<u64> {
    struct Issued {
        access_jti: String,
        access_expires_at: OffsetDateTime,
    }
    let revoked = match which {
        RefreshTokens::OfFamily(family) => {
            sqlx::query_as!(
                Issued,
                "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now())
                 WHERE family_id = $1 RETURNING access_jti, access_expires_at",
                family,
            )
            .fetch_all(&mut *db)
            .await?
        }
        RefreshTokens::OfSession(session) => {
            sqlx::query_as!(
                Issued,
                "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now())
                 WHERE session_id = $1 RETURNING access_jti, access_expires_at",
                session,
            )
            .fetch_all(&mut *db)
            .await?
        }
        RefreshTokens::OfClient(client) => {
            sqlx::query_as!(
                Issued,
                "UPDATE refresh_tokens SET revoked_at = now()
                 WHERE client_id = $1 AND revoked_at IS NULL RETURNING access_jti, access_expires_at",
                client,
            )
            .fetch_all(&mut *db)
            .await?
        }
    };
    let now = OffsetDateTime::now_utc();
    for issued in &revoked {
        if issued.access_expires_at > now {
            let (jti, exp) = (&issued.access_jti, issued.access_expires_at);
            crate::revocations::record(db, "jti", jti, reason, exp).await?;
        }
    }
    Ok(revoked.len() as u64)
}

/// Revokes a whole refresh-token family (reuse detected, or RFC 7009 revocation).
#[tracing::instrument(name = "db.grants.revoke_family", skip_all)]
pub async fn revoke_family(db: &PgPool, family: Uuid, reason: &str) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    revoke_refresh(&mut tx, RefreshTokens::OfFamily(family), reason).await?;
    tx.commit().await
}
