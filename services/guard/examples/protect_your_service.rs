use axum::{Json, Router, routing::get};
use guard::{Guard, GuardConfig, Principal, Requirement, require_all};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // GUARD_ISSUER etc. from the environment; "reports" is this service's audience:
    // tokens must carry it in `aud`. Never blocks on the IdP: keys are fetched lazily.
    let guard = Guard::try_new(GuardConfig::from_env("reports")?)?;
    let app = Router::new()
        .route("/reports/{id}", get(report).put(replace))
        .route_layer(require_all([
            Requirement::role("admin"),
            Requirement::scope("reports:write"),
        ]))
        .route("/reports", get(list))
        .layer(guard.layer())
        .with_state(guard);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(platform::shutdown::signal())
        .await?;
    Ok(())
}

async fn list(caller: Principal) -> Result<Json<Vec<String>>, guard::AuthError> {
    caller.require_scope("reports:read")?; // 403 insufficient_scope, with WWW-Authenticate
    Ok(Json(vec![format!("reports of {}", caller.sub())]))
}

async fn report(caller: Principal) -> Json<String> {
    Json(format!("a report, for {}", caller.sub()))
}

async fn replace(caller: Principal, Json(body): Json<String>) -> Json<String> {
    Json(format!("{} replaced it with {body:?}", caller.sub()))
}
