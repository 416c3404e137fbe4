use anyhow::Context;
use gateway::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("gateway");
    let config = Config::from_env().context("invalid configuration")?;
    let app = Application::build(config)
        .await
        .context("cannot start the gateway")?;
    app.run_until_stopped().await.context("server error")?;
    Ok(())
}
