//! Server-side browser sessions in PostgreSQL; their refresh, once at a time,
//! is in [`refresh`].
//!
//! The browser holds only a random 256-bit id in an `HttpOnly` cookie. The
//! table stores the id's SHA-256 and the session sealed with AES-256-GCM
//! (`GATEWAY_SESSION_KEY`), bound to that hash. A session row is created only
//! at sign-in, with a new id, so an id can never be fixed before sign-in
//! (the id is "rotated at login" by construction). Each row also names, in the
//! clear, the IdP session (`sid`) and user (`sub`) it belongs to, so that a
//! back-channel logout ([`crate::http::backchannel`]) can end it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::oidc::TokenSet;
use crate::store::{self, NewSession};
use platform::crypto::{SealKey, random_token, sha256};

pub mod refresh;

/// What a signed-in session knows. Sealed at rest.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub user: User,
    pub tokens: TokenSet,
    /// Synchronizer token the page sends in `X-CSRF-Token` on state-changing calls.
    pub csrf_token: String,
}

/// The signed-in person, as shown on the page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub scope: String,
    /// The IdP session (`sid`), for logout.
    pub sid: Option<String>,
}

/// The session id, as in the cookie. Never logged; [`SessionId::fingerprint`] is.
pub struct SessionId(String);

impl SessionId {
    pub fn from_cookie(value: &str) -> Option<Self> {
        // 32 random bytes, base64url: 43 characters. Anything else is not ours.
        (value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }

    /// A short log-safe name for this session.
    pub fn fingerprint(&self) -> String {
        platform::crypto::sha256_b64url(self.0.as_bytes())[..10].to_owned()
    }
}

/// Sessions in PostgreSQL.
#[derive(Clone)]
pub struct SessionStore {
    pool: PgPool,
    key: SealKey,
    idle: Duration,
    max: Duration,
    /// The longest a refresh waits for the IdP (see [`refresh`]).
    idp_bound: Duration,
    refresh_locks: moka::sync::Cache<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
}

impl SessionStore {
    /// Sessions in `pool`, sealed with `key`, ending after `idle` without use
    /// or `max` after sign-in. `idp_timeout` bounds each call to the IdP
    /// (`GATEWAY_IDP_TIMEOUT_MS`); a refresh makes at most two (discovery, token).
    pub fn new(
        pool: PgPool,
        key: SealKey,
        idle: Duration,
        max: Duration,
        idp_timeout: Duration,
    ) -> Self {
        Self {
            pool,
            key,
            idle,
            max,
            idp_bound: idp_timeout * 2,
            refresh_locks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn seal(&self, hash: &[u8; 32], data: &SessionData) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(data).unwrap_or_default();
        self.key.seal(&json, hash)
    }

    fn open(&self, hash: &[u8; 32], sealed: &[u8]) -> Option<SessionData> {
        let json = self.key.open(sealed, hash)?;
        serde_json::from_slice(&json).ok()
    }

    /// Stores a new session under a fresh id.
    #[tracing::instrument(name = "db.session.create", skip_all)]
    pub async fn create(&self, data: &SessionData) -> Result<SessionId, sqlx::Error> {
        let id = SessionId(random_token(32));
        let hash = id.hash();
        let new = NewSession {
            hash: &hash,
            sealed: &self.seal(&hash, data),
            idle_secs: self.idle.min(self.max).as_secs_f64(),
            max_secs: self.max.as_secs_f64(),
            idp_sid: data.user.sid.as_deref(),
            idp_sub: &data.user.sub,
        };
        store::insert_session(&self.pool, new).await?;
        Ok(id)
    }

    /// The live session for `id`, sliding its idle expiry (at most once a minute).
    /// A row that no longer opens (key changed, tampered) counts as absent.
    #[tracing::instrument(name = "db.session.load", skip_all)]
    pub async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, sqlx::Error> {
        let hash = id.hash();
        let idle_secs = self.idle.as_secs_f64();
        let Some((sealed, stale)) = store::live_session(&self.pool, &hash, idle_secs).await? else {
            return Ok(None);
        };
        if stale {
            store::touch_session(&self.pool, &hash, idle_secs).await?;
        }
        Ok(self.open(&hash, &sealed))
    }

    /// Ends the session; `true` when it existed.
    #[tracing::instrument(name = "db.session.delete", skip_all)]
    pub async fn delete(&self, id: &SessionId) -> Result<bool, sqlx::Error> {
        store::delete_session(&self.pool, &id.hash()).await
    }

    /// Ends every session of the IdP session `sid` (of user `sub`, when both
    /// are given), or every session of `sub` when only it is given
    /// (Back-Channel Logout §2.7); returns how many.
    pub async fn end_for_idp(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<u64, sqlx::Error> {
        if sid.is_none() && sub.is_none() {
            return Ok(0);
        }
        store::delete_idp_sessions(&self.pool, sid, sub).await
    }

    /// Records the `jti` of a logout token valid until `exp` (Unix time);
    /// `false` when it was recorded before (a replay).
    pub async fn first_use_of_logout_token(
        &self,
        jti: &str,
        exp: i64,
    ) -> Result<bool, sqlx::Error> {
        store::insert_logout_jti(&self.pool, jti, exp as f64).await
    }

    /// Removes expired sessions (and the `jti`s of expired logout tokens);
    /// returns how many sessions.
    #[tracing::instrument(name = "db.session.purge_expired", skip_all)]
    pub async fn purge_expired(&self) -> Result<u64, sqlx::Error> {
        store::purge_expired(&self.pool).await
    }
}

impl SessionData {
    /// A new session for `user` with `tokens` and a fresh CSRF token.
    pub fn new(user: User, tokens: TokenSet) -> Self {
        Self {
            user,
            tokens,
            csrf_token: random_token(32),
        }
    }

    fn apply_refresh(&mut self, mut tokens: TokenSet) {
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = self.tokens.refresh_token.take();
        }
        if tokens.id_token.is_none() {
            tokens.id_token = self.tokens.id_token.take();
        }
        if let Some(claims) = tokens.access_claims() {
            self.user.roles = claims.roles;
            self.user.scope = claims.scope;
        }
        self.tokens = tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_are_looked_up() {
        assert!(SessionId::from_cookie(&random_token(32)).is_some());
        assert!(SessionId::from_cookie("short").is_none());
        assert!(SessionId::from_cookie(&"a".repeat(42)).is_none());
        assert!(SessionId::from_cookie(&format!("{}'", "a".repeat(42))).is_none());
    }
}
