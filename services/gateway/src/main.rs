use anyhow::Context;
use gateway::routes::RouteTable;
use gateway::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("gateway");
    let config = Config::from_env().context("invalid configuration")?;
    for var in &config.dev_secrets {
        tracing::warn!(
            "{var} is not set: using the PUBLIC development default. Anyone can forge or read \
             what it protects. Set it before exposing the gateway to anyone."
        );
    }
    let routes =
        RouteTable::load(&config.routes_path, |k| std::env::var(k).ok()).with_context(|| {
            format!(
                "cannot load the route table {}",
                config.routes_path.display()
            )
        })?;
    let metrics_bind = config.metrics_bind;
    let app = Application::build(config, routes)
        .await
        .context("cannot start the gateway")?;
    app.exporter()
        .spawn(metrics_bind)
        .await
        .context("metrics listener")?;
    tracing::info!(address = %app.local_addr(), "gateway listening");
    app.run_until(platform::shutdown::signal())
        .await
        .context("server error")?;
    Ok(())
}
