//! Figure 9 (issue 14): what per-hop tokens cost. Three chains side by side,
//! measured in alternation by [`chain::run`]: per-hop exchange (the gateway
//! exchanges the caller's token for order, order for inventory and payment),
//! plain relay (the caller's token goes on as is), and authentication off
//! (figure 4's insecure build). Each is loaded with the tokens of 16 sign-ins
//! used in turn, so exchanged tokens are cached as in a busy chain; the first
//! order of a new token (three exchanges on the way) is measured apart. And
//! the IdP's token-exchange grant against the raw signing rate of its key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::Bench;
use crate::chain::{self, ChainRun, ENTRIES, Hop, RATES, Tokens};
use crate::cpu;
use crate::floor;
use crate::issuance::{against_floor, against_signing, failures, in_process_idp, raw_signing_rate};
use crate::load::{self, Sample};
use crate::oauth::{self, UserClient};
use crate::report::{Row, ms, rate, us};
use crate::stack::Services;

/// Customers' tokens the chains are loaded with, used in turn.
pub const CHAIN_TOKENS: usize = 16;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The client that exchanges in the grant loop (as order does in the chain).
const ORDER_CLIENT: (&str, &str) = ("order", "order-dev-secret");

/// `n` access tokens of alice issued to `client`, each with its own `jti`:
/// one sign-in, then refresh grants.
pub async fn customer_tokens(b: &Bench, client: &UserClient, n: usize) -> anyhow::Result<Tokens> {
    let (first, mut refresh) =
        oauth::login_tokens(&b.http, client, &b.idp.issuer, "alice", "alice-password").await?;
    let token_url = format!("{}/token", b.idp.issuer);
    let mut tokens = vec![first];
    while tokens.len() < n {
        let (access, next) = oauth::refresh(&b.http, client, &token_url, &refresh, None).await?;
        tokens.push(access);
        refresh = next;
    }
    Ok(Tokens::new(tokens, client.binds()))
}

/// The rows of the three chains: throughput against auth off, and per-hop
/// latency at the higher rate.
pub fn chain_rows(
    exchange: &ChainRun,
    plain: &ChainRun,
    off: Option<&ChainRun>,
    rows: &mut Vec<Row>,
) {
    let baseline = off.unwrap_or(plain);
    let base_name = if off.is_some() {
        "auth off"
    } else {
        "plain relay (auth-off build not available)"
    };
    let b = &baseline.throughput;
    for (name, run) in [("per-hop exchange", exchange), ("plain relay", plain)] {
        let t = &run.throughput;
        let ratio = t.rps() / b.rps();
        let mut row = Row::new(
            "9",
            format!(
                "chain throughput, {name} (POST /api/orders, 16 in flight, p50 {}, p99 {}; {}){}",
                ms(t.p50()),
                ms(t.p99()),
                run.cpu_text(),
                failures(t)
            ),
            rate(t.rps()),
        )
        .baseline(format!(
            "{base_name}: {} (p50 {}, p99 {}; {}){}",
            rate(b.rps()),
            ms(b.p50()),
            ms(b.p99()),
            baseline.cpu_text(),
            failures(b)
        ))
        .ratio(ratio);
        if name == "per-hop exchange" && off.is_some() {
            row = row.target(
                "cost <= 15 % (ratio >= 85 %)",
                ratio >= 0.85 && t.failed == 0,
            );
        }
        rows.push(row);
    }
    let r = RATES.len() - 1;
    let rate_ = RATES[r];
    for (e, (name, ..)) in ENTRIES.iter().enumerate() {
        let (x, p) = (exchange.entry(r, e), plain.entry(r, e));
        let mut baseline = format!("plain {} / {}{}", ms(p.p50()), ms(p.p99()), failures(p));
        if let Some(off) = off {
            let o = off.entry(r, e);
            baseline += &format!(
                "; auth off {} / {}{}",
                ms(o.p50()),
                ms(o.p99()),
                failures(o)
            );
        }
        rows.push(
            Row::new(
                "9",
                format!(
                    "{name} at {rate_:.0}/s, per-hop exchange: p50 / p99{}",
                    failures(x)
                ),
                format!("{} / {}", ms(x.p50()), ms(x.p99())),
            )
            .baseline(baseline),
        );
    }
    if let Some(off) = off {
        for (name, run) in [("per-hop exchange", exchange), ("plain relay", plain)] {
            rows.push(
                Row::new(
                    "9",
                    format!("p50 latency added per hop by {name} + validation, at {rate_:.0}/s"),
                    chain::hops_text(&chain::added_per_hop(run, off, r)),
                )
                .baseline("from the entries above (minus auth off)"),
            );
        }
    }
}

/// The first order of each of `n` new tokens of `client` through `s` (4 in
/// flight): with per-hop exchange, none of its tokens is cached yet.
async fn first_orders(
    b: &Bench,
    s: &Services,
    client: &UserClient,
    n: usize,
) -> anyhow::Result<Sample> {
    let tokens = customer_tokens(b, client, n).await?;
    let gateway = chain::url(s, Hop::Gateway, "/api/orders");
    Ok(load::closed(
        4,
        n as u64,
        b.secs(30),
        chain::call(b, true, gateway, &tokens),
    )
    .await)
}

