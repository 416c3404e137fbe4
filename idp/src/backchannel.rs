//! OpenID Connect Back-Channel Logout 1.0, the provider's side: when an SSO
//! session ends (sign-out through any client, another user signing in on the
//! browser, an administrator, a password change — every path goes through
//! [`crate::sessions::end`]), each client that redeemed a code in that session
//! and registered a `backchannel_logout_uri` is sent a logout token (§2.4),
//! form-encoded as `logout_token` (§2.5).
//!
//! Delivery never holds up the sign-out and survives failures: the session's
//! end writes one outbox row per client in its own transaction ([`enqueue`]);
//! a background task on every replica ([`run`]) claims due rows (`FOR UPDATE
//! SKIP LOCKED`, then pushes `next_attempt_at` past the attempt — a lease, so
//! no HTTP call happens inside a transaction and a replica that dies
//! mid-attempt leaves the row for another), posts, and deletes the row on a
//! 2xx. A failure that may pass (network, timeout, 408, 429, 5xx) is retried
//! after `IDP_BACKCHANNEL_LOGOUT_RETRY_MS`, doubling each time (at most five
//! minutes), up to `IDP_BACKCHANNEL_LOGOUT_ATTEMPTS` attempts; any other
//! answer (the client refused the token, §2.8) and the last failure are logged
//! and the row dropped. Each attempt signs a fresh token (new `jti`, `iat`,
//! `exp`), so a retry is never a replay in the receiver's eyes.
//!
//! Hand-written rather than a job-queue crate: it is one table and two
//! statements, and a queue crate would bring its own schema and worker model
//! for a single kind of job.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;

/// `typ` of a logout token (§2.4: explicit typing, RFC 8725 §3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// The member of `events` that makes a JWT a logout token (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Life of a logout token: §2.4 recommends at most two minutes.
const LOGOUT_TOKEN_TTL: Duration = Duration::from_secs(120);
/// Rows delivered at once by one replica.
const BATCH: i64 = 32;
/// Longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Queues a logout token for every client that took part in `session` (it
/// redeemed a code there) and registered a back-channel logout URI. Called in
/// the transaction that ends the session; answers how many were queued.
pub async fn enqueue(conn: &mut PgConnection, session: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "INSERT INTO backchannel_logout_outbox (session_id, user_id, client_id)
         SELECT DISTINCT s.id, s.user_id, c.id
         FROM sso_sessions s
         JOIN authorization_codes a ON a.session_id = s.id AND a.consumed_at IS NOT NULL
         JOIN clients c ON c.id = a.client_id AND c.backchannel_logout_uri IS NOT NULL
         WHERE s.id = $1
         ON CONFLICT (session_id, client_id) DO NOTHING",
        session,
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// The claims of a logout token (§2.4): never a `nonce`.
#[derive(Debug, Serialize)]
pub struct LogoutClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: String,
    pub events: serde_json::Value,
}

impl LogoutClaims {
    /// A logout token for `client` about `user`'s session `sid`, issued now.
    pub fn new(issuer: &str, client: &str, user: Uuid, sid: Uuid) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            iss: issuer.to_owned(),
            sub: user.to_string(),
            aud: client.to_owned(),
            iat: now.unix_timestamp(),
            exp: (now + LOGOUT_TOKEN_TTL).unix_timestamp(),
            jti: Uuid::now_v7().to_string(),
            sid: sid.to_string(),
            events: json!({ EVENT: {} }),
        }
    }
}

/// A claimed outbox row.
struct Due {
    id: i64,
    session_id: Uuid,
    user_id: Uuid,
    client_id: String,
    attempts: i32,
    uri: Option<String>,
}

/// What came of one attempt.
enum Outcome {
    Delivered,
    /// May pass: retry while attempts are left.
    Transient(String),
    /// Will not pass by retrying.
    Refused(String),
}

/// Delivers due logout tokens until the server stops: right away when some
/// were due, else after `IDP_BACKCHANNEL_LOGOUT_RETRY_MS`.
pub async fn run(state: AppState) {
    let mut stopping = state.stopping();
    let poll = state.config.backchannel_logout_retry;
    loop {
        let more = match deliver_due(&state).await {
            Ok(claimed) => claimed as i64 == BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the back-channel logout outbox");
                false
            }
        };
        if *stopping.borrow() {
            return;
        }
        if !more {
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                _ = stopping.changed() => return,
            }
        }
    }
}

