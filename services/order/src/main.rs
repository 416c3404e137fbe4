use anyhow::Context;
use guard::relay::{DEFAULT_CONNECT_TIMEOUT, RelayClient};
use guard::{Exchanger, Guard, RelayMode};
use order::{AppState, Config, MIGRATOR, SERVICE, expiry, router};
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
    .context("order database")?;
    let exchanger = match config.relay {
        RelayMode::Plain => None,
        RelayMode::Exchange => Some(
            Exchanger::from_config(&config.guard)
                .context("ORDER_RELAY=exchange needs GUARD_CLIENT_ID and GUARD_CLIENT_SECRET")?
                .context("token exchange client")?,
        ),
    };
    let guard = Guard::try_new(config.guard).context("guard")?;
    guard::resource_server::serve_metrics(config.metrics_bind, &pool, &guard)
        .await
        .context("metrics listener")?;
    let relay = RelayClient::with_timeouts(config.relay_timeout, DEFAULT_CONNECT_TIMEOUT)
        .context("relay client")?;
    tokio::spawn(expiry::sweep(pool.clone(), config.pending_ttl));
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    tracing::info!(addr = %listener.local_addr()?, inventory = %config.inventory_url,
        payment = %config.payment_url, relay = ?config.relay, "order listening");
    let state = AppState::new(
        pool.clone(),
        guard,
        &relay,
        config.inventory_url,
        config.payment_url,
        exchanger,
    );
    serve(listener, router(state), platform::shutdown::signal()).await?;
    // Requests have drained; let PostgreSQL see the connections close.
    pool.close().await;
    Ok(())
}
