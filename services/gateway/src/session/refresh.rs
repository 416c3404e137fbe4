//! Refresh, once: a session's refresh token is redeemed by one request at a
//! time, across gateway replicas, and no database connection is held while
//! the IdP answers.
//!
//! The IdP rotates refresh tokens and takes a second redemption of the same
//! token for theft (RFC 9700 §4.14.2): it revokes the whole family, and the
//! session ends. So:
//! * in the process, a per-session async mutex: parallel requests of one
//!   session queue behind the first, which refreshes; the others then find
//!   the fresh token (they wait holding nothing but the mutex);
//! * across replicas, a lease on the session row (`refresh_owner`,
//!   `refresh_until`), claimed by one short `UPDATE` that succeeds only while
//!   the lease is free (or has run out) and the row is still the one read. The
//!   IdP is then called with no connection and no transaction held, and the new
//!   tokens are stored by a second `UPDATE` only while the lease is still ours.
//!   A replica that finds the lease taken re-reads the row (a short query now
//!   and then) until the new token is there.
//!
//! A slow IdP therefore costs a refreshing request time, not a pooled
//! connection: other requests are served while any number of refreshes wait.
//!
//! The lease outlives every call made under it. The refresh is bounded by
//! twice `GATEWAY_IDP_TIMEOUT_MS` (discovery, then the token request) and the
//! lease lasts that plus [`LEASE_MARGIN`], so a lease only runs out after its
//! holder stopped waiting for the IdP: a slow IdP never receives the same
//! refresh token from two holders. The refresh runs in its own task, so a
//! browser that goes away mid-refresh does not drop tokens the IdP has just
//! issued. What no client can know: whether a call that timed out was
//! processed. If it was, the next refresh presents the rotated token, the IdP
//! revokes the family, and the person signs in again (the safe outcome).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use super::{SessionData, SessionId, SessionStore};
use crate::error::GatewayError;
use crate::oidc::{IdpError, Oidc};
use crate::store;
use platform::crypto::random_token;

/// How much longer a lease lasts than the IdP call it covers: time to store
/// the answer (a database round trip, perhaps a wait for a connection).
pub const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// First and longest pause between reads while another replica refreshes.
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_millis(500);

/// A live session row as read for a refresh.
pub struct Snapshot {
    pub data: SessionData,
    /// Another refresh holds the lease.
    pub leased: bool,
    /// The row's sealed bytes: a claim succeeds only if they are unchanged.
    sealed: Vec<u8>,
}

/// The right to refresh one session, until stored, released or run out.
pub struct Lease {
    hash: [u8; 32],
    owner: String,
    /// The session's log-safe name ([`SessionId::fingerprint`]).
    session: String,
}

/// What storing refreshed tokens found.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored; the lease is released.
    Done,
    /// The session no longer exists (signed out, expired, ended).
    Gone,
    /// Another refresh holds the lease now; nothing was stored.
    Lost,
}

/// Why a refresh under a lease gave no tokens to use.
enum Failed {
    Ended,
    Unavailable,
    Store(sqlx::Error),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e)
    }
}

impl SessionStore {
    /// How long a claimed lease lasts.
    pub fn lease_duration(&self) -> Duration {
        self.idp_bound + LEASE_MARGIN
    }

    /// The live session `id` and the state of its lease.
    #[tracing::instrument(name = "db.session.snapshot", skip_all)]
    pub async fn snapshot(&self, id: &SessionId) -> Result<Option<Snapshot>, sqlx::Error> {
        let hash = id.hash();
        let row = store::leased_session(&self.pool, &hash).await?;
        Ok(row.and_then(|(sealed, leased)| {
            Some(Snapshot {
                data: self.open(&hash, &sealed)?,
                leased,
                sealed,
            })
        }))
    }

    /// Claims the refresh lease of `id`, if it is free (or has run out) and
    /// the row is still as `seen`.
    #[tracing::instrument(name = "db.session.claim_refresh", skip_all)]
    pub async fn claim_refresh(
        &self,
        id: &SessionId,
        seen: &Snapshot,
    ) -> Result<Option<Lease>, sqlx::Error> {
        let lease = Lease {
            hash: id.hash(),
            owner: random_token(16),
            session: id.fingerprint(),
        };
        let secs = self.lease_duration().as_secs_f64();
        let claimed =
            store::claim_lease(&self.pool, &lease.hash, &lease.owner, secs, &seen.sealed).await?;
        Ok(claimed.then_some(lease))
    }

    /// Stores `data` (the refreshed session) if `lease` is still the holder.
    #[tracing::instrument(name = "db.session.store_refreshed", skip_all)]
    pub async fn store_refreshed(
        &self,
        lease: &Lease,
        data: &SessionData,
    ) -> Result<Stored, sqlx::Error> {
        let sealed = self.seal(&lease.hash, data);
        if store::store_under_lease(&self.pool, &lease.hash, &lease.owner, &sealed).await? {
            return Ok(Stored::Done);
        }
        let exists = store::session_is_live(&self.pool, &lease.hash).await?;
        Ok(if exists { Stored::Lost } else { Stored::Gone })
    }

