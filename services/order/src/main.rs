use order::{Application, SERVICE, config::Args};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init(SERVICE);
    let config = platform::config::parse::<Args>().resolve()?;
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
