//! Figure 8: a real user signs in during a flood of wrong passwords.
//!
//! 200 attackers, each from its own address (sent as `X-Forwarded-For`; the
//! IdP trusts the bench's address as a proxy), post wrong passwords for
//! random account names as fast as they are answered, for 15 s; meanwhile a
//! real user signs in again and again (GET /authorize + POST /login) from
//! the bench's own address, from the flood's second second on. Target: every
//! sign-in of the real user succeeds,
//! p95 <= 500 ms. What keeps it there: the throttle admits no more attempts
//! per address than its limit, the password queue is bounded and answers
//! "try again" at once beyond it, and a key without failures (or repeated
//! "try again" answers) is served ahead of keys that keep failing
//! (`idp::blocking`, `idp::in_flight`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::Bench;
use crate::load;
use crate::oauth::{self, UserClient};
use crate::report::{Row, ms};

/// Attacking addresses.
const ATTACKERS: usize = 200;
/// The flood's length (and the real user's).
const SECS: u64 = 15;

/// What the attackers were answered.
#[derive(Default)]
struct Answers {
    /// The form again (wrong password, or locked out).
    refused: AtomicU64,
    /// 503 "try again" (the password queue was full).
    busy: AtomicU64,
    /// Anything else, or no answer.
    other: AtomicU64,
}

pub async fn run(b: &Bench, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let duration = b.secs(SECS);
    // The person arrives when the flood is under way: it starts a second
    // earlier and ends with the person's last sign-in.
    let head_start = b.secs(1);
    let deadline = Instant::now() + head_start + duration;
    let answers = Arc::new(Answers::default());
    let mut flood = JoinSet::new();
    for a in 0..ATTACKERS {
        let (http, issuer, answers) = (b.http.clone(), b.idp.issuer.clone(), answers.clone());
        flood.spawn(async move {
            let addr = format!("10.8.{}.{}", a / 200, a % 200 + 1);
            let Ok(flow) = oauth::start_login(&http, &UserClient::cli(), &issuer).await else {
                answers.other.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let user = format!("nobody-{a}-{n}");
                let answer =
                    oauth::post_login(&http, &issuer, &flow, (&user, "wrong"), Some(&addr)).await;
                let counter = match answer.map(|r| r.status()) {
                    Ok(StatusCode::OK) => &answers.refused,
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => &answers.busy,
                    _ => &answers.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(head_start).await;
    let (http, issuer) = (b.http.clone(), b.idp.issuer.clone());
    let real = load::closed(1, u64::MAX, duration, move |_| {
        let (http, issuer) = (http.clone(), issuer.clone());
        async move {
            oauth::login(
                &http,
                &UserClient::cli(),
                &issuer,
                "alice",
                "alice-password",
            )
            .await
            .is_ok()
        }
    })
    .await;
    flood.join_all().await;
    let (refused, busy, other) = (
        answers.refused.load(Ordering::Relaxed),
        answers.busy.load(Ordering::Relaxed),
        answers.other.load(Ordering::Relaxed),
    );
    let p95 = real.quantile(0.95);
    b.say(format!(
        "real user: {} sign-ins ok, {} failed, p50 {}, p95 {}; flood: {refused} refused, {busy} busy, {other} other",
        real.ok,
        real.failed,
        ms(real.p50()),
        ms(p95)
    ));
    rows.push(
        Row::new(
            "8",
            format!(
                "a real user's sign-ins during a {SECS} s wrong-password flood from {ATTACKERS} addresses \
                 (p50 {}; {} ok, {} failed)",
                ms(real.p50()),
                real.ok,
                real.failed
            ),
            format!("p95 {}", ms(p95)),
        )
        .baseline(format!(
            "flood answered: {refused} form again, {busy} \"try again\" (503), {other} other"
        ))
        .target(
            "all succeed, p95 <= 500 ms",
            real.failed == 0 && real.ok > 0 && p95.as_millis() <= 500,
        ),
    );
    Ok(())
}
