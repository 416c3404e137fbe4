//! `GET /healthz` (process up) and `GET /readyz` (database, signing keys, IdP
//! discovery; the revocation stream's state when one is configured).

use axum::Router;
use guard::monitoring::GuardChecks;
use platform::health::{CheckResult, Readiness};

use crate::AppState;

pub fn router(state: &AppState) -> Router {
    let oidc = state.oidc.clone();
    // Every validator shares the gateway guard's key cache and revocation stream.
    Readiness::new()
        .database(state.sessions.pool().clone())
        .jwks(&state.guard)
        .revocations(&state.guard)
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
