//! The application state shared by every handler.

use std::ops::Deref;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::watch;

use crate::cache::AuthCache;
use crate::config::Config;
use crate::keys::KeyStore;
use crate::password::Passwords;
use platform::crypto::SealKey;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    pub keys: KeyStore,
    pub passwords: Passwords,
    /// Seals the login-flow cookie (a key derived from the master key).
    pub flow_sealer: SealKey,
    /// Seals TOTP secrets at rest ([`crate::totp`]; derived from the master key).
    pub totp_sealer: SealKey,
    /// The WebAuthn relying party of the issuer ([`crate::passkeys`]); `None`
    /// when the issuer is at an IP address (no passkeys).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Fans revocations out to the open revocation streams.
    pub revocation_hub: crate::revocations::Hub,
    /// This process's copy of the revocation log, for the exchange grant
    /// ([`crate::revocations::view`]); followed only while the server runs.
    pub revocation_view: crate::revocations::view::View,
    /// Open revocation streams per client (capped).
    pub stream_counts: crate::revocations::StreamCounts,
    /// Turns true when the server stops, so long-lived streams end.
    pub shutdown: watch::Sender<bool>,
    /// Client records and "not locked" verdicts, briefly (see [`crate::cache`]).
    pub auth_cache: AuthCache,
    /// Posts logout tokens to clients ([`crate::backchannel`]): bounded, no redirects.
    pub logout_http: reqwest::Client,
    /// The browser origins clients registered (CORS, [`crate::http::cors`]).
    pub cors: crate::http::cors::Origins,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// Tells every long-lived response (revocation streams) to finish.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