    /// Gives the lease back without storing anything.
    #[tracing::instrument(name = "db.session.release", skip_all)]
    pub async fn release(&self, lease: Lease) -> Result<(), sqlx::Error> {
        store::release_lease(&self.pool, &lease.hash, &lease.owner).await
    }

    /// The session's data with an access token valid for more than `margin`,
    /// refreshing it first if needed (see the module documentation).
    ///
    /// A refresh the IdP refuses ends the session (`SessionEnded`); an IdP that
    /// cannot be reached keeps the session and uses the current token while it
    /// is still valid, else answers `IdpUnavailable`.
    pub async fn with_fresh_tokens(
        &self,
        id: &SessionId,
        data: SessionData,
        margin: Duration,
        oidc: &Oidc,
        navigation: bool,
        return_to: &str,
    ) -> Result<SessionData, GatewayError> {
        if !data.tokens.expires_within(margin) {
            return Ok(data);
        }
        let ended = || GatewayError::SessionEnded {
            navigation,
            return_to: return_to.to_owned(),
        };
        let session = id.fingerprint();
        let lock = self
            .refresh_locks
            .get_with(id.hash(), || Arc::new(tokio::sync::Mutex::new(())));
        let one_at_a_time = lock.lock_owned().await;

        let give_up = Instant::now() + self.lease_duration();
        let mut pause = POLL_FIRST;
        loop {
            let Some(seen) = self.snapshot(id).await? else {
                return Err(ended());
            };
            let current = &seen.data.tokens;
            if !current.expires_within(margin) {
                // Another request (or replica) refreshed while we waited.
                return Ok(seen.data);
            }
            let Some(refresh_token) = current.refresh_token.clone() else {
                if current.expires_within(Duration::ZERO) {
                    self.delete(id).await?;
                    return Err(ended());
                }
                return Ok(seen.data);
            };
            if !seen.leased {
                if let Some(lease) = self.claim_refresh(id, &seen).await? {
                    // In its own task, with the mutex, so that it completes
                    // even if this request is dropped.
                    let (store, oidc) = (self.clone(), oidc.clone());
                    // Under the request's span: the refresh is part of its trace.
                    let refresh = tokio::spawn(
                        async move {
                            let _one_at_a_time = one_at_a_time;
                            store
                                .refresh_under(lease, &refresh_token, seen.data, &oidc)
                                .await
                        }
                        .instrument(tracing::Span::current()),
                    );
                    return match refresh.await {
                        Ok(Ok(data)) => Ok(data),
                        Ok(Err(Failed::Ended)) => Err(ended()),
                        Ok(Err(Failed::Unavailable)) => Err(GatewayError::IdpUnavailable),
                        Ok(Err(Failed::Store(e))) => Err(e.into()),
                        Err(e) => {
                            tracing::error!(error = %e, "the refresh task failed");
                            Err(GatewayError::IdpUnavailable)
                        }
                    };
                }
                // The row changed between the read and the claim: read again.
            } else if Instant::now() < give_up {
                // Another replica is refreshing: wait for its result.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_MAX);
            } else {
                tracing::warn!(%session, "another refresh of this session holds its lease too long");
                return if seen.data.tokens.expires_within(Duration::ZERO) {
                    Err(GatewayError::IdpUnavailable)
                } else {
                    Ok(seen.data)
                };
            }
        }
    }

    /// Redeems `refresh_token` (that of `current`) under `lease` and stores
    /// the result: the tokens to use (the new ones, or the current ones while
    /// the IdP is away and they are still valid).
    async fn refresh_under(
        &self,
        lease: Lease,
        refresh_token: &str,
        current: SessionData,
        oidc: &Oidc,
    ) -> Result<SessionData, Failed> {
        let session = lease.session.clone();
        let answer = tokio::time::timeout(self.idp_bound, oidc.refresh(refresh_token))
            .await
            .unwrap_or_else(|_| Err(IdpError::Unavailable("no answer in time".into())));
        match answer {
            Ok(tokens) => {
                let mut next = current;
                next.apply_refresh(tokens);
                match self.store_refreshed(&lease, &next).await? {
                    Stored::Done => {
                        tracing::info!(%session, "access token refreshed");
                        Ok(next)
                    }
                    Stored::Gone => {
                        // Signed out meanwhile: the new refresh token must not outlive it.
                        tracing::info!(%session, "session ended during its refresh");
                        if let Some(token) = &next.tokens.refresh_token {
                            oidc.revoke(token).await;
                        }
                        Err(Failed::Ended)
                    }
                    Stored::Lost => {
                        tracing::warn!(%session, "refresh lease lost; new tokens not stored");
                        Err(Failed::Unavailable)
                    }
                }
            }
            Err(IdpError::Rejected(reason)) => {
                store::delete_session(&self.pool, &lease.hash).await?;
                tracing::info!(%session, %reason, "refresh refused by the IdP; session ended");
                Err(Failed::Ended)
            }
            Err(IdpError::Unavailable(reason)) => {
                self.release(lease).await?;
                tracing::warn!(%session, %reason, "refresh failed: IdP unavailable");
                if current.tokens.expires_within(Duration::ZERO) {
                    Err(Failed::Unavailable)
                } else {
                    Ok(current)
                }
            }
        }
    }
}
