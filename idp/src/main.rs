//! `idp`: the Baton identity provider and its admin CLI.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;

use idp::Config;
use idp::client_extras::ClientExtras;
use idp::realm::{self, NewClient};

#[derive(Parser)]
#[command(
    name = "idp",
    version,
    about = "Baton's OpenID Connect provider (default command: serve)"
)]
struct Cli {
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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new key now; it signs after IDP_KEY_PUBLISH_SECS, and the current key stays
    /// published until every token it signed has expired.
    Rotate {
        /// Sign with the new key at once (after a key compromise; validators then refetch JWKS on the new kid).
        #[arg(long)]
        immediate: bool,
    },
    /// List keys and their state (pending, active, retired, expired).
    List,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; the password is the first line of standard input.
    Add {
        username: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// A role to grant (repeatable or comma-separated).
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Set a user's password (first line of standard input); ends the user's sessions.
    SetPassword { username: String },
    /// End all of a user's sessions and revoke every token issued to them so far.
    RevokeSessions { username: String },
    /// Show a user's roles, after granting --add and removing --remove.
    Roles {
        username: String,
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register (or replace) a client. A confidential client's secret is generated and printed once.
    Add(Box<ClientArgs>),
    /// List clients.
    List,
}

#[derive(Args)]
struct ClientArgs {
    /// The client_id.
    id: String,
    #[arg(long, default_value = "")]
    name: String,
    /// A public client (no secret; PKCE required), e.g. a native or single-page app.
    #[arg(long)]
    public: bool,
    /// Exact redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Exact post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, client_credentials (repeatable or comma-separated).
    #[arg(long = "grant", value_delimiter = ',', required = true)]
    grants: Vec<String>,
    /// Allowed scopes (repeatable, comma- or space-separated).
    #[arg(long = "scope", value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// Resources (the aud of its access tokens), e.g. order,payment,inventory.
    #[arg(long = "resource", value_delimiter = ',', required = true)]
    resources: Vec<String>,
    /// Where the IdP posts a logout token when a session of this client ends
    /// (OpenID Connect Back-Channel Logout).
    #[arg(long = "backchannel-logout-uri")]
    backchannel_logout_uri: Option<String>,
    /// The client requires `sid` in logout tokens (they always carry it).
    #[arg(long = "backchannel-logout-session-required")]
    backchannel_logout_session_required: bool,
    /// Browser origin allowed to call the token, userinfo, revoke, discovery and JWKS
    /// endpoints, e.g. https://app.example (repeatable or comma-separated; none by default).
    #[arg(long = "allowed-origin", value_delimiter = ',')]
    allowed_origins: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    guard::telemetry::init("idp");
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => idp::serve(config).await?,
        Command::Seed => {
            let state = state(config).await?;
            idp::seed::apply(
                &state.db,
                &state.passwords,
                &idp::seed::SeedConfig::from_env(),
            )
            .await?;
            println!(
                "demo realm applied: users alice, carol, bob; clients gateway, cli, reporter, order"
            );
        }
        Command::Keys(cmd) => keys(config, cmd).await?,
        Command::Users(cmd) => users(config, cmd).await?,
        Command::Clients(cmd) => clients(config, cmd).await?,
    }
    Ok(())
}

async fn pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    guard::db::connect_and_migrate(&config.database_url, 4, &idp::MIGRATOR)
        .await
        .context("connecting to IDP_DATABASE_URL")
}

async fn state(config: Config) -> anyhow::Result<idp::state::AppState> {
    let pool = pool(&config).await?;
    Ok(idp::build_state(config, pool).await?)
}

