//! `baton-bench`: starts Baton's release binaries (and panva's oidc-provider)
//! on 127.0.0.1, measures every figure of issue 7 (figure 8 of issue 13,
//! figure 9 of issue 14)
//! against its baseline in the same run, prints the table and writes
//! `bench/results.md`. `make bench` builds everything and runs it.

mod chain;
mod cpu;
mod flood;
mod floor;
mod issuance;
mod load;
mod oauth;
mod peer;
mod per_hop;
mod procs;
mod report;
mod revocation;
mod stack;
mod validation;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::load::Sample;
use crate::procs::{Databases, tree_rss};
use crate::report::{Row, mib};
use crate::stack::{Env, Idp};

#[derive(Parser)]
#[command(
    name = "baton-bench",
    about = "Baton's throughput, latency and memory figures"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Release binaries of idp, gateway, order, payment, inventory.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The same binaries built with guard's `bench-insecure-no-auth` feature
    /// (the chain's auth-off baseline); skipped when absent.
    #[arg(long)]
    insecure_bin_dir: Option<PathBuf>,
    /// Where to write the results.
    #[arg(long, default_value = "bench/results.md")]
    out: PathBuf,
    /// PostgreSQL server (its databases are created and dropped by the run).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Short loops (a smoke test of the bench itself; the numbers mean little).
    #[arg(long)]
    quick: bool,
    /// Skip the oidc-provider peer.
    #[arg(long)]
    no_peer: bool,
    /// Run only these figures (comma-separated numbers, e.g. `--only 1,3`),
    /// to iterate on one figure; a full run measures them all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
}

impl Args {
    fn wants(&self, figure: u8) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// (internal) the endpoint server of figure 3.
    #[command(hide = true)]
    ValidationServer {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        cache: u64,
    },
    /// (internal) the grant floor server of figures 1 and 9.
    #[command(hide = true)]
    GrantFloorServer {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        idp_database: String,
    },
}

/// What every figure needs.
pub struct Bench {
    pub env: Env,
    pub idp: Idp,
    pub http: reqwest::Client,
    pub quick: bool,
    /// The local PostgreSQL server's postmaster, for [`cpu::Split`].
    pub postgres: Option<u32>,
    samples: Mutex<HashMap<&'static str, Sample>>,
}

impl Bench {
    /// A loop's time bound (a tenth of it with `--quick`).
    pub fn secs(&self, s: u64) -> Duration {
        if self.quick {
            Duration::from_millis(s * 100)
        } else {
            Duration::from_secs(s)
        }
    }

    pub fn say(&self, line: String) {
        eprintln!("  {line}");
    }

    pub fn remember(&self, name: &'static str, s: &Sample) {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, s.clone());
    }

