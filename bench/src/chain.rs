//! Figure 4: gateway → order → inventory + payment with relay and validation,
//! against the same chain built with authentication switched off (guard's
//! `bench-insecure-no-auth` feature, a separate build). The chains run side by
//! side (same IdP, same databases) and are measured in alternation, so a change
//! in the machine's load during the run weighs on all alike. Throughput in a
//! closed loop (with the CPU time the chain's processes, the IdP and
//! PostgreSQL spent per order), then latency at fixed request rates entering
//! at each hop. Figure 9 (`per_hop.rs`) adds a chain that relays plain.

use std::sync::Arc;
use std::time::Duration;

use crate::Bench;
use crate::issuance::failures;
use crate::load::{self, Sample};
use crate::procs::{cpu_time, tree_cpu};
use crate::report::{Row, ms, ms_delta, rate};
use crate::stack::Services;

/// The fixed rates (requests/s) of the latency runs.
pub const RATES: [f64; 2] = [25.0, 100.0];

const ORDER: &str = r#"{"lines":[{"sku":"jwt-stickers","quantity":1}]}"#;

/// Entry points: (name, POST an order?, path on which service).
pub const ENTRIES: [(&str, bool, Hop, &str); 6] = [
    (
        "gateway POST /api/orders (gateway → order → inventory + payment)",
        true,
        Hop::Gateway,
        "/api/orders",
    ),
    (
        "order POST /orders (order → inventory + payment)",
        true,
        Hop::Order,
        "/orders",
    ),
    (
        "gateway GET /api/inventory/items (gateway → inventory)",
        false,
        Hop::Gateway,
        "/api/inventory/items",
    ),
    (
        "order GET /orders?limit=10 (order only)",
        false,
        Hop::Order,
        "/orders?limit=10",
    ),
    (
        "inventory GET /items (inventory only)",
        false,
        Hop::Inventory,
        "/items",
    ),
    (
        "payment GET /charges?limit=10 (payment only)",
        false,
        Hop::Payment,
        "/charges?limit=10",
    ),
];

#[derive(Clone, Copy)]
pub enum Hop {
    Gateway,
    Order,
    Inventory,
    Payment,
}

pub fn url(s: &Services, hop: Hop, path: &str) -> String {
    let base = match hop {
        Hop::Gateway => s.gateway.url(),
        Hop::Order => s.order.url(),
        Hop::Inventory => s.inventory.url(),
        Hop::Payment => s.payment.url(),
    };
    format!("{base}{path}")
}

/// What one chain measured.
#[derive(Default)]
pub struct ChainRun {
    pub throughput: Sample,
    /// CPU time per order during the throughput loops: the chain's four
    /// processes, the IdP, the PostgreSQL server.
    pub cpu: [Duration; 3],
    /// Per rate, per entry (same order as `RATES` × `ENTRIES`).
    pub entries: Vec<Sample>,
}

impl ChainRun {
    /// "CPU per order: services 1.20 ms, IdP 0.01 ms, PostgreSQL 2.10 ms".
    pub fn cpu_text(&self) -> String {
        let [services, idp, postgres] = self.cpu.map(ms);
        format!("CPU per order: services {services}, IdP {idp}, PostgreSQL {postgres}")
    }

    /// The sample of entry `e` at rate `r` (indices into `RATES`, `ENTRIES`).
    pub fn entry(&self, r: usize, e: usize) -> &Sample {
        &self.entries[r * ENTRIES.len() + e]
    }
}

/// CPU times of the chain's processes, the IdP and PostgreSQL, now.
fn cpu_now(b: &Bench, s: &Services) -> [Duration; 3] {
    [
        s.all().iter().map(|p| cpu_time(p.pid())).sum(),
        cpu_time(b.idp.proc.pid()),
        b.postgres.map_or(Duration::ZERO, tree_cpu),
    ]
}

pub type Call = Box<
    dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync,
>;

