//! Figures 1 and 2: the token endpoint against the raw signing rate of the
//! same key, and password logins against the raw argon2id verify rate (with
//! the latency of /token and /jwks.json while logins saturate the CPU).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;

use crate::Bench;
use crate::cpu;
use crate::floor;
use crate::load::{self, Sample};
use crate::oauth::{self, UserClient};
use crate::report::{Row, ms, rate, us};
use crate::stack::{self, REPORTER};

/// The IdP's state over its own database, in this process: the same signing
/// key (decrypted with the same key-encryption key) and the same password hasher.
pub async fn in_process_idp(b: &Bench) -> anyhow::Result<idp::state::AppState> {
    stack::idp_state(
        &b.idp.issuer,
        &b.env.dbs.url("idp")?,
        &b.env.key_encryption_key,
    )
    .await
}

pub async fn token_endpoint(b: &Bench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let state = in_process_idp(b).await?;
    let claims = Arc::new(serde_json::json!({
        "iss": b.idp.issuer, "sub": "reporter", "aud": ["order", "payment", "inventory"],
        "client_id": "reporter", "scope": "orders:read", "exp": 4_000_000_000u64,
        "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "jti": "bench"
    }));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The raw rate is taken before and after the loops, so a change in the
    // host's speed during them falls on the baseline too.
    let raw_before = raw_signing_rate(&state, &claims, cpus, b.secs(3))?;
    let signer = (state.clone(), claims.clone());
    let signing = load::closed(32, 50_000, b.secs(5), move |_| {
        let (state, claims) = (signer.0.clone(), signer.1.clone());
        async move { state.keys.sign_jwt("at+jwt", &*claims).await.is_ok() }
    })
    .await;
    b.say(format!(
        "signing through the IdP's signing pool (in process) {}",
        rate(signing.rps())
    ));

    // The floor runs before and after the grants, so a change in the host's
    // speed during the loop falls on both.
    let floor = floor::start(b).await?;
    let floor_url = format!("{}/sign", floor.url());
    let bare = client_credentials_loop(b, &floor_url, b.secs(4)).await;
    let cpu = cpu::Split::start(b);
    let cc = client_credentials_loop(b, &format!("{}/token", b.idp.issuer), b.secs(8)).await;
    let cc_cpu = cpu.per_request(cc.ok);
    let bare = bare.merge(client_credentials_loop(b, &floor_url, b.secs(4)).await);
    drop(floor);
    b.say(format!(
        "client_credentials {} ({cc_cpu}); the floor {}",
        rate(cc.rps()),
        rate(bare.rps())
    ));
    b.remember("baton_cc", &cc);

    let (refresh, refresh_cpu) = refresh_loop(b, None).await?;
    b.say(format!(
        "refresh_token {} ({refresh_cpu})",
        rate(refresh.rps())
    ));
    let (access_only, access_only_cpu) = refresh_loop(b, Some("orders:read")).await?;
    b.say(format!(
        "refresh_token, access token only {} ({access_only_cpu})",
        rate(access_only.rps())
    ));
    let raw = (raw_before + raw_signing_rate(&state, &claims, cpus, b.secs(3))?) / 2.0;
    b.say(format!("raw signing (one thread per CPU) {}", rate(raw)));

    rows.push(
        Row::new(
            "1",
            "JWT signing in process through the IdP's signing pool (header + claims + RS256)",
            rate(signing.rps()),
        )
        .baseline(format!("raw RS256 signatures, same key: {}", rate(raw)))
        .ratio(signing.rps() / raw),
    );
    let limit = raw;
    for (name, s, cpu) in [
        ("client_credentials", &cc, cc_cpu),
        (
            "refresh_token (access + ID token: two signatures)",
            &refresh,
            refresh_cpu,
        ),
        (
            "refresh_token narrowed to `orders:read` (access token only)",
            &access_only,
            access_only_cpu,
        ),
    ] {
        rows.push(against_signing(
            "1",
            &format!("POST /token {name}"),
            s,
            &cpu,
            limit,
            cpus,
        ));
    }
    rows.extend(against_floor(
        "1",
        "one signature",
        &bare,
        "client_credentials",
        &cc,
        raw,
    ));
    Ok(())
}

/// A 32-in-flight closed loop of `reporter`'s `client_credentials` grant
/// against `token_url`.
async fn client_credentials_loop(b: &Bench, token_url: &str, time: Duration) -> Sample {
    let (http, url) = (b.http.clone(), token_url.to_owned());
    load::closed(32, 50_000, time, move |_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            oauth::client_credentials(&http, &url, REPORTER, Some("orders:read"))
                .await
                .is_ok()
        }
    })
    .await
}

