//! The floor under a token grant on this host: a server that does only what
//! no grant can skip (read a form over HTTP; for an exchange, verify the
//! subject token; sign one access token through the IdP's own signing pool;
//! answer JSON) and nothing a real grant adds (client authentication, the
//! exchange policy, the revocation check, the IdP's layers and metrics).
//!
//! It runs in its own process (this binary's hidden `grant-floor-server`
//! command) on a runtime of the IdP's shape, with the IdP's keys and signing
//! pool, and takes the same requests as the IdP. Its rate against the raw
//! signing rate is what HTTP costs a grant on these cores, shared with the
//! load generator; a grant's rate against it is what the IdP's own code costs.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use idp::state::AppState;
use serde_json::{Value, json};

use crate::Bench;
use crate::procs::{Proc, listener};
use crate::stack;

/// `POST /sign`: one signature of a `client_credentials`-sized token.
/// `POST /exchange`: the form's `subject_token` verified as the IdP verifies
/// it, its claims signed again. `GET /ready` for the launcher.
pub fn serve(issuer: &str, database_url: &str) -> anyhow::Result<()> {
    // The IdP's runtime: `#[tokio::main]`, one worker per CPU.
    tokio::runtime::Runtime::new()?.block_on(async {
        let key_encryption_key = std::env::var("IDP_KEY_ENCRYPTION_KEY")
            .context("IDP_KEY_ENCRYPTION_KEY names the IdP's key-encryption key")?;
        let state = stack::idp_state(issuer, database_url, &key_encryption_key).await?;
        let app = Router::new()
            .route("/ready", get(|| async { "ok" }))
            .route("/sign", post(sign))
            .route("/exchange", post(exchange))
            .with_state(state);
        let listener = platform::server::listener(([127, 0, 0, 1], 0).into()).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

type Answer = Result<Json<Value>, StatusCode>;

async fn sign(State(state): State<AppState>, Form(form): Form<Vec<(String, String)>>) -> Answer {
    let scope = field(&form, "scope").unwrap_or("orders:read");
    let claims = json!({
        "iss": state.config.issuer, "sub": "reporter", "aud": ["order", "payment", "inventory"],
        "client_id": "reporter", "scope": scope, "exp": 4_000_000_000u64,
        "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "jti": uuid::Uuid::new_v4()
    });
    signed(&state, &claims).await
}

async fn exchange(
    State(state): State<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Answer {
    let subject = field(&form, "subject_token").ok_or(StatusCode::BAD_REQUEST)?;
    let claims: guard::AccessClaims =
        idp::tokens::verify_own(&state, subject, guard::ACCESS_TOKEN_TYP, false)
            .map_err(|_| StatusCode::BAD_REQUEST)?;
    signed(&state, &claims).await
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn signed(state: &AppState, claims: &impl serde::Serialize) -> Answer {
    let (token, _) = state
        .keys
        .sign_jwt(guard::ACCESS_TOKEN_TYP, claims)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": 300
    })))
}

/// Starts the floor server with the IdP's database and key.
pub async fn start(b: &Bench) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "grant-floor-server",
        "--issuer",
        &b.idp.issuer,
        "--idp-database",
        &b.env.dbs.url("idp")?,
    ])
    .env("IDP_KEY_ENCRYPTION_KEY", &b.env.key_encryption_key)
    .env("RUST_LOG", "warn");
    let mut p = Proc::spawn("grant-floor", cmd, listener()?, &b.env.log_dir)?;
    p.wait_ready("/ready", Duration::from_secs(30)).await?;
    Ok(p)
}
