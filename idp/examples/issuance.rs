//! Token issuance throughput: the raw signing rate of the key store versus
//! `POST /token` (client_credentials) over HTTP, on a throwaway database.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --release -p idp --example issuance`
//! Optional: `ALG` (RS256, ES256, EdDSA), `REQUESTS` (default 4000), `CONCURRENCY` (default 32).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let server = env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let alg: idp::keys::Alg = env("ALG", "RS256")
        .parse()
        .map_err(|_| anyhow::anyhow!("ALG: RS256, ES256 or EdDSA"))?;
    let requests: usize = env("REQUESTS", "4000").parse()?;
    let concurrency: usize = env("CONCURRENCY", "32").parse()?;
    let url = format!(
        "{}/idp_issuance_bench_{}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s),
        std::process::id()
    );
    sqlx::Postgres::create_database(&url).await?;
    let result = run(&url, alg, requests, concurrency).await;
    sqlx::Postgres::force_drop_database(&url).await?;
    result
}

async fn run(
    url: &str,
    alg: idp::keys::Alg,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    let idp = idp::spawn(pool.clone(), |c| c.signing_alg = alg).await?;
    idp::seed::apply(
        &pool,
        &idp.state.passwords,
        &idp::seed::SeedConfig::default(),
    )
    .await?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{alg}, {requests} tokens, concurrency {concurrency}, {cpus} CPUs");

    let state = idp.state.clone();
    let claims = serde_json::json!({"iss": idp.issuer, "sub": "bench", "aud": ["order"], "exp": 4_000_000_000u64});
    let claims = Arc::new(claims);
    let (elapsed, _) = load(requests, concurrency, move |_| {
        let (state, claims) = (state.clone(), claims.clone());
        async move { state.keys.sign_jwt("at+jwt", &*claims).await.is_ok() }
    })
    .await;
    println!(
        "signing only     {:>8.0} tokens/s",
        requests as f64 / elapsed.as_secs_f64()
    );

    let http = reqwest::Client::new();
    let token_url = idp.url("/token");
    let (elapsed, mut latencies) = load(requests, concurrency, move |_| {
        let (http, token_url) = (http.clone(), token_url.clone());
        async move {
            http.post(&token_url)
                .basic_auth("reporter", Some("reporter-dev-secret"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "POST /token      {:>8.0} tokens/s   p50 {:?}   p99 {:?}",
        requests as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

/// Runs `requests` calls of `call` with `concurrency` in flight; every call must succeed.
async fn load<F, Fut>(requests: usize, concurrency: usize, call: F) -> (Duration, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        return latencies;
                    }
                    let t = Instant::now();
                    assert!(call(i).await, "call {i} failed");
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(requests);
    for w in workers {
        all.extend(w.await.expect("a load worker panicked"));
    }
    (start.elapsed(), all)
}
