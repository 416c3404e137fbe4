//! Figure 6: the same client_credentials benchmark against panva's
//! oidc-provider (Node.js, `bench/peer/server.mjs`), one worker per CPU,
//! issuing RS256 JWT access tokens on 127.0.0.1.

use std::process::Command;
use std::time::Duration;

use anyhow::bail;

use crate::Bench;
use crate::issuance::failures;
use crate::load::{self, Sample};
use crate::oauth;
use crate::procs::{Proc, listener};
use crate::report::{Row, mib, ms, rate};

pub struct Peer {
    pub sample: Sample,
    pub rss_idle: u64,
    pub rss_load: u64,
}

pub async fn run(b: &Bench) -> anyhow::Result<Peer> {
    let dir = b.env.workspace.join("bench/peer");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        bail!(
            "bench/peer/node_modules is missing: run `npm ci --prefix bench/peer` (make bench does)"
        );
    }
    let socket = listener()?;
    let port = socket.local_addr()?.port();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("WORKERS", cpus.to_string());
    let mut peer = Proc::spawn("peer", cmd, socket, &b.env.log_dir)?;
    peer.wait_ready("/.well-known/openid-configuration", Duration::from_secs(30))
        .await?;
    // Every worker answers before measuring.
    let token_url = format!("{}/token", peer.url());
    for _ in 0..(4 * cpus) {
        oauth::client_credentials(
            &b.http,
            &token_url,
            ("bench", "bench-secret"),
            Some("orders:read"),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = peer.rss();
    let pid = peer.pid();
    let sampler = crate::PeakRss::watch(vec![("peer".into(), pid)]);
    let http = b.http.clone();
    let sample = load::closed(32, 50_000, b.secs(8), move |_| {
        let (http, url) = (http.clone(), token_url.clone());
        async move {
            oauth::client_credentials(&http, &url, ("bench", "bench-secret"), Some("orders:read"))
                .await
                .is_ok()
        }
    })
    .await;
    let rss_load = sampler.peak("peer");
    b.say(format!("peer client_credentials {}", rate(sample.rps())));
    Ok(Peer {
        sample,
        rss_idle,
        rss_load,
    })
}

pub fn rows(baton: &Sample, peer: &Peer, rows: &mut Vec<Row>) {
    let p = &peer.sample;
    rows.push(
        Row::new(
            "6",
            format!(
                "Baton POST /token client_credentials (p99 {}) vs oidc-provider",
                ms(baton.p99())
            ),
            rate(baton.rps()),
        )
        .baseline(format!(
            "panva oidc-provider {}, {} workers: {} (p50 {}, p99 {}){}; RSS idle {}, load {}",
            oidc_provider_version(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            rate(p.rps()),
            ms(p.p50()),
            ms(p.p99()),
            failures(p),
            mib(peer.rss_idle),
            mib(peer.rss_load)
        ))
        .ratio(baton.rps() / p.rps()),
    );
}

fn oidc_provider_version() -> String {
    std::fs::read_to_string("bench/peer/node_modules/oidc-provider/package.json")
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