    fn recall(&self, name: &'static str) -> Option<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// Peak resident memory of some processes, sampled every 100 ms until dropped.
pub struct PeakRss {
    peaks: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn watch(pids: Vec<(String, u32)>) -> PeakRss {
        let peaks = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn({
            let peaks = peaks.clone();
            async move {
                loop {
                    for (name, pid) in &pids {
                        let rss = tree_rss(*pid);
                        let mut p = peaks.lock().unwrap_or_else(|e| e.into_inner());
                        let e = p.entry(name.clone()).or_insert(0);
                        *e = (*e).max(rss);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        PeakRss { peaks, task }
    }

    pub fn peak(&self, name: &str) -> u64 {
        *self
            .peaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .unwrap_or(&0)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Cmd::ValidationServer { issuer, cache }) => return validation::serve(issuer, *cache),
        Some(Cmd::GrantFloorServer {
            issuer,
            idp_database,
        }) => return floor::serve(issuer, idp_database),
        None => {}
    }
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let workspace = std::env::current_dir()?;
    let dbs = Databases::new(&args.database_url);
    let log_dir = workspace.join("target/bench-logs").join(&dbs.prefix);
    std::fs::create_dir_all(&log_dir)?;
    let env = Env {
        workspace,
        log_dir,
        dbs,
        key_encryption_key: stack::random_key(),
        session_key: stack::random_key(),
    };
    let load_before = report::load_average();
    eprintln!("baton-bench: logs in {}", env.log_dir.display());
    let dbs = env.dbs.clone();
    let result = measure(&args, env).await;
    // The databases go, whether the run succeeded or not (the processes
    // using them were stopped when `measure` returned).
    if let Err(e) = dbs.drop_all().await {
        eprintln!(
            "baton-bench: could not drop the databases {}_*: {e}",
            dbs.prefix
        );
    }
    let rows = result?;
    let load_after = report::load_average();
    let table = report::table(&rows);
    println!("\n{table}");
    let doc = format!(
        "# Baton benchmark results\n\nWritten by `make bench` ({}). Every figure is measured in the same run as its \
         baseline, on 127.0.0.1, release builds; each loop is bounded in requests and time. See \
         [README.md](README.md) for what each figure means and what limits it.\n\n## Machine\n\n{}- load average \
         (1/5/15 min) before: {load_before}; after: {load_after}\n\n## Results\n\n{table}",
        if args.quick {
            "`--quick`: short loops, numbers indicative only".to_owned()
        } else if !args.only.is_empty() {
            format!("partial run, figures {:?} only", args.only)
        } else {
            "full run".to_owned()
        },
        report::machine(),
    );
    std::fs::write(&args.out, doc)?;
    eprintln!("baton-bench: wrote {}", args.out.display());
    Ok(())
}

/// Runs every figure.
async fn measure(args: &Args, env: Env) -> anyhow::Result<Vec<Row>> {
    let gateway = procs::listener()?;
    let gateway_origin = stack::origin(&gateway)?;
    eprintln!("starting idp and services ({})", args.bin_dir.display());
    let idp = stack::start_idp(&env, &args.bin_dir, &gateway_origin).await?;
    let services = stack::start_services(
        &env,
        &args.bin_dir,
        "auth",
        &idp.issuer,
        gateway,
        "exchange",
    )
    .await?;
    stack::fill_stock(&env).await?;
    let bench = Bench {
        env,
        idp,
        http: oauth::http_client(),
        quick: args.quick,
        postgres: cpu::postgres_pid(&args.database_url).await,
        samples: Mutex::new(HashMap::new()),
    };
    let b = &bench;
    let mut rows = Vec::new();

    // 5 (idle): after start-up and one settled second, before any load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut procs: Vec<(String, u32)> = vec![("idp".into(), b.idp.proc.pid())];
    procs.extend(services.all().iter().map(|p| {
        let name = p.name.trim_end_matches("-auth").to_owned();
        (name, p.pid())
    }));
    let idle: Vec<(String, u64)> = procs
        .iter()
        .map(|(n, pid)| (n.clone(), tree_rss(*pid)))
        .collect();
    let peaks = PeakRss::watch(procs.clone());

    let idp_rss = |phase: &str| {
        b.say(format!("idp RSS after {phase}: {}", mib(b.idp.proc.rss())));
    };
    if args.wants(1) {
        eprintln!("1. token endpoint");
        issuance::token_endpoint(b, &mut rows).await?;
        idp_rss("1");
    }
    if args.wants(2) {
        eprintln!("2. login");
        issuance::login(b, &mut rows).await?;
        idp_rss("2");
    }
    if args.wants(3) {
        eprintln!("3. validation");
        validation::run(b, &mut rows).await?;
    }
    let mut revocation_rows = Vec::new();
    if args.wants(7) {
        eprintln!("7. revocation propagation");
        revocation::run(b, &services, &mut revocation_rows).await?;
        idp_rss("7");
    }
    if args.wants(4) || args.wants(9) {
        let off = match &args.insecure_bin_dir {
            Some(dir) => {
                eprintln!("   starting the auth-off chain ({})", dir.display());
                let gateway = procs::listener()?;
                Some(
                    stack::start_services(&b.env, dir, "noauth", &b.idp.issuer, gateway, "plain")
                        .await?,
                )
            }
            None => None,
        };
        // Figure 9's chain with authentication that relays plain.
        let plain = match args.wants(9) {
            true => {
                let gateway = procs::listener()?;
                let bin_dir = &args.bin_dir;
                Some(
                    stack::start_services(
                        &b.env,
                        bin_dir,
                        "plain",
                        &b.idp.issuer,
                        gateway,
                        "plain",
                    )
                    .await?,
                )
            }
            false => None,
        };
        eprintln!("4/9. chain: per-hop exchange, plain relay, auth off, alternating");
        // API clients' DPoP-bound tokens for per-hop exchange; plain relay
        // (and auth off) get what a plain route relays: a browser session's
        // tokens, issued to the gateway's client and bound to no key.
        let relayable = oauth::UserClient::gateway(&services.gateway.url());
        let cli = oauth::UserClient::cli();
        let bound = per_hop::customer_tokens(b, &cli, per_hop::CHAIN_TOKENS).await?;
        let unbound = per_hop::customer_tokens(b, &relayable, per_hop::CHAIN_TOKENS).await?;
        let chains: Vec<(&stack::Services, &chain::Tokens)> = std::iter::once((&services, &bound))
            .chain(plain.iter().map(|p| (p, &unbound)))
            .chain(off.iter().map(|o| (o, &unbound)))
            .collect();
        let mut runs = chain::run(b, &chains).await?.into_iter();
        let on = runs.next().unwrap_or_default();
        let plain_run = plain.as_ref().map(|_| runs.next().unwrap_or_default());
        let off_run = runs.next();
        if args.wants(4) {
            chain::rows(&on, off_run.as_ref(), &mut rows);
        }
        if let (Some(plain), Some(plain_run)) = (&plain, &plain_run) {
            per_hop::chain_rows(&on, plain_run, off_run.as_ref(), &mut rows);
            eprintln!("9. first order of new tokens; token exchange grants");
            per_hop::first_order_rows(b, &services, plain, &relayable, &mut rows).await?;
            per_hop::exchange_grants(b, &mut rows).await?;
        }
        drop(plain);
        drop(off);
    }

    // 5 (under load): the peaks over the figures above.
    for (name, rss) in idle.iter().filter(|_| args.wants(5)) {
        let limit = if name == "idp" {
            60_000_000
        } else {
            30_000_000
        };
        rows.push(
            Row::new("5", format!("{name} RSS idle"), mib(*rss))
                .baseline(format!("peak under load {}", mib(peaks.peak(name))))
                .target(format!("idle <= {}", mib(limit)), *rss <= limit),
        );
    }
    drop(peaks);
    drop(services);

    if !args.no_peer && args.wants(6) {
        eprintln!("6. peer (oidc-provider)");
        let peer = peer::run(b).await?;
        if let Some(cc) = b.recall("baton_cc") {
            peer::rows(&cc, &peer, &mut rows);
        }
    }
    if args.wants(8) {
        eprintln!("8. sign-in during a wrong-password flood");
        flood::run(b, &mut rows).await?;
        idp_rss("8");
    }
    rows.extend(revocation_rows);
    // Order the table by figure number.
    rows.sort_by_key(|r| r.section);
    Ok(rows)
}
