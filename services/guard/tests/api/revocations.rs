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

#[tokio::test]
async fn the_subscriber_authenticates_as_its_client() {
    let issuer = TestIssuer::start().await;
    let stranger = guard::GuardConfig::new(issuer.issuer(), "order")
        .with_client_credentials("someone-else", "wrong")
        .with_revocation_stream(issuer.revocation_stream_url());
    let guard = Guard::new(stranger);
    eventually("the stream refuses it", || {
        guard
            .revocation_status()
            .unwrap()
            .last_error
            .is_some_and(|e| e.contains("401"))
    })
    .await;
    let status = guard.revocation_status().unwrap();
    assert!(!status.connected && !status.caught_up && status.stale);
}

/// Staleness is visible, and under the `refuse` policy a guard whose stream
/// has not confirmed it is up to date within the bound refuses every token
/// until the stream is back.
#[tokio::test]
async fn a_stale_guard_reports_it_and_the_refuse_policy_refuses_tokens() {
    let issuer = TestIssuer::start().await;
    let config = issuer
        .config("order")
        .with_revocation_stream(issuer.revocation_stream_url())
        .with_revocation_staleness(
            std::time::Duration::from_secs(2),
            guard::StalePolicy::Refuse,
        );
    let guard = crate::helpers::ready_guard(config).await;
    eventually("caught up", || {
        let s = guard.revocation_status().unwrap();
        s.caught_up && !s.stale
    })
    .await;
    let token = issuer.token().sign();
    assert!(guard.validate(&token).await.is_ok());

    issuer.stop().await;
    eventually("stale", || guard.revocation_status().unwrap().stale).await;
    assert_eq!(
        guard.validate(&token).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::RevocationsStale)
    );

    issuer.restart().await;
    eventually("caught up again", || {
        !guard.revocation_status().unwrap().stale
    })
    .await;
    assert!(guard.validate(&token).await.is_ok());
}

/// The default policy keeps serving while stale, and says so.
#[tokio::test]
async fn a_stale_guard_keeps_serving_under_the_default_policy() {
    let issuer = TestIssuer::start().await;
    let config = issuer
        .config("order")
        .with_revocation_stream(issuer.revocation_stream_url())
        .with_revocation_staleness(std::time::Duration::from_secs(1), guard::StalePolicy::Serve);
    let guard = crate::helpers::ready_guard(config).await;
    eventually("caught up", || guard.revocation_status().unwrap().caught_up).await;
    issuer.stop().await;
    eventually("stale", || guard.revocation_status().unwrap().stale).await;
    assert!(guard.validate(&issuer.token().sign()).await.is_ok());
}

/// A token exchanged from the root (and one exchanged from that), validated
/// and cached before the root's revocation arrives, is refused after it: the
/// tokens name the root in `derived_from`, nothing revokes them one by one.
#[tokio::test]
async fn revoking_a_root_token_refuses_cached_tokens_derived_from_it() {
    let issuer = TestIssuer::start().await;
    let guard = subscribed_guard(&issuer).await;
    let root = issuer.token().claim("jti", "root").sign();
    let derived = issuer
        .token()
        .claim("derived_from", serde_json::json!(["root"]))
        .sign();
    let twice = issuer
        .token()
        .claim("derived_from", serde_json::json!(["derived", "root"]))
        .sign();
    let bystander = issuer
        .token()
        .claim("derived_from", serde_json::json!(["other-root"]))
        .sign();
    for token in [&derived, &twice, &bystander] {
        guard.validate(token).await.unwrap();
        assert!(guard.is_cached(token));
    }

    issuer.publish(&Revocation::Token { jti: "root".into() });
    eventually("the revocation arrives", || !guard.is_cached(&derived)).await;
    assert!(revoked(guard.validate(&derived).await));
    assert!(revoked(guard.validate(&twice).await));
    assert!(revoked(guard.validate(&root).await));
    assert!(guard.validate(&bystander).await.is_ok());
}

/// Only the IdP can sign `derived_from`, but a validator reads it before it
/// trusts it: a list longer than the bound is refused without being kept.
#[tokio::test]
async fn a_token_naming_too_many_ancestors_is_refused() {
    let issuer = TestIssuer::start().await;
    let guard = Guard::new(issuer.config("order"));
    let full: Vec<String> = (0..guard::derivation::MAX_DEPTH)
        .map(|i| format!("ancestor-{i}"))
        .collect();
    let at_the_bound = issuer.token().claim("derived_from", full.clone()).sign();
    assert!(guard.validate(&at_the_bound).await.is_ok());
    let mut forged = full;
    forged.push("one-too-many".into());
    let over = issuer.token().claim("derived_from", forged).sign();
    assert_eq!(
        guard.validate(&over).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::InvalidClaims)
    );
    let not_a_list = issuer.token().claim("derived_from", "root").sign();
    assert!(guard.validate(&not_a_list).await.is_err());
}