/// The first order of new tokens, per-hop exchange (API clients' DPoP-bound
/// tokens) against plain relay (`relayable` tokens), alternating.
pub async fn first_order_rows(
    b: &Bench,
    exchange: &Services,
    plain: &Services,
    relayable: &UserClient,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = if b.quick { 8 } else { 100 };
    let (mut x, mut p) = (Sample::default(), Sample::default());
    for _ in 0..2 {
        x = x.merge(first_orders(b, exchange, &UserClient::cli(), n).await?);
        p = p.merge(first_orders(b, plain, relayable, n).await?);
    }
    b.say(format!(
        "first order of a new token: exchange p50 {} p99 {}, plain p50 {} p99 {}",
        ms(x.p50()),
        ms(x.p99()),
        ms(p.p50()),
        ms(p.p99())
    ));
    rows.push(
        Row::new(
            "9",
            format!(
                "first order of a new token, per-hop exchange (nothing cached: the gateway \
                 exchanges for order, order for inventory and payment; 4 in flight): p50 / p99{}",
                failures(&x)
            ),
            format!("{} / {}", ms(x.p50()), ms(x.p99())),
        )
        .baseline(format!(
            "plain relay {} / {}{}",
            ms(p.p50()),
            ms(p.p99()),
            failures(&p)
        )),
    );
    Ok(())
}

/// The IdP's token-exchange grant (as order: a customer's token for
/// inventory) in a closed loop, against the raw RS256 rate of its key.
pub async fn exchange_grants(b: &Bench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let state = in_process_idp(b).await?;
    let claims = serde_json::json!({
        "iss": b.idp.issuer, "sub": "0b7a3c1e-5d1f-4c2a-9e8b-1f2d3c4b5a69", "aud": ["inventory"],
        "client_id": "cli", "scope": "orders:write", "exp": 4_000_000_000u64,
        "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "jti": "bench",
        "act": {"sub": "order"}
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw_before = raw_signing_rate(&state, &claims, cpus, b.secs(3))?;

    // Many subjects, as many callers' tokens reach order at once.
    let subjects = customer_tokens(b, &UserClient::cli(), 64)
        .await?
        .into_values();
    // The floor runs before and after the grants, so a change in the host's
    // speed during the loop falls on both.
    let floor = floor::start(b).await?;
    let floor_url = format!("{}/exchange", floor.url());
    let bare = exchanges(b, &floor_url, &subjects, b.secs(4)).await;
    let split = cpu::Split::start(b);
    let sample = exchanges(b, &format!("{}/token", b.idp.issuer), &subjects, b.secs(8)).await;
    let idp_cpu = split.idp_per_request(sample.ok);
    let cpu = split.per_request(sample.ok);
    let bare = bare.merge(exchanges(b, &floor_url, &subjects, b.secs(4)).await);
    drop(floor);
    // The raw rate too is taken on both sides of the loops.
    let raw = (raw_before + raw_signing_rate(&state, &claims, cpus, b.secs(3))?) / 2.0;
    b.say(format!(
        "token exchange {} ({cpu}); the floor {}; raw signing (one thread per CPU) {}",
        rate(sample.rps()),
        rate(bare.rps()),
        rate(raw)
    ));
    rows.push(against_signing(
        "9",
        "POST /token token exchange, order for inventory (32 in flight)",
        &sample,
        &cpu,
        raw,
        cpus,
    ));
    rows.extend(against_floor(
        "9",
        "the subject token's RS256 verification, one signature",
        &bare,
        "token exchange",
        &sample,
        raw,
    ));
    // The IdP's own share: what the grant costs it beside its one signature,
    // apart from PostgreSQL's and the load generator's CPU on the same cores.
    let signature = Duration::from_secs_f64(cpus as f64 / raw);
    rows.push(
        Row::new(
            "9",
            "IdP CPU per token exchange grant (one signature, the subject token's RS256 \
             verification, HTTP, form, client authentication, JSON, the revocation check in the IdP's \
             copy of the log)",
            us(idp_cpu),
        )
        .baseline(format!("one raw RS256 signature: {} of CPU", us(signature)))
        .ratio(signature.as_secs_f64() / idp_cpu.as_secs_f64().max(1e-9)),
    );
    Ok(())
}

/// A 32-in-flight closed loop of order's exchange request (its client
/// authentication, a customer's token for inventory) against `url`, cycling
/// through `subjects`.
async fn exchanges(b: &Bench, url: &str, subjects: &Arc<[String]>, time: Duration) -> Sample {
    let (http, url, subjects) = (b.http.clone(), url.to_owned(), subjects.clone());
    let next = Arc::new(AtomicUsize::new(0));
    load::closed(32, 50_000, time, move |_| {
        let (http, url) = (http.clone(), url.clone());
        let subject = subjects[next.fetch_add(1, Ordering::Relaxed) % subjects.len()].clone();
        async move {
            let answer = http
                .post(&url)
                .basic_auth(ORDER_CLIENT.0, Some(ORDER_CLIENT.1))
                .form(&[
                    ("grant_type", EXCHANGE),
                    ("subject_token", subject.as_str()),
                    ("subject_token_type", ACCESS),
                    ("audience", "inventory"),
                    ("scope", "orders:write"),
                ])
                .send()
                .await;
            match answer {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await
}
