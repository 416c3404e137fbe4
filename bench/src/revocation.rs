//! Figure 7: revocation propagation — from the `/revoke` answer to every
//! service refusing the token (401): one revocation at a time, then 32
//! clients revoking at once for 10 s (revocations committing concurrently,
//! which is what once lost some), with the count never applied.
//! Each service learns revocations from the IdP's stream
//! (`GET /revocations/stream`, guard's subscriber); the token is cached as
//! verified in every service before it is revoked, so the cache must be
//! purged too.

use std::time::Duration;

use anyhow::bail;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::Bench;
use crate::load::Sample;
use crate::oauth;
use crate::report::{Row, ms};
use crate::stack::{REPORTER, Services};

/// Longest wait for one revocation to reach every service.
const GIVE_UP: Duration = Duration::from_secs(2);

/// Each service, called with the `reporter` client's token.
fn targets(s: &Services) -> [(&'static str, String); 4] {
    [
        (
            "gateway",
            format!("{}/api/inventory/items", s.gateway.url()),
        ),
        ("order", format!("{}/orders", s.order.url())),
        ("payment", format!("{}/charges?limit=1", s.payment.url())),
        ("inventory", format!("{}/items", s.inventory.url())),
    ]
}

async fn status(http: &reqwest::Client, url: &str, token: &str) -> Option<StatusCode> {
    let r = http.get(url).bearer_auth(token).send().await.ok()?;
    let status = r.status();
    r.bytes().await.ok()?;
    Some(status)
}

/// Every target accepts (and so caches) a fresh token before it is revoked.
async fn accepted_everywhere(
    http: &reqwest::Client,
    targets: &[(&'static str, String); 4],
    token: &str,
) -> anyhow::Result<()> {
    for (name, url) in targets {
        if matches!(
            status(http, url, token).await,
            Some(StatusCode::UNAUTHORIZED) | None
        ) {
            bail!("{name} refuses a fresh token before its revocation");
        }
    }
    Ok(())
}

/// Polls every target (one poller each) until all refuse `token` with 401:
/// the time since `revoked` when the last one did, or `None` past `give_up`.
async fn until_all_refuse(
    http: &reqwest::Client,
    targets: &[(&'static str, String); 4],
    token: &str,
    revoked: Instant,
    give_up: Duration,
    poll: Duration,
) -> Option<Duration> {
    let [a, b, c, d] = targets.each_ref().map(|(_, url)| async move {
        loop {
            if status(http, url, token).await == Some(StatusCode::UNAUTHORIZED) {
                return Some(revoked.elapsed());
            }
            if revoked.elapsed() > give_up {
                return None;
            }
            tokio::time::sleep(poll).await;
        }
    });
    let (a, b, c, d) = tokio::join!(a, b, c, d);
    [a, b, c, d]
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|all| all.into_iter().max().unwrap_or_default())
}

pub async fn run(b: &Bench, s: &Services, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let count = if b.quick { 50 } else { 1000 };
    let deadline = Instant::now() + b.secs(120);
    let token_url = format!("{}/token", b.idp.issuer);
    let mut times = Vec::with_capacity(count);
    let mut lost = 0u64;
    for _ in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let token = oauth::client_credentials(&b.http, &token_url, REPORTER, None).await?;
        accepted_everywhere(&b.http, &targets(s), &token).await?;
        oauth::revoke(&b.http, &b.idp.issuer, REPORTER, &token).await?;
        let revoked = Instant::now();
        // Poll every millisecond: resolution enough, and the pollers do not
        // crowd out the subscribers they measure.
        let poll = Duration::from_millis(1);
        match until_all_refuse(&b.http, &targets(s), &token, revoked, GIVE_UP, poll).await {
            Some(took) => times.push(took),
            None => lost += 1,
        }
    }
    times.sort_unstable();
    let sample = Sample {
        ok: times.len() as u64,
        failed: lost,
        elapsed: Duration::ZERO,
        latencies: times,
    };
    b.say(format!(
        "revocation propagation p50 {} p99 {} ({} revocations, {} not propagated within {GIVE_UP:?})",
        ms(sample.p50()),
        ms(sample.p99()),
        sample.ok,
        lost
    ));
    concurrent(b, s, rows).await?;
    rows.push(
        Row::new(
            "7",
            format!(
                "revocation propagation, /revoke answer → gateway, order, payment, inventory all 401 ({} revocations{}): p50 / p99",
                sample.ok,
                if lost > 0 { format!(", **{lost} not within 2 s**") } else { String::new() }
            ),
            format!("{} / {}", ms(sample.p50()), ms(sample.p99())),
        )
        .baseline(format!("max {}", ms(sample.quantile(1.0))))
        .target("p99 < 100 ms", lost == 0 && sample.p99() < Duration::from_millis(100)),
    );
    Ok(())
}

/// Clients revoking at once, and how long each lasts.
const CLIENTS: usize = 32;
const LOAD: u64 = 10;
/// How long a revocation may take under load before it counts as late; one
/// still accepted after the whole run counts as lost.
const LATE: Duration = Duration::from_secs(5);

/// One client's loop: a fresh token seen (and cached) by every service,
/// revoked, then watched until every service refuses it.
async fn revoking_client(
    http: reqwest::Client,
    token_url: String,
    issuer: String,
    targets: [(&'static str, String); 4],
    until: Instant,
) -> anyhow::Result<(Vec<Duration>, Vec<String>)> {
    let (mut times, mut late) = (Vec::new(), Vec::new());
    while Instant::now() < until {
        let token = oauth::client_credentials(&http, &token_url, REPORTER, None).await?;
        accepted_everywhere(&http, &targets, &token).await?;
        oauth::revoke(&http, &issuer, REPORTER, &token).await?;
        let revoked = Instant::now();
        // 32 clients × 4 pollers: every 5 ms keeps the probes' own load from
        // starving the subscribers they measure (5 ms is the resolution).
        let poll = Duration::from_millis(5);
        match until_all_refuse(&http, &targets, &token, revoked, LATE, poll).await {
            Some(took) => times.push(took),
            None => late.push(token),
        }
    }
    Ok((times, late))
}

/// 32 clients revoking for 10 s; p50/p99 from each `/revoke` answer until the
/// gateway and all three services refuse, and the revocations never applied.
async fn concurrent(b: &Bench, s: &Services, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let until = Instant::now() + b.secs(LOAD);
    let token_url = format!("{}/token", b.idp.issuer);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(revoking_client(
                b.http.clone(),
                token_url.clone(),
                b.idp.issuer.clone(),
                targets(s),
                until,
            ))
        })
        .collect();
    let (mut times, mut late) = (Vec::new(), Vec::new());
    for client in clients {
        let (t, l) = client.await??;
        times.extend(t);
        late.extend(l);
    }
    // A late revocation is lost only if some service still accepts it now.
    let mut lost = 0u64;
    for token in &late {
        for (_, url) in targets(s) {
            if status(&b.http, &url, token).await != Some(StatusCode::UNAUTHORIZED) {
                lost += 1;
                break;
            }
        }
    }
    times.sort_unstable();
    let sample = Sample {
        ok: times.len() as u64,
        failed: late.len() as u64,
        elapsed: Duration::ZERO,
        latencies: times,
    };
    b.say(format!(
        "revocation propagation under load ({CLIENTS} clients): p50 {} p99 {} ({} revocations, {} later than {LATE:?}, {lost} never applied)",
        ms(sample.p50()),
        ms(sample.p99()),
        sample.ok + sample.failed,
        late.len(),
    ));
    rows.push(
        Row::new(
            "7",
            format!(
                "revocation propagation under load: {CLIENTS} clients revoking at once for {LOAD} s ({} revocations, {} later than {} s, **{lost} never applied**): p50 / p99",
                sample.ok + sample.failed,
                late.len(),
                LATE.as_secs()
            ),
            format!("{} / {}", ms(sample.p50()), ms(sample.p99())),
        )
        .baseline(format!("max {}", ms(sample.quantile(1.0))))
        .target(
            "0 lost, p99 ≤ 100 ms",
            lost == 0 && late.is_empty() && sample.p99() <= Duration::from_millis(100),
        ),
    );
    Ok(())
}
