//! `Guard::for_audience`: several audiences on one key cache, one revocation
//! stream and one verified-token cache whose entries never cross audiences.

use guard::testing::TestIssuer;
use guard::{AuthError, Revocation, TokenError};

use crate::helpers::{eventually, ready_guard, subscribed_guard};

#[tokio::test]
async fn a_verdict_cached_for_one_audience_is_never_taken_for_another() {
    let issuer = TestIssuer::start().await;
    let order = ready_guard(issuer.config("order")).await;
    let payment = order.for_audience("payment");
    assert_eq!(payment.config().audience(), "payment");
    assert_eq!(payment.config().issuer(), order.config().issuer());

    let for_order = issuer.token().aud(&["order"]).sign();
    order.validate(&for_order).await.unwrap();
    assert!(order.is_cached(&for_order));
    assert!(!payment.is_cached(&for_order));
    assert_eq!(
        payment.validate(&for_order).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::WrongAudience)
    );
    // The refusal did not disturb the other audience's entry.
    assert!(order.is_cached(&for_order));
    assert!(order.validate(&for_order).await.is_ok());

    // A token for both is valid for both, and cached once per audience.
    let for_both = issuer.token().aud(&["order", "payment"]).sign();
    assert_eq!(payment.validate(&for_both).await.unwrap().sub(), "user-1");
    assert!(payment.is_cached(&for_both) && !order.is_cached(&for_both));
    order.validate(&for_both).await.unwrap();
    order.forget(&for_both);
    assert!(payment.is_cached(&for_both) && !order.is_cached(&for_both));
}

#[tokio::test]
async fn every_audience_uses_the_same_keys() {
    let issuer = TestIssuer::start().await;
    let order = ready_guard(issuer.config("order")).await;
    let fetched = issuer.jwks_requests();
    let inventory = order.for_audience("inventory");
    assert_eq!(inventory.status(), order.status(), "already ready");
    let token = issuer.token().aud(&["inventory"]).sign();
    assert!(inventory.validate(&token).await.is_ok());

    // A rotation found by one audience's refetch is known to all.
    let new = issuer.rotate(guard::testing::KeyKind::Ed);
    let rotated = issuer.token().key(&new).aud(&["inventory", "order"]).sign();
    assert!(inventory.validate(&rotated).await.is_ok());
    assert!(order.validate(&rotated).await.is_ok());
    assert_eq!(issuer.jwks_requests(), fetched + 1, "one cache, one fetch");
}

#[tokio::test]
async fn one_subscription_revokes_for_every_audience() {
    let issuer = TestIssuer::start().await;
    let order = subscribed_guard(&issuer).await;
    let payment = order.for_audience("payment");
    let token = issuer.token().claim("sid", "s-out").sign();
    order.validate(&token).await.unwrap();
    payment.validate(&token).await.unwrap();
    assert_eq!(payment.revocation_status(), order.revocation_status());

    // The guard the others came from may go away: the stream keeps serving them.
    drop(order);
    issuer.publish(&Revocation::Session {
        sid: "s-out".into(),
    });
    eventually("the revocation arrives", || !payment.is_cached(&token)).await;
    assert_eq!(
        payment.validate(&token).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::Revoked)
    );
    let inventory = payment.for_audience("inventory");
    assert_eq!(
        inventory.validate(&token).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::Revoked),
        "the denylist is shared too"
    );
    assert_eq!(payment.revocation_status().unwrap().events_applied, 1);

    // A local revocation through any of them applies to all.
    let other = issuer.token().sub("mallory").sign();
    payment.validate(&other).await.unwrap();
    inventory.revoke(Revocation::Token {
        jti: issuer_jti(&other),
    });
    assert_eq!(
        payment.validate(&other).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::Revoked)
    );
}

/// The `jti` of a token this test minted (read, not verified).
fn issuer_jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}
