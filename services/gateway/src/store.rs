//! Every SQL statement of the gateway, compile-checked: the `sessions` table
//! (rows keyed by the SHA-256 of the session id, holding the sealed session
//! and its refresh lease) and the `jti`s of logout tokens already used.
//! Sealing, the lease protocol and what the rows mean are [`crate::session`]'s.

use sqlx::PgPool;

/// What a new session row records.
pub struct NewSession<'a> {
    pub hash: &'a [u8],
    pub sealed: &'a [u8],
    pub idle_secs: f64,
    pub max_secs: f64,
    pub idp_sid: Option<&'a str>,
    pub idp_sub: &'a str,
}

pub async fn insert_session(pool: &PgPool, new: NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO sessions (id_hash, sealed, idle_until, expires_at, idp_sid, idp_sub)
         VALUES ($1, $2, now() + make_interval(secs => $3), now() + make_interval(secs => $4), $5, $6)",
        new.hash,
        new.sealed,
        new.idle_secs,
        new.max_secs,
        new.idp_sid,
        new.idp_sub,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A live session's sealed bytes, and whether its idle deadline is more than
/// a minute older than a fresh one of `idle_secs` (time to push it back).
pub async fn live_session(
    pool: &PgPool,
    hash: &[u8],
    idle_secs: f64,
) -> Result<Option<(Vec<u8>, bool)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT sealed, idle_until < now() + make_interval(secs => $2) - interval '60 seconds' AS "stale!"
           FROM sessions WHERE id_hash = $1 AND idle_until > now() AND expires_at > now()"#,
        hash,
        idle_secs,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| (row.sealed, row.stale)))
}

/// Pushes the session's idle deadline to `idle_secs` from now (never past its end).
pub async fn touch_session(pool: &PgPool, hash: &[u8], idle_secs: f64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET idle_until = LEAST(now() + make_interval(secs => $2), expires_at)
         WHERE id_hash = $1",
        hash,
        idle_secs,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the session; `true` when it existed.
pub async fn delete_session(pool: &PgPool, hash: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("DELETE FROM sessions WHERE id_hash = $1", hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the sessions of the IdP session `sid` and/or user `sub` (a `None`
/// matches any); returns how many.
pub async fn delete_idp_sessions(
    pool: &PgPool,
    sid: Option<&str>,
    sub: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE ($1::text IS NULL OR idp_sid = $1)
         AND ($2::text IS NULL OR idp_sub = $2)",
        sid,
        sub,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Records `jti` until `exp` (Unix time); `false` when it was there already.
pub async fn insert_logout_jti(pool: &PgPool, jti: &str, exp: f64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO logout_token_jtis (jti, expires_at) VALUES ($1, to_timestamp($2))
         ON CONFLICT (jti) DO NOTHING",
        jti,
        exp,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes expired sessions (returns how many) and logout `jti`s a day past
/// their expiry (far beyond any clock skew the token check allows).
pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query!("DELETE FROM sessions WHERE idle_until <= now() OR expires_at <= now()")
            .execute(pool)
            .await?;
    sqlx::query!("DELETE FROM logout_token_jtis WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// A live session's sealed bytes and whether a refresh lease on it is held.
pub async fn leased_session(
    pool: &PgPool,
    hash: &[u8],
) -> Result<Option<(Vec<u8>, bool)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT sealed, refresh_owner IS NOT NULL AND refresh_until > now() AS "leased!" FROM sessions
           WHERE id_hash = $1 AND idle_until > now() AND expires_at > now()"#,
        hash,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| (row.sealed, row.leased)))
}

/// Takes the refresh lease for `owner` for `secs`, only while it is free (or
/// ran out) and the live row still holds `sealed`; `true` when taken.
pub async fn claim_lease(
    pool: &PgPool,
    hash: &[u8],
    owner: &str,
    secs: f64,
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query!(
        "UPDATE sessions SET refresh_owner = $2, refresh_until = now() + make_interval(secs => $3)
         WHERE id_hash = $1 AND sealed = $4 AND idle_until > now() AND expires_at > now()
           AND (refresh_owner IS NULL OR refresh_until <= now())",
        hash,
        owner,
        secs,
        sealed,
    )
    .execute(pool)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Stores `sealed` and frees the lease, only while `owner` holds it; `true`
/// when stored.
pub async fn store_under_lease(
    pool: &PgPool,
    hash: &[u8],
    owner: &str,
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET sealed = $3, refresh_owner = NULL, refresh_until = NULL
         WHERE id_hash = $1 AND refresh_owner = $2",
        hash,
        owner,
        sealed,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the session is live.
pub async fn session_is_live(pool: &PgPool, hash: &[u8]) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sessions
           WHERE id_hash = $1 AND idle_until > now() AND expires_at > now()) AS "live!""#,
        hash,
    )
    .fetch_one(pool)
    .await
}

/// Frees the lease, only while `owner` holds it.
pub async fn release_lease(pool: &PgPool, hash: &[u8], owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET refresh_owner = NULL, refresh_until = NULL
         WHERE id_hash = $1 AND refresh_owner = $2",
        hash,
        owner,
    )
    .execute(pool)
    .await?;
    Ok(())
}
