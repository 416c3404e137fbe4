//! Shared set-up.

use std::time::Duration;

use guard::testing::TestIssuer;
use guard::{Guard, GuardConfig};

/// A started issuer and a guard for audience `order` that has loaded its keys.
pub async fn issuer_and_guard() -> (TestIssuer, Guard) {
    let issuer = TestIssuer::start().await;
    let guard = ready_guard(issuer.config("order")).await;
    (issuer, guard)
}

/// A guard whose keys are loaded.
pub async fn ready_guard(config: GuardConfig) -> Guard {
    let guard = Guard::new(config);
    assert!(
        guard.wait_ready(Duration::from_secs(10)).await,
        "keys loaded: {:?}",
        guard.status()
    );
    guard
}

/// A ready guard for audience `order` whose revocation-stream subscriber
/// has connected to `issuer`.
pub async fn subscribed_guard(issuer: &TestIssuer) -> Guard {
    let guard = ready_guard(
        issuer
            .config("order")
            .with_revocation_stream(issuer.revocation_stream_url()),
    )
    .await;
    let connected = || guard.revocation_status().is_some_and(|s| s.connected);
    eventually("the subscriber connects", connected).await;
    guard
}

/// Serves `router` on 127.0.0.1:0 until the test ends; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Waits (polling, bounded) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}