/// Customers' access tokens, used in turn, and how they are presented.
#[derive(Clone)]
pub struct Tokens {
    values: Arc<[String]>,
    /// DPoP-bound to [`crate::oauth::cli_key`]: sent as `DPoP` with a fresh
    /// proof per request (as a real DPoP client does); else as `Bearer`.
    bound: bool,
}

impl Tokens {
    pub fn new(values: Vec<String>, bound: bool) -> Self {
        Self {
            values: values.into(),
            bound,
        }
    }

    /// The tokens themselves.
    pub fn into_values(self) -> Arc<[String]> {
        self.values
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// The `Authorization` value of token `i` (modulo their number), and its
    /// DPoP proof for `method` at `url` when bound.
    fn present(&self, i: u64, method: &str, url: &str) -> (String, Option<String>) {
        let token = &self.values[i as usize % self.values.len()];
        match self.bound {
            true => (
                format!("DPoP {token}"),
                Some(crate::oauth::cli_key().proof(method, url, Some(token))),
            ),
            false => (format!("Bearer {token}"), None),
        }
    }
}

/// Request `i` sends the `i`-th of `tokens` (in turn).
pub fn call(b: &Bench, post: bool, url: String, tokens: &Tokens) -> Call {
    let http = b.http.clone();
    let tokens = tokens.clone();
    Box::new(move |i| {
        let (http, url) = (http.clone(), url.clone());
        let (auth, proof) = tokens.present(i, if post { "POST" } else { "GET" }, &url);
        Box::pin(async move {
            let req = if post {
                http.post(&url)
                    .header("content-type", "application/json")
                    .body(ORDER)
            } else {
                http.get(&url)
            };
            let req = req.header("authorization", auth);
            let req = match proof {
                Some(proof) => req.header("dpop", proof),
                None => req,
            };
            match req.send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    })
}

/// Every token through every entry once at least, so that the measured loops
/// find the exchanged tokens cached (as a busy chain does).
async fn warm_up(b: &Bench, s: &Services, tokens: &Tokens) -> anyhow::Result<()> {
    let requests = 20.max(tokens.len() as u64);
    for (name, post, hop, path) in ENTRIES {
        let warm = load::closed(
            4,
            requests,
            b.secs(10),
            call(b, post, url(s, hop, path), tokens),
        )
        .await;
        if warm.failed > 0 {
            anyhow::bail!(
                "{name}: {} of {requests} failed; gateway log:\n{}\norder log:\n{}",
                warm.failed,
                s.gateway.tail(),
                s.order.tail()
            );
        }
    }
    Ok(())
}

/// Measures `chains` (the first with authentication, the others its
/// baselines) in alternation, each with its customers' tokens used in turn.
pub async fn run(b: &Bench, chains: &[(&Services, &Tokens)]) -> anyhow::Result<Vec<ChainRun>> {
    for (s, tokens) in chains {
        warm_up(b, s, tokens).await?;
    }
    let mut runs: Vec<ChainRun> = chains.iter().map(|_| ChainRun::default()).collect();
    // Throughput: two rounds of 4 s each, alternating.
    let mut cpu = vec![[Duration::ZERO; 3]; chains.len()];
    for _ in 0..2 {
        for ((&(s, tokens), run), cpu) in chains.iter().zip(runs.iter_mut()).zip(cpu.iter_mut()) {
            let gateway = url(s, Hop::Gateway, "/api/orders");
            let before = cpu_now(b, s);
            let sample = load::closed(16, 100_000, b.secs(4), call(b, true, gateway, tokens)).await;
            let after = cpu_now(b, s);
            for (spent, (end, start)) in cpu.iter_mut().zip(after.into_iter().zip(before)) {
                *spent += end.saturating_sub(start);
            }
            run.throughput = std::mem::take(&mut run.throughput).merge(sample);
        }
    }
    for (run, cpu) in runs.iter_mut().zip(cpu) {
        let orders = run.throughput.ok.max(1) as u32;
        run.cpu = cpu.map(|c| c / orders);
    }
    b.say(format!(
        "chain throughput {}",
        runs.iter()
            .map(|r| format!("{} ({})", rate(r.throughput.rps()), r.cpu_text()))
            .collect::<Vec<_>>()
            .join(" vs ")
    ));
    for rate_ in RATES {
        for (_, post, hop, path) in ENTRIES {
            let mut samples: Vec<Sample> = chains.iter().map(|_| Sample::default()).collect();
            for _ in 0..2 {
                for (&(s, tokens), merged) in chains.iter().zip(samples.iter_mut()) {
                    let sample = load::fixed_rate(
                        rate_,
                        b.secs(3),
                        512,
                        call(b, post, url(s, hop, path), tokens),
                    )
                    .await;
                    *merged = std::mem::take(merged).merge(sample);
                }
            }
            for (run, sample) in runs.iter_mut().zip(samples) {
                run.entries.push(sample);
            }
        }
    }
    Ok(runs)
}

/// p50 latency `on` adds over `off` at each hop, from the read entries at
/// rate index `r` (the gateway's share is its entry minus inventory's, since
/// it relays to inventory), in seconds.
pub fn added_per_hop(on: &ChainRun, off: &ChainRun, r: usize) -> [(&'static str, f64); 4] {
    let added = |e: usize| on.entry(r, e).p50().as_secs_f64() - off.entry(r, e).p50().as_secs_f64();
    [
        ("gateway", added(2) - added(4)),
        ("order", added(3)),
        ("inventory", added(4)),
        ("payment", added(5)),
    ]
}

/// "gateway +0.12 ms, order -0.30 ms, ...".
pub fn hops_text(hops: &[(&str, f64)]) -> String {
    hops.iter()
        .map(|(hop, v)| format!("{hop} {:+.2} ms", v * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of figure 4; `off` is absent when the auth-off build is not available.
pub fn rows(on: &ChainRun, off: Option<&ChainRun>, rows: &mut Vec<Row>) {
    let t = &on.throughput;
    let mut row = Row::new(
        "4",
        format!(
            "chain throughput with relay + validation (POST /api/orders, 16 in flight, p50 {}, p99 {}){}",
            ms(t.p50()),
            ms(t.p99()),
            failures(t)
        ),
        rate(t.rps()),
    );
    match off {
        Some(off) => {
            let o = &off.throughput;
            let ratio = t.rps() / o.rps();
            row = row
                .baseline(format!(
                    "auth off: {} (p50 {}, p99 {}){}",
                    rate(o.rps()),
                    ms(o.p50()),
                    ms(o.p99()),
                    failures(o)
                ))
                .ratio(ratio)
                .target(
                    "cost <= 15 % (ratio >= 85 %)",
                    ratio >= 0.85 && t.failed == 0,
                );
        }
        None => row = row.baseline("auth-off build not available"),
    }
    rows.push(row);
    for (r, rate_) in RATES.iter().enumerate() {
        for (e, (name, ..)) in ENTRIES.iter().enumerate() {
            let i = r * ENTRIES.len() + e;
            let s = &on.entries[i];
            let mut row = Row::new(
                "4",
                format!("{name} at {rate_:.0}/s: p50 / p99{}", failures(s)),
                format!("{} / {}", ms(s.p50()), ms(s.p99())),
            );
            if let Some(o) = off.and_then(|off| off.entries.get(i)) {
                row = row.baseline(format!(
                    "auth off {} / {}; added {} / {}{}",
                    ms(o.p50()),
                    ms(o.p99()),
                    ms_delta(s.p50(), o.p50()),
                    ms_delta(s.p99(), o.p99()),
                    failures(o)
                ));
            }
            rows.push(row);
        }
    }
    // Per hop, from the read entries at each rate: what relay + validation add.
    if let Some(off) = off {
        for (r, rate_) in RATES.iter().enumerate() {
            rows.push(
                Row::new(
                    "4",
                    format!("p50 latency added per hop by relay + validation, at {rate_:.0}/s"),
                    hops_text(&added_per_hop(on, off, r)),
                )
                .baseline("from the read entries above (auth on − auth off)"),
            );
        }
    }
}