/// Two rows: the floor under a grant on this host (`floor`, a minimal server
/// doing only `work` over HTTP: [`crate::floor`]) against the raw signing
/// rate, and the grant against that floor: what HTTP on these cores costs,
/// and what the IdP's own code costs.
pub fn against_floor(
    figure: &'static str,
    work: &str,
    floor: &Sample,
    grant: &str,
    s: &Sample,
    raw: f64,
) -> [Row; 2] {
    [
        Row::new(
            figure,
            format!(
                "the floor under a {grant} grant on these cores: a minimal server doing only HTTP, \
                 the form, {work} through the IdP's signing pool and JSON (no client \
                 authentication, policy, revocation check or layers; bench/src/floor.rs){}",
                failures(floor)
            ),
            rate(floor.rps()),
        )
        .baseline(format!("raw RS256 signatures: {}", rate(raw)))
        .ratio(floor.rps() / raw),
        Row::new(
            figure,
            format!("POST /token {grant} against its floor (what the IdP's own code costs)"),
            rate(s.rps()),
        )
        .baseline(format!("the floor: {}", rate(floor.rps())))
        .ratio(s.rps() / floor.rps().max(1e-9))
        .target(
            ">= 90 % of its floor",
            s.rps() >= 0.9 * floor.rps() && s.failed == 0 && floor.failed == 0,
        ),
    ]
}

/// A grant's row against the raw signing rate `raw` of `cpus` threads: its
/// rate, latency and CPU split (`cpu`), target 70 %.
pub fn against_signing(
    figure: &'static str,
    name: &str,
    s: &Sample,
    cpu: &str,
    raw: f64,
    cpus: usize,
) -> Row {
    let ratio = s.rps() / raw;
    Row::new(
        figure,
        format!(
            "{name} (p50 {}, p99 {}; {cpu}){}",
            ms(s.p50()),
            ms(s.p99()),
            failures(s)
        ),
        rate(s.rps()),
    )
    .baseline(format!(
        "raw RS256 signatures, same key, one thread per CPU: {} ({} of CPU each)",
        rate(raw),
        us(Duration::from_secs_f64(cpus as f64 / raw))
    ))
    .ratio(ratio)
    .target(">= 70 % of signing", ratio >= 0.70 && s.failed == 0)
}

