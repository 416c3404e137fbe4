//! Figure 4: gateway → order → inventory + payment with relay and validation,
//! against the same chain built with authentication switched off (guard's
//! `bench-insecure-no-auth` feature, a separate build). Both chains run side by
//! side (same IdP, same databases) and are measured in alternation, so a change
//! in the machine's load during the run weighs on both alike. Throughput in a
//! closed loop, then latency at fixed request rates entering at each hop.

use crate::Bench;
use crate::issuance::failures;
use crate::load::{self, Sample};
use crate::report::{Row, ms, ms_delta, rate};
use crate::stack::Services;

/// The fixed rates (requests/s) of the latency runs.
pub const RATES: [f64; 2] = [25.0, 100.0];

const ORDER: &str = r#"{"lines":[{"sku":"jwt-stickers","quantity":1}]}"#;

/// Entry points: (name, POST an order?, path on which service).
const ENTRIES: [(&str, bool, Hop, &str); 6] = [
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
enum Hop {
    Gateway,
    Order,
    Inventory,
    Payment,
}

fn url(s: &Services, hop: Hop, path: &str) -> String {
    let base = match hop {
        Hop::Gateway => s.gateway.url(),
        Hop::Order => s.order.url(),
        Hop::Inventory => s.inventory.url(),
        Hop::Payment => s.payment.url(),
    };
    format!("{base}{path}")
}

/// What one chain (auth on or off) measured.
#[derive(Default)]
pub struct ChainRun {
    pub throughput: Sample,
    /// Per rate, per entry (same order as `RATES` × `ENTRIES`).
    pub entries: Vec<Sample>,
}

type Call = Box<
    dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync,
>;

/// `token` is the `cli` client's, DPoP-bound: each call carries a fresh
/// proof of its key (as a real DPoP client does).
fn call(b: &Bench, post: bool, url: String, token: &str) -> Call {
    let http = b.http.clone();
    let auth = format!("DPoP {token}");
    let token: std::sync::Arc<str> = token.into();
    Box::new(move |_| {
        let (http, url, auth, token) = (http.clone(), url.clone(), auth.clone(), token.clone());
        Box::pin(async move {
            let (req, method) = if post {
                let req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(ORDER);
                (req, "POST")
            } else {
                (http.get(&url), "GET")
            };
            let proof = crate::oauth::cli_key().proof(method, &url, Some(&token));
            match req
                .header("authorization", auth)
                .header("dpop", proof)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    })
}

async fn warm_up(b: &Bench, s: &Services, token: &str) -> anyhow::Result<()> {
    for (name, post, hop, path) in ENTRIES {
        let warm = load::closed(4, 20, b.secs(10), call(b, post, url(s, hop, path), token)).await;
        if warm.failed > 0 {
            anyhow::bail!(
                "{name}: {} of 20 failed; gateway log:\n{}\norder log:\n{}",
                warm.failed,
                s.gateway.tail(),
                s.order.tail()
            );
        }
    }
    Ok(())
}

/// Measures the chain `on` (and `off`, alternating with it) with `token`, a customer's token.
pub async fn run(
    b: &Bench,
    on: &Services,
    off: Option<&Services>,
    token: &str,
) -> anyhow::Result<(ChainRun, Option<ChainRun>)> {
    warm_up(b, on, token).await?;
    if let Some(off) = off {
        warm_up(b, off, token).await?;
    }
    let chains: Vec<&Services> = std::iter::once(on).chain(off).collect();
    let mut runs: Vec<ChainRun> = chains.iter().map(|_| ChainRun::default()).collect();
    // Throughput: two rounds of 4 s each, alternating.
    for _ in 0..2 {
        for (s, run) in chains.iter().zip(runs.iter_mut()) {
            let gateway = url(s, Hop::Gateway, "/api/orders");
            let sample = load::closed(16, 100_000, b.secs(4), call(b, true, gateway, token)).await;
            run.throughput = std::mem::take(&mut run.throughput).merge(sample);
        }
    }
    b.say(format!(
        "chain throughput {}",
        runs.iter()
            .map(|r| rate(r.throughput.rps()))
            .collect::<Vec<_>>()
            .join(" vs auth off ")
    ));
    for rate_ in RATES {
        for (_, post, hop, path) in ENTRIES {
            let mut samples: Vec<Sample> = chains.iter().map(|_| Sample::default()).collect();
            for _ in 0..2 {
                for (s, merged) in chains.iter().zip(samples.iter_mut()) {
                    let sample = load::fixed_rate(
                        rate_,
                        b.secs(3),
                        512,
                        call(b, post, url(s, hop, path), token),
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
    let mut runs = runs.into_iter();
    let on = runs.next().unwrap_or_default();
    Ok((on, runs.next()))
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
    // Per hop, from the read entries at each rate: what relay + validation add
    // at each hop (p50 differences; the gateway's share is its entry minus
    // inventory's, since it relays to inventory).
    if let Some(off) = off {
        for (r, rate_) in RATES.iter().enumerate() {
            let added = |e: usize| {
                let i = r * ENTRIES.len() + e;
                on.entries[i].p50().as_secs_f64() - off.entries[i].p50().as_secs_f64()
            };
            let hops = [
                ("gateway", added(2) - added(4)),
                ("order", added(3)),
                ("inventory", added(4)),
                ("payment", added(5)),
            ];
            let text: Vec<String> = hops
                .iter()
                .map(|(hop, v)| format!("{hop} {:+.2} ms", v * 1000.0))
                .collect();
            rows.push(
                Row::new(
                    "4",
                    format!("p50 latency added per hop by relay + validation, at {rate_:.0}/s"),
                    text.join(", "),
                )
                .baseline("from the read entries above (auth on − auth off)"),
            );
        }
    }
}
