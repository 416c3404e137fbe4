//! Rough cost of validating a token with a real issuer: a cold validation
//! (signature verified) versus a hot one (verified-token cache), per key type.
//!
//! `cargo run -p guard --example validation_throughput --features test-issuer --release`

use std::time::{Duration, Instant};

use guard::Guard;
use guard::testing::{KeyKind, TestIssuer};

#[tokio::main]
async fn main() {
    let issuer = TestIssuer::start().await;
    let guard = Guard::new(issuer.config("order").with_cache_capacity(100_000));
    assert!(guard.wait_ready(Duration::from_secs(10)).await);
    let n = 2_000;
    for kind in [KeyKind::Rsa, KeyKind::Ec, KeyKind::Ed] {
        let key = issuer.key_of(kind);
        let tokens: Vec<String> = (0..n).map(|_| issuer.token().key(&key).sign()).collect();
        let started = Instant::now();
        for token in &tokens {
            guard.validate(token).await.expect("valid");
        }
        let cold = started.elapsed() / n as u32;
        let started = Instant::now();
        for _ in 0..10 {
            for token in &tokens {
                guard.validate(token).await.expect("valid");
            }
        }
        let hot = started.elapsed() / (10 * n) as u32;
        println!(
            "{kind:?}: cold (signature verified) {cold:?} per token, hot (cached) {hot:?} per token"
        );
    }
}
