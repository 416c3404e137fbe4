//! `GET /healthz` (process up) and `GET /readyz` (database, signing keys, IdP
//! discovery; the revocation stream's state when one is configured).

use axum::Router;
use guard::health::{CheckResult, Readiness};

use crate::AppState;

pub fn router(state: &AppState) -> Router {
    let mut readiness = Readiness::new().database(state.sessions.pool().clone());
    // Every guard reads the same JWKS; one stands for all.
    if let Some(guard) = state.guards.values().next() {
        readiness = readiness.jwks(guard).revocations(guard);
    }
    let oidc = state.oidc.clone();
    readiness
        .check("idp", move || {
            let oidc = oidc.clone();
            async move {
                match oidc.metadata().await {
                    Ok(_) => CheckResult::ok(),
                    Err(e) => CheckResult::failed(e.to_string()),
                }
            }
        })
        .router()
}
