//! The revocation stream subscriber against a real SSE endpoint.

use guard::testing::TestIssuer;
use guard::{AuthError, Guard, Revocation, TokenError};

use crate::helpers::{eventually, subscribed_guard};

fn revoked(result: Result<guard::Principal, AuthError>) -> bool {
    result.unwrap_err() == AuthError::InvalidToken(TokenError::Revoked)
}

#[tokio::test]
async fn published_revocations_are_applied_to_cached_tokens() {
    let issuer = TestIssuer::start().await;
    let guard = subscribed_guard(&issuer).await;
    let token = issuer.token().claim("sid", "s-logout").sign();
    let bystander = issuer.token().claim("sid", "s-other").sign();
    guard.validate(&token).await.unwrap();
    guard.validate(&bystander).await.unwrap();

    issuer.publish(&Revocation::Session {
        sid: "s-logout".into(),
    });
    eventually("the revocation arrives", || !guard.is_cached(&token)).await;
    assert!(revoked(guard.validate(&token).await));
    assert!(guard.validate(&bystander).await.is_ok());

    let status = guard.revocation_status().unwrap();
    assert_eq!(status.events_applied, 1);
    assert_eq!(status.last_event_id.as_deref(), Some("1"));
    assert!(status.last_lag_ms.is_some());
}

#[tokio::test]
async fn earlier_revocations_are_replayed_to_a_new_subscriber() {
    let issuer = TestIssuer::start().await;
    let token = issuer.token().sub("mallory").valid(-60, 240).sign();
    issuer.publish(&Revocation::Subject {
        sub: "mallory".into(),
        issued_before: guard::testing::now(),
    });
    let guard = subscribed_guard(&issuer).await;
    eventually("the backlog is applied", || {
        guard.revocation_status().unwrap().events_applied == 1
    })
    .await;
    assert!(revoked(guard.validate(&token).await));
}

#[tokio::test]
async fn the_subscriber_resumes_after_an_outage_without_losing_events() {
    let issuer = TestIssuer::start().await;
    let guard = subscribed_guard(&issuer).await;
    let first = issuer.token().sign();
    let during = issuer.token().sign();
    let jti = |token: &str, guard: Guard| {
        let token = token.to_owned();
        async move { guard.validate(&token).await.unwrap().jti().to_owned() }
    };
    let first_jti = jti(&first, guard.clone()).await;
    let during_jti = jti(&during, guard.clone()).await;

    issuer.publish(&Revocation::Token { jti: first_jti });
    eventually("first event", || {
        guard.revocation_status().unwrap().events_applied == 1
    })
    .await;

    issuer.stop().await;
    eventually("the subscriber notices", || {
        !guard.revocation_status().unwrap().connected
    })
    .await;
    issuer.publish(&Revocation::Token { jti: during_jti });
    assert!(
        guard.validate(&during).await.is_ok(),
        "not yet known while disconnected"
    );
    issuer.restart().await;

    eventually("the missed event is replayed", || {
        guard.revocation_status().unwrap().events_applied == 2
    })
    .await;
    assert!(revoked(guard.validate(&first).await));
    assert!(revoked(guard.validate(&during).await));
    // Resumed from id 1: the first event was not applied twice.
    assert_eq!(
        guard.revocation_status().unwrap().last_event_id.as_deref(),
        Some("2")
    );
}
