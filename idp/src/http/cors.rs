//! CORS for browser-based clients, per client: each client registers the
//! exact origins its pages run on (`allowed_origins`, `idp clients add
//! --allowed-origin`); nothing is allowed by default, and no response ever
//! says `*` or allows credentials (cookies never matter to these endpoints).
//!
//! Where it applies: `/token`, `/userinfo`, `/revoke`, discovery and
//! `/jwks.json` ([`super::router`] puts [`layer`] on those routes only).
//!
//! How far the IdP can tell which client calls:
//! * a preflight (`OPTIONS`) carries no body and no credentials, so the
//!   client is unknown: it is allowed for any origin some client registered
//!   (the union, kept in memory and re-read every [`RELOAD`]); discovery and
//!   JWKS, which are public documents, use that union as well;
//! * the actual request names its client — the authenticated client at
//!   `/token` and `/revoke`, the access token's `client_id` at `/userinfo` —
//!   and [`check_client`] refuses (403 `access_denied`, before anything is
//!   done) a request whose `Origin` that client did not register. So a page
//!   on an origin registered by client A cannot use client B's credentials
//!   through the browser, although its preflight passed.
//!
//! tower-http's `CorsLayer` does the protocol (preflight answers, `Vary`,
//! the `Access-Control-*` headers); only the origin predicate is ours.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, header};
use sqlx::PgPool;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::OAuthError;

/// How often a running IdP re-reads the registered origins (as its client cache).
pub const RELOAD: Duration = Duration::from_secs(5);

/// Origin → the clients that registered it.
type Registered = HashMap<String, HashSet<String>>;

/// The registered origins, shared by the layer and the handlers; cheap to clone.
#[derive(Clone, Default)]
pub struct Origins(Arc<RwLock<Arc<Registered>>>);

impl Origins {
    /// Reads the origins every client registered.
    pub async fn load(db: &PgPool) -> sqlx::Result<Self> {
        let origins = Self::default();
        origins.refresh(db).await?;
        Ok(origins)
    }

    /// Re-reads the registered origins; answers whether they changed.
    pub async fn refresh(&self, db: &PgPool) -> sqlx::Result<bool> {
        let rows = sqlx::query!(
            r#"SELECT unnest(allowed_origins) AS "origin!", id FROM clients
               WHERE cardinality(allowed_origins) > 0"#,
        )
        .fetch_all(db)
        .await?;
        let mut fresh = Registered::new();
        for row in rows {
            fresh.entry(row.origin).or_default().insert(row.id);
        }
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        let changed = **current != fresh;
        if changed {
            *current = Arc::new(fresh);
        }
        Ok(changed)
    }

    fn snapshot(&self) -> Arc<Registered> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Some client registered `origin`.
    pub fn registered(&self, origin: &[u8]) -> bool {
        std::str::from_utf8(origin).is_ok_and(|o| self.snapshot().contains_key(o))
    }

    /// `client` registered `origin`.
    pub fn allows(&self, origin: &str, client: &str) -> bool {
        self.snapshot()
            .get(origin)
            .is_some_and(|clients| clients.contains(client))
    }
}

/// The CORS layer of the endpoints named above: origins some client registered.
pub fn layer(origins: Origins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origins.registered(origin.as_bytes())
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(600))
}

/// A request from a browser page (it has an `Origin`) is served only when
/// `client` registered that origin among `origins`.
pub fn check_client(
    origins: &Origins,
    headers: &HeaderMap,
    client: &str,
) -> Result<(), OAuthError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    match origin.to_str() {
        Ok(origin) if origins.allows(origin, client) => Ok(()),
        _ => Err(OAuthError::AccessDenied(
            "this client has not registered the origin of the calling page".into(),
        )),
    }
}

/// Re-reads the registered origins every [`RELOAD`], for as long as the process runs.
pub async fn reload(origins: Origins, db: PgPool) {
    platform::db::every(RELOAD, "registered CORS origins changed", || async {
        Ok(u64::from(origins.refresh(&db).await?))
    })
    .await;
}
