//! Figure 7 (issue 6 point 1): revocation propagation — from the `/revoke`
//! answer to every service refusing the token (401), over many revocations.
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
        for (name, url) in targets(s) {
            match status(&b.http, &url, &token).await {
                Some(StatusCode::UNAUTHORIZED) | None => {
                    bail!("{name} refuses a fresh token before its revocation")
                }
                Some(_) => {}
            }
        }
        oauth::revoke(&b.http, &b.idp.issuer, REPORTER, &token).await?;
        let revoked = Instant::now();
        let waits = targets(s).map(|(_, url)| {
            let (http, token) = (b.http.clone(), token.clone());
            async move {
                loop {
                    if status(&http, &url, &token).await == Some(StatusCode::UNAUTHORIZED) {
                        return Some(revoked.elapsed());
                    }
                    if revoked.elapsed() > GIVE_UP {
                        return None;
                    }
                    // Poll every millisecond: resolution enough, and the
                    // pollers do not crowd out the subscribers they measure.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let [a, b_, c, d] = waits;
        let (a, b_, c, d) = tokio::join!(a, b_, c, d);
        match [a, b_, c, d].into_iter().collect::<Option<Vec<_>>>() {
            Some(all) => times.push(all.into_iter().max().unwrap_or_default()),
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
