//! Baton's processes for the bench: the IdP (seeded demo realm) and the four
//! services of the chain, from release binaries, through the shared launcher
//! (`launch`: its start order and variables, each part on a loopback socket
//! bound here and passed to it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use launch::contract::{self, Origins};

use crate::procs::{Databases, Proc, listener};

const READY: Duration = Duration::from_secs(90);

/// Where the run's binaries, databases, logs and secrets are.
pub struct Env {
    pub workspace: PathBuf,
    pub log_dir: PathBuf,
    pub dbs: Databases,
    pub key_encryption_key: String,
    pub session_key: String,
}

/// The seeded IdP.
pub struct Idp {
    pub proc: Proc,
    pub issuer: String,
}

/// The chain: gateway → order → inventory + payment.
pub struct Services {
    pub gateway: Proc,
    pub order: Proc,
    pub payment: Proc,
    pub inventory: Proc,
}

impl Services {
    pub fn all(&self) -> [&Proc; 4] {
        [&self.gateway, &self.order, &self.payment, &self.inventory]
    }
}

/// The gateway client's secret in the bench realm.
pub const GATEWAY_SECRET: &str = "gateway-dev-secret";
/// The `reporter` client (client_credentials, read scopes, every resource).
pub const REPORTER: (&str, &str) = ("reporter", "reporter-dev-secret");

fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build it first (make bench does)",
            path.display()
        );
    }
    Ok(path)
}

/// The origin `http://127.0.0.1:<port>` of a process's socket.
pub fn origin(listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!(
        "http://127.0.0.1:{}",
        listener.local_addr()?.port()
    ))
}

/// Seeds the demo realm (its gateway client at `gateway_origin`) and starts
/// `idp serve`.
pub async fn start_idp(env: &Env, bin_dir: &Path, gateway_origin: &str) -> anyhow::Result<Idp> {
    let socket = listener()?;
    let issuer = origin(&socket)?;
    // Only the IdP's and the gateway's origins matter to the seed and the IdP.
    let origins = Origins {
        idp: issuer.clone(),
        inventory: String::new(),
        payment: String::new(),
        order: String::new(),
        gateway: gateway_origin.to_owned(),
    };
    let idp = binary(bin_dir, "idp")?;
    let database_url = env.dbs.url("idp")?;
    let mut seed = Command::new(&idp);
    seed.arg("seed")
        .current_dir(&env.workspace)
        .envs(contract::seed_env(
            &origins,
            &database_url,
            &env.key_encryption_key,
            GATEWAY_SECRET,
        ))
        .env("RUST_LOG", "warn");
    let out = seed.output().context("run `idp seed`")?;
    if !out.status.success() {
        bail!("idp seed failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut serve = Command::new(&idp);
    serve
        .arg("serve")
        .current_dir(&env.workspace)
        .envs(contract::env("idp", &origins, &database_url))
        .env("IDP_KEY_ENCRYPTION_KEY", &env.key_encryption_key)
        .env("RUST_LOG", "warn")
        // One hour: a token taken at the start stays valid for the whole run.
        .env("IDP_ACCESS_TOKEN_TTL_SECS", "3600")
        // The bench's own address is a "proxy": figure 8's flood picks its
        // source addresses with X-Forwarded-For; the other figures send none.
        .env("IDP_TRUSTED_PROXIES", "127.0.0.1");
    let mut proc = Proc::spawn("idp", serve, socket, &env.log_dir)?;
    proc.wait_ready("/readyz", READY).await?;
    Ok(Idp { proc, issuer })
}

/// The bench's route table: deploy/routes.toml without its per-address rate
/// limit (the bench sends everything from one address), relaying sessions'
/// and API clients' tokens alike as `relay` says (`exchange` or `plain`; the
/// auth-off baseline neither validates nor exchanges).
fn routes(env: &Env, relay: &str) -> anyhow::Result<PathBuf> {
    let table = std::fs::read_to_string(env.workspace.join("deploy/routes.toml"))?;
    let unlimited: String = table
        .lines()
        .filter(|l| !l.trim_start().starts_with("rate_limit"))
        .map(|l| {
            let setting = ["relay =", "bearer_relay ="]
                .into_iter()
                .find(|k| l.trim_start().starts_with(k));
            match setting {
                Some(k) => format!("{k} \"{relay}\"\n"),
                None => format!("{l}\n"),
            }
        })
        .collect();
    let path = env.log_dir.join(format!("routes-{relay}.toml"));
    std::fs::write(&path, unlimited)?;
    Ok(path)
}

/// Starts inventory, payment, order and the gateway from `bin_dir`
/// (`label` names their logs), the gateway on `gateway` (its origin is
/// known before it starts: the IdP's realm names it); the gateway's routes
/// and order relay tokens as `relay` says (`exchange` or `plain`).
pub async fn start_services(
    env: &Env,
    bin_dir: &Path,
    label: &str,
    issuer: &str,
    gateway: TcpListener,
    relay: &str,
) -> anyhow::Result<Services> {
    let routes = routes(env, relay)?;
    let (inventory, payment, order) = (listener()?, listener()?, listener()?);
    let origins = Origins {
        idp: issuer.to_owned(),
        inventory: origin(&inventory)?,
        payment: origin(&payment)?,
        order: origin(&order)?,
        gateway: origin(&gateway)?,
    };
    let start = |name: &str, socket: TcpListener, extra: &[(&str, String)]| {
        let mut cmd = Command::new(binary(bin_dir, name)?);
        cmd.current_dir(&env.workspace)
            .envs(contract::env(name, &origins, &env.dbs.url(name)?))
            .env("RUST_LOG", "warn");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Proc::spawn(&format!("{name}-{label}"), cmd, socket, &env.log_dir)
    };
    // In the contract's start order (`launch::contract::PARTS`; the IdP runs already).
    let inventory = start("inventory", inventory, &[])?;
    let payment = start("payment", payment, &[])?;
    let order = start("order", order, &[("ORDER_RELAY", relay.to_owned())])?;
    let gateway = start(
        "gateway",
        gateway,
        &[
            ("GATEWAY_CLIENT_SECRET", GATEWAY_SECRET.to_owned()),
            ("GATEWAY_SESSION_KEY", env.session_key.clone()),
            ("GATEWAY_ROUTES", routes.display().to_string()),
        ],
    )?;
    let mut services = Services {
        gateway,
        order,
        payment,
        inventory,
    };
    for p in [
        &mut services.inventory,
        &mut services.payment,
        &mut services.order,
        &mut services.gateway,
    ] {
        p.wait_ready("/readyz", READY).await?;
    }
    Ok(services)
}

/// Enough stock that the bench never runs out.
pub async fn fill_stock(env: &Env) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&env.dbs.url("inventory")?).await?;
    sqlx::query!("UPDATE items SET stock = 1000000000")
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// 32 random bytes, base64: a key-encryption or session key.
pub fn random_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The IdP's state over the database at `database_url`, its keys opened with
/// `key_encryption_key`.
pub async fn idp_state(
    issuer: &str,
    database_url: &str,
    key_encryption_key: &str,
) -> anyhow::Result<idp::state::AppState> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(database_url)
        .await?;
    let mut config = idp::Config::with_issuer(issuer)?;
    config.key_encryption_key = Some(key_encryption_key.to_owned().into());
    Ok(idp::build_state(config, pool).await?)
}
