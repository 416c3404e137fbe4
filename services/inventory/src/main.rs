use inventory::{Application, Config, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init(SERVICE);
    let config = Config::from_env()?;
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
