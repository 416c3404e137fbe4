use anyhow::Context;
use gateway::Application;
use gateway::config::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("gateway");
    let config = platform::config::parse::<Args>()
        .resolve()
        .context("invalid configuration")?;
    let app = Application::build(config)
        .await
        .context("cannot start the gateway")?;
    app.run_until_stopped().await.context("server error")?;
    Ok(())
}
