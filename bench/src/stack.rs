//! Baton's processes for the bench: the IdP (seeded demo realm) and the four
//! services of the chain, from release binaries, on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::procs::{Databases, Proc, free_port};

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

/// Seeds the demo realm and starts `idp serve`.
pub async fn start_idp(env: &Env, bin_dir: &Path, gateway_origin: &str) -> anyhow::Result<Idp> {
    let port = free_port()?;
    let issuer = format!("http://127.0.0.1:{port}");
    let idp = binary(bin_dir, "idp")?;
    let base = |cmd: &mut Command| -> anyhow::Result<()> {
        cmd.current_dir(&env.workspace)
            .env("IDP_DATABASE_URL", env.dbs.url("idp")?)
            .env("IDP_KEY_ENCRYPTION_KEY", &env.key_encryption_key)
            .env("IDP_ISSUER", &issuer)
            .env("RUST_LOG", "warn");
        Ok(())
    };
    let mut seed = Command::new(&idp);
    seed.arg("seed")
        .env("IDP_SEED_GATEWAY_URL", gateway_origin)
        .env("IDP_SEED_GATEWAY_SECRET", GATEWAY_SECRET);
    base(&mut seed)?;
    let out = seed.output().context("run `idp seed`")?;
    if !out.status.success() {
        bail!("idp seed failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut serve = Command::new(&idp);
    serve
        .arg("serve")
        .env("IDP_BIND", format!("127.0.0.1:{port}"))
        // Metrics on an ephemeral port: the default (port + 1000) may be taken.
        .env("IDP_METRICS_BIND", "127.0.0.1:0")
        // One hour: a token taken at the start stays valid for the whole run.
        .env("IDP_ACCESS_TOKEN_TTL_SECS", "3600")
        // The bench's own address is a "proxy": figure 8's flood picks its
        // source addresses with X-Forwarded-For; the other figures send none.
        .env("IDP_TRUSTED_PROXIES", "127.0.0.1");
    base(&mut serve)?;
    let mut proc = Proc::spawn("idp", port, serve, &env.log_dir)?;
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
/// (`label` names their logs) on `gateway_port`; the gateway's routes and
/// order relay tokens as `relay` says (`exchange` or `plain`).
pub async fn start_services(
    env: &Env,
    bin_dir: &Path,
    label: &str,
    issuer: &str,
    gateway_port: u16,
    relay: &str,
) -> anyhow::Result<Services> {
    let routes = routes(env, relay)?;
    let start = |name: &str, port: u16, extra: &[(&str, String)]| -> anyhow::Result<Proc> {
        let upper = name.to_ascii_uppercase();
        let mut cmd = Command::new(binary(bin_dir, name)?);
        cmd.current_dir(&env.workspace)
            .env(format!("{upper}_BIND"), format!("127.0.0.1:{port}"))
            .env(format!("{upper}_METRICS_BIND"), "127.0.0.1:0")
            .env(format!("{upper}_DATABASE_URL"), env.dbs.url(name)?)
            .env("GUARD_ISSUER", issuer)
            .env("RUST_LOG", "warn");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Proc::spawn(&format!("{name}-{label}"), port, cmd, &env.log_dir)
    };
    let inventory = start("inventory", free_port()?, &[])?;
    let payment = start("payment", free_port()?, &[])?;
    let order = start(
        "order",
        free_port()?,
        &[
            ("ORDER_INVENTORY_URL", inventory.url()),
            ("ORDER_PAYMENT_URL", payment.url()),
            ("ORDER_RELAY", relay.to_owned()),
        ],
    )?;
    let gateway = start(
        "gateway",
        gateway_port,
        &[
            (
                "GATEWAY_PUBLIC_URL",
                format!("http://127.0.0.1:{gateway_port}"),
            ),
            ("GATEWAY_ISSUER", issuer.to_owned()),
            ("GATEWAY_CLIENT_SECRET", GATEWAY_SECRET.to_owned()),
            ("GATEWAY_SESSION_KEY", env.session_key.clone()),
            ("GATEWAY_ROUTES", routes.display().to_string()),
            ("GATEWAY_ORDER_URL", order.url()),
            ("GATEWAY_PAYMENT_URL", payment.url()),
            ("GATEWAY_INVENTORY_URL", inventory.url()),
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