/// Refresh grants of the `cli` client (its grant includes `openid`), for
/// the whole scope (an ID token comes back too) or narrowed to `scope`
/// (access token only). Each worker keeps rotating its own refresh token:
/// reuse would revoke the family.
async fn refresh_loop(b: &Bench, scope: Option<&'static str>) -> anyhow::Result<(Sample, String)> {
    let workers = 16;
    let mut tokens = Vec::new();
    for _ in 0..workers {
        let (_, refresh) = oauth::login_tokens(
            &b.http,
            &UserClient::cli(),
            &b.idp.issuer,
            "alice",
            "alice-password",
        )
        .await?;
        tokens.push(refresh);
    }
    let pool = Arc::new(Mutex::new(tokens));
    let http = b.http.clone();
    let token_url = format!("{}/token", b.idp.issuer);
    let cpu = cpu::Split::start(b);
    let sample = load::closed(workers, 50_000, b.secs(8), move |_| {
        let (http, url, pool) = (http.clone(), token_url.clone(), pool.clone());
        async move {
            let Some(token) = pool.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                return false;
            };
            match oauth::refresh(&http, &UserClient::cli(), &url, &token, scope).await {
                Ok((_, next)) => {
                    pool.lock().unwrap_or_else(|e| e.into_inner()).push(next);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    let cpu = cpu.per_request(sample.ok);
    Ok((sample, cpu))
}

/// Signatures per second of the IdP's current key, signing a typical
/// `header.claims` message in a tight loop on `threads` OS threads (one per CPU): the
/// machine's limit for token issuance, with no pool, runtime or I/O around it.
pub fn raw_signing_rate(
    state: &idp::state::AppState,
    claims: &serde_json::Value,
    threads: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let key = state
        .keys
        .signing_key(state.keys.default_alg())
        .context("the IdP has a signing key")?;
    let message = format!(
        "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string()
        )
    );
    let started = std::time::Instant::now();
    let signed: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        if key.sign(message.as_bytes()).is_ok() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    Ok(signed as f64 / started.elapsed().as_secs_f64())
}

pub async fn login(b: &Bench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let state = in_process_idp(b).await?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&b.env.dbs.url("idp")?)
        .await?;
    let hash = idp::realm::user_by_username(&pool, "alice")
        .await?
        .context("alice is seeded")?
        .password_hash;
    // The baseline is taken before and after the logins, so a change in the
    // host's speed meanwhile falls on it too.
    let raw_before = argon2_verify_loop(&state, &hash, b.secs(2)).await;

    // /token and /jwks.json probed at a fixed rate, idle first, then while
    // logins saturate the CPU.
    let idle = probes(b, None).await;
    let cpu = cpu::Split::start(b);
    let http = b.http.clone();
    let issuer = b.idp.issuer.clone();
    // Three accounts, at most five sign-ins of each in flight: the IdP admits
    // no more attempts of one account at once than its failure limit.
    let users = Arc::new(
        [
            ("alice", "alice-password"),
            ("bob", "bob-password"),
            ("carol", "carol-password"),
        ]
        .map(|(user, password)| (user, password, tokio::sync::Semaphore::new(5))),
    );
    let logins = tokio::spawn({
        let max_time = b.secs(10);
        async move {
            load::closed(15, 5_000, max_time, move |i| {
                let (http, issuer, users) = (http.clone(), issuer.clone(), users.clone());
                async move {
                    let (user, password, in_flight) = &users[(i % 3) as usize];
                    let Ok(_permit) = in_flight.acquire().await else {
                        return false;
                    };
                    oauth::login(&http, &UserClient::cli(), &issuer, user, password)
                        .await
                        .is_ok()
                }
            })
            .await
        }
    });
    // Probe the middle of the login run.
    tokio::time::sleep(b.secs(2)).await;
    let busy = probes(b, Some(b.secs(6))).await;
    let logins = logins.await?;
    // The probes (40 cheap requests/s) are in it too: a few per cent.
    let login_cpu = cpu.per_request(logins.ok);
    b.say(format!("logins {} ({login_cpu})", rate(logins.rps())));
    let raw = raw_before.merge(argon2_verify_loop(&state, &hash, b.secs(2)).await);
    b.say(format!("argon2id verify (in process) {}", rate(raw.rps())));

    let ratio = logins.rps() / raw.rps();
    rows.push(
        Row::new(
            "2",
            format!(
                "password logins (GET /authorize + POST /login, p99 {}; {login_cpu}){}",
                ms(logins.p99()),
                failures(&logins)
            ),
            rate(logins.rps()),
        )
        .baseline(format!("in-process argon2id verify: {}", rate(raw.rps())))
        .ratio(ratio)
        .target(">= 80 % of argon2id", ratio >= 0.80 && logins.failed == 0),
    );
    for (i, name) in ["POST /token client_credentials", "GET /jwks.json"]
        .iter()
        .enumerate()
    {
        let (idle, busy) = (&idle[i], &busy[i]);
        rows.push(
            Row::new(
                "2",
                format!(
                    "{name} p99 while logins saturate the CPU (p50 {}){}",
                    ms(busy.p50()),
                    failures(busy)
                ),
                ms(busy.p99()),
            )
            .baseline(format!(
                "idle p99 {} (p50 {})",
                ms(idle.p99()),
                ms(idle.p50())
            )),
        );
    }
    Ok(())
}

/// argon2id verifications of alice's password through the IdP's own
/// `Passwords` pool, 8 in flight: the limit of sign-ins on this host.
async fn argon2_verify_loop(state: &idp::state::AppState, hash: &str, time: Duration) -> Sample {
    let (state, hash) = (state.clone(), hash.to_owned());
    load::closed(8, 2_000, time, move |_| {
        let (state, hash) = (state.clone(), hash.clone());
        async move {
            state
                .passwords
                .verify(
                    "alice-password".into(),
                    Some(hash),
                    idp::blocking::Priority::High,
                )
                .await
                .unwrap_or(false)
        }
    })
    .await
}

/// `/token` (client_credentials) and `/jwks.json` at 20 requests/s each.
async fn probes(b: &Bench, duration: Option<Duration>) -> [Sample; 2] {
    let duration = duration.unwrap_or(b.secs(4));
    let http = b.http.clone();
    let token_url = format!("{}/token", b.idp.issuer);
    let token = load::fixed_rate(20.0, duration, 64, move |_| {
        let (http, url) = (http.clone(), token_url.clone());
        async move {
            oauth::client_credentials(&http, &url, REPORTER, Some("orders:read"))
                .await
                .is_ok()
        }
    });
    let http = b.http.clone();
    let jwks_url = format!("{}/jwks.json", b.idp.issuer);
    let jwks = load::fixed_rate(20.0, duration, 64, move |_| {
        let (http, url) = (http.clone(), jwks_url.clone());
        async move {
            match http.get(&url).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    });
    let (token, jwks) = tokio::join!(token, jwks);
    [token, jwks]
}

/// ", 3 failed" when requests failed.
pub fn failures(s: &Sample) -> String {
    if s.failed == 0 {
        String::new()
    } else {
        format!(", **{} failed**", s.failed)
    }
}
