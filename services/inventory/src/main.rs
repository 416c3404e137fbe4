use anyhow::Context;
use guard::Guard;
use inventory::{AppState, Config, MIGRATOR, SERVICE, expiry, router};
use platform::idempotency;
use platform::server::serve;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init(SERVICE);
    let config = Config::from_env()?;
    let pool = platform::db::connect_and_migrate(
        &config.database_url,
        config.database_max_connections,
        &MIGRATOR,
    )
    .await
    .context("inventory database")?;
    let guard = Guard::try_new(config.guard).context("guard")?;
    guard::resource_server::serve_metrics(config.metrics_bind, &pool, &guard)
        .await
        .context("metrics listener")?;
    tokio::spawn(idempotency::sweep(pool.clone()));
    tokio::spawn(expiry::sweep(pool.clone(), config.reservation_ttl));
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "inventory listening");
    serve(
        listener,
        router(AppState {
            pool: pool.clone(),
            guard,
        }),
        platform::shutdown::signal(),
    )
    .await?;
    // Requests have drained; let PostgreSQL see the connections close.
    pool.close().await;
    Ok(())
}
