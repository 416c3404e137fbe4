//! Figure 3: a guarded endpoint against the same endpoint unguarded, with and
//! without the verified-token cache. The endpoints run in a separate process
//! (this binary's hidden `validation-server` command) on one runtime thread,
//! so its CPU time per request is measured apart from the load generator's.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use guard::{Guard, GuardConfig, Principal};

use crate::Bench;
use crate::issuance::failures;
use crate::load::{self, Sample};
use crate::oauth;
use crate::procs::{Proc, cpu_time, listener};
use crate::report::{Row, ms, rate};
use crate::stack::REPORTER;

/// The server: `GET /open` (no token read) and `GET /guarded` (the
/// `Principal` extractor: full validation), the same tiny body; on the
/// socket the bench passed (`platform::server::listener`), else an
/// ephemeral loopback port.
pub fn serve(issuer: &str, cache: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let guard = Guard::new(GuardConfig::new(issuer, "order").with_cache_capacity(cache));
        if !guard.wait_ready(Duration::from_secs(30)).await {
            anyhow::bail!("no keys from {issuer}");
        }
        let app = Router::new()
            .route("/open", get(|| async { "ok" }))
            .route("/guarded", get(|_: Principal| async { "ok" }))
            .with_state(guard);
        let listener = platform::server::listener(([127, 0, 0, 1], 0).into()).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

struct Measured {
    sample: Sample,
    /// Server CPU time per successful request.
    cpu: Duration,
}

async fn measure(b: &Bench, server: &Proc, path: &str, token: &str) -> Measured {
    let http = b.http.clone();
    let url = format!("{}{path}", server.url());
    let auth = format!("Bearer {token}");
    let before = cpu_time(server.pid());
    let sample = load::closed(32, 500_000, b.secs(5), move |_| {
        let (http, url, auth) = (http.clone(), url.clone(), auth.clone());
        async move {
            match http.get(&url).header("authorization", auth).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    let cpu = (cpu_time(server.pid()) - before) / (sample.ok.max(1) as u32);
    Measured { sample, cpu }
}

async fn start(b: &Bench, cache: u64) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "validation-server",
        "--issuer",
        &b.idp.issuer,
        "--cache",
        &cache.to_string(),
    ]);
    let name = format!("validation-cache-{cache}");
    let mut p = Proc::spawn(&name, cmd, listener()?, &b.env.log_dir)?;
    p.wait_ready("/open", Duration::from_secs(30)).await?;
    Ok(p)
}

pub async fn run(b: &Bench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let token = oauth::client_credentials(
        &b.http,
        &format!("{}/token", b.idp.issuer),
        REPORTER,
        Some("orders:read"),
    )
    .await?;
    let cached = start(b, 10_000).await?;
    let open = measure(b, &cached, "/open", &token).await;
    let hot = measure(b, &cached, "/guarded", &token).await;
    drop(cached);
    let uncached = start(b, 0).await?;
    let cold = measure(b, &uncached, "/guarded", &token).await;
    drop(uncached);
    b.say(format!(
        "validation: open {}, cached {}, uncached {}",
        rate(open.sample.rps()),
        rate(hot.sample.rps()),
        rate(cold.sample.rps())
    ));
    let baseline = format!(
        "unguarded: {} (p50 {}, p99 {}, server CPU {:.1} µs/req)",
        rate(open.sample.rps()),
        ms(open.sample.p50()),
        ms(open.sample.p99()),
        micros(open.cpu)
    );
    for (name, m, target) in [
        ("guarded, verified-token cache", &hot, Some(0.90)),
        ("guarded, no cache (RS256 verify each time)", &cold, None),
    ] {
        let ratio = m.sample.rps() / open.sample.rps();
        let mut row = Row::new(
            "3",
            format!(
                "{name} (p50 {}, p99 {}, server CPU {:.1} µs/req: {:.0} % of the unguarded capacity per core){}",
                ms(m.sample.p50()),
                ms(m.sample.p99()),
                micros(m.cpu),
                100.0 * micros(open.cpu) / micros(m.cpu).max(1e-9),
                failures(&m.sample)
            ),
            rate(m.sample.rps()),
        )
        .baseline(baseline.clone())
        .ratio(ratio);
        if let Some(t) = target {
            row = row.target(">= 90 % of unguarded", ratio >= t && m.sample.failed == 0);
        }
        rows.push(row);
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
