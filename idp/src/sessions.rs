//! SSO sessions: the browser holds a random cookie value, the database its
//! SHA-256. Ending a session revokes its refresh tokens, records a `sid`
//! revocation for the access tokens already out there, and queues a logout
//! token for each client of the session ([`crate::backchannel`]).

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::flow::AuthRequest;
use crate::grants::RefreshTokens;
use crate::throttle::AuthEvent;
use platform::crypto::{random_token, sha256};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub auth_time: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// How the latest sign-in was made (RFC 8176), e.g. `["pwd"]`.
    pub amr: Vec<String>,
}

/// The live session behind a cookie value, if any (not ended, not expired, user enabled).
#[tracing::instrument(name = "db.sessions.find", skip_all)]
pub async fn find(db: &PgPool, cookie: &str) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT s.id, s.user_id, s.auth_time, s.expires_at, s.amr FROM sso_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now() AND NOT u.disabled",
        &sha256(cookie.as_bytes())[..],
    )
    .fetch_optional(db)
    .await
}

/// When the session `id` expires, if it is live (neither ended nor expired).
#[tracing::instrument(name = "db.sessions.live_until", skip_all)]
pub async fn live_until(
    db: impl sqlx::PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "SELECT expires_at FROM sso_sessions WHERE id = $1 AND ended_at IS NULL AND expires_at > now()",
        id,
    )
    .fetch_optional(db)
    .await
}

/// A session to start: whose, signed in now by which methods (RFC 8176),
/// for how long.
pub struct NewSession<'a> {
    pub user: Uuid,
    pub amr: &'a [&'a str],
    pub ttl: Duration,
}

/// A sign-in without a live session, in one statement (one round trip, one
/// commit, where it took three): clears the failure counters `cleared` (the
/// account's, and its second factor's) and records the audit line `event` (as
/// [`throttle::succeeded`](crate::throttle::succeeded)), starts a session for
/// `new`, and stores the authorization code of `request` for it (as
/// [`grants::create_code`](crate::grants::create_code)). Answers the
/// session, its cookie value and the code.
#[tracing::instrument(name = "db.sessions.sign_in", skip_all)]
pub async fn sign_in(
    db: &PgPool,
    new: NewSession<'_>,
    request: &AuthRequest,
    code_ttl: Duration,
    cleared: &[&str],
    event: AuthEvent<'_>,
) -> sqlx::Result<(Session, String, String)> {
    let (token, code) = (random_token(32), random_token(32));
    let cleared: Vec<String> = cleared.iter().map(|k| (*k).to_owned()).collect();
    let amr: Vec<String> = new.amr.iter().map(|m| (*m).to_owned()).collect();
    let session = sqlx::query_as!(
        Session,
        r#"WITH cleared AS (DELETE FROM auth_throttle WHERE key = ANY($1)),
         audit AS (INSERT INTO auth_events (kind, username, client_id, addr) VALUES ($2, $3, $4, $5)),
         s AS (INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, expires_at, amr)
               VALUES ($6, $7, $8, now(), now() + make_interval(secs => $9), $17)
               RETURNING id, user_id, auth_time, expires_at, amr),
         c AS (INSERT INTO authorization_codes
                   (code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, expires_at, amr)
               SELECT $10, $11, s.user_id, s.id, $12, $13, $14, $15, s.auth_time, now() + make_interval(secs => $16), s.amr
               FROM s)
         SELECT id AS "id!", user_id AS "user_id!", auth_time AS "auth_time!", expires_at AS "expires_at!", amr AS "amr!" FROM s"#,
        &cleared,
        event.kind,
        event.username,
        event.client_id,
        event.addr,
        Uuid::new_v4(),
        &sha256(token.as_bytes())[..],
        new.user,
        new.ttl.as_secs_f64(),
        &sha256(code.as_bytes())[..],
        &request.client_id,
        &request.redirect_uri,
        &request.scope,
        request.nonce.as_deref(),
        request.code_challenge.as_deref(),
        code_ttl.as_secs_f64(),
        &amr,
    )
    .fetch_one(db)
    .await?;
    crate::throttle::log_event(&event);
    Ok((session, token, code))
}

/// The same person signed in again (prompt=login, max_age, a second factor
/// asked for): a fresh `auth_time` and methods `amr`, and a new cookie value
/// (no fixation), same `sid`.
#[tracing::instrument(name = "db.sessions.reauthenticate", skip_all)]
pub async fn reauthenticate(
    db: &PgPool,
    id: Uuid,
    amr: &[&str],
) -> sqlx::Result<(Session, String)> {
    let token = random_token(32);
    let amr: Vec<String> = amr.iter().map(|m| (*m).to_owned()).collect();
    let session = sqlx::query_as!(
        Session,
        "UPDATE sso_sessions SET token_hash = $2, auth_time = now(), amr = $3 WHERE id = $1
         RETURNING id, user_id, auth_time, expires_at, amr",
        id,
        &sha256(token.as_bytes())[..],
        &amr,
    )
    .fetch_one(db)
    .await?;
    Ok((session, token))
}

/// Ends a session: marks it ended, revokes its refresh tokens and the access
/// tokens they were issued with, records a `sid` revocation that outlives
/// every access token of the session, and (when it was live) queues its
/// back-channel logout tokens, all in one transaction. Answers whether it was live.
#[tracing::instrument(name = "db.sessions.end", skip_all)]
pub async fn end(db: &PgPool, id: Uuid, reason: &str, access_ttl: Duration) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let ended = sqlx::query!(
        "UPDATE sso_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL",
        id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if ended {
        crate::backchannel::enqueue(&mut tx, id).await?;
    }
    crate::grants::revoke_refresh(&mut tx, RefreshTokens::OfSession(id), reason).await?;
    crate::revocations::record(
        &mut tx,
        "sid",
        &id.to_string(),
        reason,
        OffsetDateTime::now_utc() + access_ttl + Duration::from_secs(60),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Ends every live session of a user and revokes every token issued to them
/// so far (password change, admin action). Answers how many sessions ended.
#[tracing::instrument(name = "db.sessions.end_all_for_user", skip_all)]
pub async fn end_all_for_user(
    db: &PgPool,
    user: Uuid,
    reason: &str,
    access_ttl: Duration,
) -> sqlx::Result<usize> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM sso_sessions WHERE user_id = $1 AND ended_at IS NULL",
        user,
    )
    .fetch_all(db)
    .await?;
    for id in &ids {
        end(db, *id, reason, access_ttl).await?;
    }
    let mut conn = db.acquire().await?;
    crate::revocations::record_subject(
        &mut conn,
        &user.to_string(),
        reason,
        access_ttl + Duration::from_secs(60),
    )
    .await?;
    Ok(ids.len())
}
