//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve:
//! database reachable and a signing key active), answered by
//! [`platform::health`] like every other part.

use platform::health::{CheckResult, Readiness};

use crate::state::AppState;

pub fn router(state: &AppState) -> axum::Router<AppState> {
    let signer = state.clone();
    Readiness::new()
        .database(state.db.clone())
        .check("signing_key", move || {
            let ready = signer.keys.has_signer();
            async move {
                if ready {
                    CheckResult::ok()
                } else {
                    CheckResult::failed("no active signing key")
                }
            }
        })
        .router()
}