/// Claims the rows due now (at most a batch) and delivers them concurrently;
/// answers how many were claimed.
pub async fn deliver_due(state: &AppState) -> sqlx::Result<usize> {
    // The lease: longer than an attempt can take, so the row stays ours.
    let lease = state.config.backchannel_logout_timeout * 2 + Duration::from_secs(5);
    let due = sqlx::query_as!(
        Due,
        "UPDATE backchannel_logout_outbox o
         SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM clients c
         WHERE o.id IN (SELECT id FROM backchannel_logout_outbox WHERE next_attempt_at <= now()
                        ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           AND c.id = o.client_id
         RETURNING o.id, o.session_id, o.user_id, o.client_id, o.attempts,
                   c.backchannel_logout_uri AS uri",
        BATCH,
        lease.as_secs_f64(),
    )
    .fetch_all(&state.db)
    .await?;
    let claimed = due.len();
    let results = futures::future::join_all(due.into_iter().map(|row| async move {
        let outcome = attempt(state, &row).await;
        settle(state, row, outcome).await
    }))
    .await;
    results.into_iter().collect::<sqlx::Result<Vec<()>>>()?;
    Ok(claimed)
}

async fn attempt(state: &AppState, row: &Due) -> Outcome {
    let Some(uri) = &row.uri else {
        return Outcome::Refused("the client no longer has a back-channel logout URI".into());
    };
    let claims = LogoutClaims::new(
        &state.config.issuer,
        &row.client_id,
        row.user_id,
        row.session_id,
    );
    let token = match state.keys.sign_jwt(LOGOUT_TOKEN_TYP, &claims).await {
        Ok((token, _)) => token,
        Err(e) => return Outcome::Transient(format!("cannot sign: {e}")),
    };
    let sent = state
        .logout_http
        .post(uri)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) => {
            let status = r.status();
            let text = format!("answered {status}");
            if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Outcome::Transient(text)
            } else {
                Outcome::Refused(text)
            }
        }
        // The URL and the error kind, never the token.
        Err(e) => Outcome::Transient(e.without_url().to_string()),
    }
}

/// Records what came of an attempt.
async fn settle(state: &AppState, row: Due, outcome: Outcome) -> sqlx::Result<()> {
    let attempts = row.attempts.max(1) as u32;
    let (sid, client) = (row.session_id, row.client_id.as_str());
    let reason = match outcome {
        Outcome::Delivered => {
            tracing::info!(%sid, client, attempts, "logout token delivered");
            return delete(state, row.id).await;
        }
        Outcome::Transient(reason) if attempts < state.config.backchannel_logout_attempts => {
            let delay = backoff(state.config.backchannel_logout_retry, attempts);
            tracing::info!(%sid, client, attempts, %reason, retry_in = ?delay, "logout token not delivered yet");
            sqlx::query!(
                "UPDATE backchannel_logout_outbox
                 SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                 WHERE id = $1",
                row.id,
                delay.as_secs_f64(),
                reason,
            )
            .execute(&state.db)
            .await?;
            return Ok(());
        }
        Outcome::Transient(reason) | Outcome::Refused(reason) => reason,
    };
    tracing::warn!(%sid, client, attempts, %reason, "logout token given up");
    delete(state, row.id).await
}

async fn delete(state: &AppState, id: i64) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM backchannel_logout_outbox WHERE id = $1", id)
        .execute(&state.db)
        .await?;
    Ok(())
}

/// The delay after attempt number `attempts` (1-based): `first`, doubling, capped.
fn backoff(first: Duration, attempts: u32) -> Duration {
    first
        .saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let first = Duration::from_millis(500);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 2), Duration::from_secs(1));
        assert_eq!(backoff(first, 4), Duration::from_secs(4));
        assert_eq!(backoff(first, 30), MAX_BACKOFF);
    }

    #[test]
    fn logout_tokens_carry_the_event_and_no_nonce() {
        let (user, sid) = (Uuid::now_v7(), Uuid::now_v7());
        let claims = LogoutClaims::new("https://id.example", "rp", user, sid);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["events"], json!({ EVENT: {} }));
        assert!(json.get("nonce").is_none());
        assert_eq!(json["sid"], sid.to_string());
        assert_eq!(json["sub"], user.to_string());
        assert_eq!(json["aud"], "rp");
        assert_eq!(claims.exp - claims.iat, 120);
    }
}
