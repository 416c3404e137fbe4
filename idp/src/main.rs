//! `idp`: the Baton identity provider and its admin CLI. The realm commands
//! (users, clients, scopes, resources) are in [`cli`].

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use cli::catalog::CatalogCommand;
use cli::clients::ClientsCommand;
use cli::emit;
use cli::users::UsersCommand;
use idp::Config;

#[derive(Parser)]
#[command(
    name = "idp",
    version,
    about = "Baton's OpenID Connect provider (default command: serve)"
)]
struct Cli {
    /// Print the result as JSON (one document on standard output).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    config: idp::config::Args,
    #[command(flatten)]
    seed: idp::seed::SeedArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP on IDP_BIND (the default).
    Serve,
    /// Apply the demo realm (users alice, carol, bob; clients gateway, cli, reporter, order). Idempotent.
    Seed,
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Users. Passwords are read from standard input, never from arguments.
    #[command(subcommand)]
    Users(UsersCommand),
    /// OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Scopes clients may be registered with (what access tokens may carry).
    #[command(subcommand)]
    Scopes(CatalogCommand),
    /// Resources: the audiences (`aud`) access tokens may name, one per protected service.
    #[command(subcommand)]
    Resources(CatalogCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new key now; it signs after IDP_KEY_PUBLISH_SECS, and the current key stays
    /// published until every token it signed has expired.
    Rotate {
        /// Sign with the new key at once (after a key compromise; validators then refetch JWKS on the new kid).
        #[arg(long)]
        immediate: bool,
        /// The algorithm of the new key (default IDP_SIGNING_ALG; RS256 keys sign ID tokens
        /// for clients registered with `--id-token-alg RS256`).
        #[arg(long, value_parser = idp::config::parse_alg)]
        alg: Option<idp::keys::Alg>,
    },
    /// List keys and their state (pending, active, retired, expired).
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = platform::config::parse::<Cli>();
    // Kept until the end: dropping it flushes the exported spans.
    let _telemetry = match cli.command {
        None | Some(Command::Serve) => Some(platform::telemetry::init("idp")),
        // An admin command's standard output is its answer (`--json` is
        // parsed by scripts): its log lines go to standard error.
        Some(_) => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            None
        }
    };
    let config = cli.config.resolve()?;
    let json = cli.json;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            idp::Application::build(config)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Seed => {
            let state = state(config).await?;
            idp::seed::apply(&state.db, &state.passwords, &cli.seed.into()).await?;
            emit(json, &serde_json::json!({"applied": true}), || {
                "demo realm applied: users alice, carol, bob; clients gateway, cli, reporter, order"
                    .into()
            });
        }
        Command::Keys(cmd) => keys(config, cmd, json).await?,
        Command::Users(cmd) => cli::users::users(state(config).await?, cmd, json).await?,
        Command::Clients(cmd) => {
            cli::clients::clients(&config, &pool(&config).await?, cmd, json).await?
        }
        Command::Scopes(cmd) => {
            let kind = idp::catalog::Catalog::Scopes;
            cli::catalog::catalog(&pool(&config).await?, kind, cmd, json).await?
        }
        Command::Resources(cmd) => {
            let kind = idp::catalog::Catalog::Resources;
            cli::catalog::catalog(&pool(&config).await?, kind, cmd, json).await?
        }
    }
    Ok(())
}

async fn pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    // An admin command makes a few queries in a row: a small pool.
    let database = platform::db::Database {
        max_connections: 4,
        ..config.database.clone()
    };
    database
        .connect(&idp::MIGRATOR)
        .await
        .context("connecting to IDP_DATABASE_URL")
}

async fn state(config: Config) -> anyhow::Result<idp::state::AppState> {
    let pool = pool(&config).await?;
    Ok(idp::build_state(config, pool).await?)
}

async fn keys(config: Config, cmd: KeysCommand, json: bool) -> anyhow::Result<()> {
    let state = state(config).await?;
    let mut rotated = None;
    if let KeysCommand::Rotate { immediate, alg } = cmd {
        let c = &state.config;
        let lead = if immediate {
            std::time::Duration::ZERO
        } else {
            c.key_publish_lead
        };
        let alg = alg.unwrap_or(c.signing_alg);
        if !c.id_token_algs().contains(&alg) {
            anyhow::bail!(
                "this IdP signs with {} only (IDP_SIGNING_ALG and RS256)",
                c.id_token_algs()
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let sealer = idp::master_key(c)?.derive("signing-keys");
        let key = idp::keys::rotate(&state.db, &sealer, alg, lead, c.longest_token_life()).await?;
        if !json {
            println!(
                "new key {} ({}) published; it signs from {}",
                key.kid,
                key.alg,
                stamp(key.not_before)
            );
        }
        rotated = Some(key.kid);
    }
    let now = OffsetDateTime::now_utc();
    #[derive(Serialize)]
    struct Listed {
        #[serde(flatten)]
        key: idp::keys::KeyInfo,
        status: &'static str,
    }
    let keys: Vec<Listed> = idp::keys::list(&state.db)
        .await?
        .into_iter()
        .map(|key| Listed {
            status: key.status(now),
            key,
        })
        .collect();
    let doc = serde_json::json!({"rotated": rotated, "keys": keys});
    emit(json, &doc, || {
        let mut out = format!(
            "{:<44} {:<6} {:<8} {:<20} {:<20} expires",
            "kid", "alg", "status", "signs from", "retires"
        );
        let show = |t: Option<OffsetDateTime>| t.map_or_else(|| "-".to_owned(), stamp);
        for k in &keys {
            out.push_str(&format!(
                "\n{:<44} {:<6} {:<8} {:<20} {:<20} {}",
                k.key.kid,
                k.key.alg,
                k.status,
                stamp(k.key.not_before),
                show(k.key.retire_at),
                show(k.key.expire_at)
            ));
        }
        out
    });
    Ok(())
}

/// `2026-01-01T12:00:00Z`: UTC to the second.
fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