async fn keys(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    if let KeysCommand::Rotate { immediate } = cmd {
        let c = &state.config;
        let lead = if immediate {
            std::time::Duration::ZERO
        } else {
            c.key_publish_lead
        };
        let sealer = idp::master_key(c)?.derive("signing-keys");
        let key = idp::keys::rotate(
            &state.db,
            &sealer,
            c.signing_alg,
            lead,
            c.longest_token_life(),
        )
        .await?;
        println!(
            "new key {} ({}) published; it signs from {}",
            key.kid,
            key.alg,
            stamp(key.not_before)
        );
    }
    let now = OffsetDateTime::now_utc();
    println!(
        "{:<44} {:<6} {:<8} {:<20} {:<20} expires",
        "kid", "alg", "status", "signs from", "retires"
    );
    for k in idp::keys::list(&state.db).await? {
        let show = |t: Option<OffsetDateTime>| t.map_or_else(|| "-".to_owned(), stamp);
        println!(
            "{:<44} {:<6} {:<8} {:<20} {:<20} {}",
            k.kid,
            k.alg,
            k.status(now),
            stamp(k.not_before),
            show(k.retire_at),
            show(k.expire_at)
        );
    }
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

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("password (input is visible; pipe it in to avoid that): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

async fn user(state: &idp::state::AppState, username: &str) -> anyhow::Result<realm::User> {
    realm::user_by_username(&state.db, username)
        .await?
        .with_context(|| format!("no user {username:?}"))
}

async fn users(config: Config, cmd: UsersCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    match cmd {
        UsersCommand::Add {
            username,
            name,
            email,
            roles,
        } => {
            let password = read_password()?;
            let hash = state.passwords.hash(password).await?;
            let (id, created) =
                realm::insert_user(&state.db, &username, &hash, &name, email.as_deref()).await?;
            if !created {
                bail!("user {username:?} already exists (use `idp users set-password`)");
            }
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            realm::grant_roles(&state.db, id, &roles).await?;
            println!("user {username} created with id {id}");
        }
        UsersCommand::SetPassword { username } => {
            let u = user(&state, &username).await?;
            let hash = state.passwords.hash(read_password()?).await?;
            realm::set_password(&state.db, u.id, &hash).await?;
            let ended = idp::sessions::end_all_for_user(
                &state.db,
                u.id,
                "password changed",
                state.config.access_token_ttl,
            )
            .await?;
            println!("password of {username} changed; {ended} session(s) ended");
        }
        UsersCommand::RevokeSessions { username } => {
            let u = user(&state, &username).await?;
            let ended = idp::sessions::end_all_for_user(
                &state.db,
                u.id,
                "revoked by an administrator",
                state.config.access_token_ttl,
            )
            .await?;
            println!("{username}: {ended} session(s) ended, every token issued so far revoked");
        }
        UsersCommand::Roles {
            username,
            add,
            remove,
        } => {
            let u = user(&state, &username).await?;
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            realm::grant_roles(&state.db, u.id, &add).await?;
            realm::revoke_roles(&state.db, u.id, &remove).await?;
            println!(
                "{username}: {}",
                realm::roles_of(&state.db, u.id).await?.join(", ")
            );
        }
        UsersCommand::List => {
            let rows: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
                "SELECT id::text, username, email, disabled FROM users ORDER BY username",
            )
            .fetch_all(&state.db)
            .await?;
            for (id, username, email, disabled) in rows {
                let roles = realm::roles_of(&state.db, id.parse()?).await?.join(",");
                let flag = if disabled { " (disabled)" } else { "" };
                println!(
                    "{id}  {username:<16} {:<28} {roles}{flag}",
                    email.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

async fn clients(config: Config, cmd: ClientsCommand) -> anyhow::Result<()> {
    let pool = pool(&config).await?;
    match cmd {
        ClientsCommand::Add(a) => {
            let a = *a;
            let secret = (!a.public).then(idp::crypto::random_token);
            let split = |v: Vec<String>| -> Vec<String> {
                v.iter()
                    .flat_map(|s| s.split_whitespace())
                    .map(str::to_owned)
                    .collect()
            };
            let client = NewClient {
                id: a.id.clone(),
                name: a.name,
                secret: secret.clone(),
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                grant_types: split(a.grants),
                scopes: split(a.scopes),
                resources: split(a.resources),
            };
            let extras = ClientExtras {
                backchannel_logout_uri: a.backchannel_logout_uri,
                backchannel_logout_session_required: a.backchannel_logout_session_required,
                allowed_origins: a.allowed_origins,
            };
            extras.validate(a.public)?;
            realm::upsert_client(&pool, &client).await?;
            extras.save(&pool, &client.id, a.public).await?;
            println!("client {} registered", a.id);
            if let Some(secret) = secret {
                println!("client_secret (shown once, store it now): {secret}");
            }
        }
        ClientsCommand::List => {
            for c in realm::clients(&pool).await? {
                let extras = ClientExtras::of(&pool, &c.id).await?;
                println!(
                    "{}  {}\n  type: {}\n  grants: {}\n  scopes: {}\n  resources: {}\n  redirect URIs: {}\n  post-logout URIs: {}\n  back-channel logout URI: {}\n  allowed origins: {}",
                    c.id,
                    c.name,
                    if c.public { "public" } else { "confidential" },
                    c.grant_types.join(", "),
                    c.scopes.join(" "),
                    c.resources.join(", "),
                    c.redirect_uris.join(" "),
                    c.post_logout_redirect_uris.join(" "),
                    extras.backchannel_logout_uri.as_deref().unwrap_or("-"),
                    extras.allowed_origins.join(" ")
                );
            }
        }
    }
    Ok(())
}
