//! The JWKS cache against a real issuer: rate-limited refetch, rotation,
//! background refresh, outages.

use std::time::Duration;

use guard::testing::{KeyKind, TestIssuer, TestKey};
use guard::{AuthError, Guard, JwksState, TokenError};

use crate::helpers::{eventually, issuer_and_guard, ready_guard};

#[tokio::test]
async fn keys_are_found_through_discovery() {
    let (issuer, guard) = issuer_and_guard().await;
    let status = guard.status();
    assert_eq!(status.state, JwksState::Ready);
    assert_eq!(status.kids, ["ec-1", "ed-1", "rsa-1"]);
    assert_eq!(
        status.jwks_uri,
        Some(format!("{}/jwks.json", issuer.issuer()))
    );
    assert_eq!(
        (issuer.discovery_requests(), issuer.jwks_requests()),
        (1, 1)
    );
}

#[tokio::test]
async fn a_configured_jwks_uri_skips_discovery() {
    let issuer = TestIssuer::start().await;
    let uri = format!("{}/jwks.json", issuer.issuer()).parse().unwrap();
    let guard = ready_guard(issuer.config("order").with_jwks_uri(uri)).await;
    assert!(guard.validate(&issuer.token().sign()).await.is_ok());
    assert_eq!(issuer.discovery_requests(), 0);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let issuer = TestIssuer::start().await;
    // Same server, but we expect "<issuer>/": the document names "<issuer>".
    let guard = Guard::new(guard::GuardConfig::new(
        format!("{}/", issuer.issuer()),
        "order",
    ));
    assert!(!guard.wait_ready(Duration::from_millis(300)).await);
    let status = guard.status();
    assert_eq!(status.state, JwksState::Unavailable);
    assert!(
        status
            .last_error
            .unwrap()
            .contains("discovery names issuer")
    );
    assert_eq!(
        issuer.jwks_requests(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
}

#[tokio::test]
async fn random_kids_cannot_make_the_guard_hammer_the_idp() {
    let issuer = TestIssuer::start().await;
    let config = issuer
        .config("order")
        .with_jwks_refetch_interval(Duration::from_secs(3600));
    let guard = ready_guard(config).await;
    let fetches_before = issuer.jwks_requests();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let key = TestKey::generate(KeyKind::Ec, &format!("random-{i}"));
        let token = issuer.token().key(&key).sign();
        let guard = guard.clone();
        tasks.spawn(async move { guard.validate(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            result.unwrap().unwrap_err(),
            AuthError::InvalidToken(TokenError::UnknownKid)
        );
    }
    assert_eq!(
        issuer.jwks_requests() - fetches_before,
        1,
        "one refetch for 50 unknown kids"
    );
}

#[tokio::test]
async fn a_bad_signature_under_a_known_kid_never_triggers_a_refetch() {
    let (issuer, guard) = issuer_and_guard().await;
    let fetches_before = issuer.jwks_requests();
    let attacker = TestKey::generate(KeyKind::Rsa, "rsa-1");
    for _ in 0..20 {
        let token = issuer.token().key(&attacker).sign();
        assert_eq!(
            guard.validate(&token).await.unwrap_err(),
            AuthError::InvalidToken(TokenError::BadSignature)
        );
    }
    assert_eq!(issuer.jwks_requests(), fetches_before);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_use_without_a_failed_request() {
    let (issuer, guard) = issuer_and_guard().await;
    let old_token = issuer.token().sign();
    let new_key = issuer.rotate(KeyKind::Rsa);
    // Many concurrent first uses of the new key: one refetch, every one accepted.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let token = issuer.token().sub(&format!("user-{i}")).sign();
        let guard = guard.clone();
        tasks.spawn(async move { guard.validate(&token).await.map(|p| p.sub().to_owned()) });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.unwrap().is_ok());
    }
    assert!(guard.status().kids.contains(&new_key.kid().to_owned()));
    assert_eq!(issuer.jwks_requests(), 2);
    assert!(
        guard.validate(&old_token).await.is_ok(),
        "the old key stays trusted while published"
    );
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_before_they_expire() {
    let issuer = TestIssuer::start().await;
    issuer.set_max_age(1);
    let config = issuer.config("order").with_jwks_ttl(
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let guard = ready_guard(config).await;
    let new_key = issuer.rotate(KeyKind::Ed);
    issuer.unpublish("rsa-1");
    // No validation happens: only the background refresh can notice.
    eventually("the background refresh picks up the new JWKS", || {
        let kids = guard.status().kids;
        kids.contains(&new_key.kid().to_owned()) && !kids.contains(&"rsa-1".to_owned())
    })
    .await;
    let token = issuer.token().key(&issuer.key("ec-1").unwrap()).sign();
    assert!(guard.validate(&token).await.is_ok());
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_being_trusted() {
    let issuer = TestIssuer::start().await;
    let guard = ready_guard(issuer.config("order")).await;
    let ec = issuer.key("ec-1").unwrap();
    let cached = issuer.token().key(&ec).sign();
    guard.validate(&cached).await.unwrap();
    issuer.unpublish("ec-1");
    guard.refresh_keys().await.unwrap();
    // A verdict cached before the key was withdrawn does not outlive it.
    assert_eq!(
        guard.validate(&cached).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::UnknownKid)
    );
    let token = issuer.token().key(&ec).sign();
    assert_eq!(
        guard.validate(&token).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::UnknownKid)
    );
}

#[tokio::test]
async fn the_last_good_keys_keep_working_while_the_idp_is_down() {
    let (issuer, guard) = issuer_and_guard().await;
    let seen = issuer.token().sign();
    guard.validate(&seen).await.unwrap();
    issuer.stop().await;

    // Never-seen tokens signed by known keys: verified with the cached keys.
    for kind in [KeyKind::Rsa, KeyKind::Ec, KeyKind::Ed] {
        let fresh = issuer.token().key(&issuer.key_of(kind)).sign();
        assert!(guard.validate(&fresh).await.is_ok(), "{kind:?}");
    }
    assert!(guard.validate(&seen).await.is_ok());
    // Bad tokens are still refused.
    let forged = issuer
        .token()
        .key(&TestKey::generate(KeyKind::Rsa, "rsa-1"))
        .sign();
    assert!(guard.validate(&forged).await.is_err());

    // An unknown kid makes it try the IdP, which fails: reported, keys kept.
    let stranger = issuer
        .token()
        .key(&TestKey::generate(KeyKind::Rsa, "new"))
        .sign();
    assert_eq!(
        guard.validate(&stranger).await.unwrap_err(),
        AuthError::InvalidToken(TokenError::UnknownKid)
    );
    let status = guard.status();
    assert_eq!(status.state, JwksState::Stale);
    assert!(status.ready && status.last_error.is_some() && status.consecutive_failures >= 1);
    assert_eq!(status.kids.len(), 3);
}

#[tokio::test]
async fn a_guard_started_while_the_idp_is_down_recovers_when_it_returns() {
    let issuer = TestIssuer::start().await;
    issuer.stop().await;
    let guard = Guard::new(issuer.config("order"));
    let token = issuer.token().sign();
    // No keys at all: the token cannot be judged yet — 503, not 401.
    assert_eq!(
        guard.validate(&token).await.unwrap_err(),
        AuthError::KeysUnavailable
    );
    assert_eq!(guard.status().state, JwksState::Unavailable);
    assert!(!guard.status().ready);

    issuer.restart().await;
    assert!(
        guard.wait_ready(Duration::from_secs(15)).await,
        "{:?}",
        guard.status()
    );
    assert!(guard.validate(&token).await.is_ok());
    assert_eq!(guard.status().state, JwksState::Ready);
}

#[tokio::test]
async fn a_guard_made_outside_a_runtime_starts_fetching_on_first_use() {
    let issuer = TestIssuer::start().await;
    let config = issuer.config("order");
    let guard = std::thread::spawn(move || Guard::new(config))
        .join()
        .unwrap();
    assert_eq!(guard.status().state, JwksState::Loading);
    assert!(guard.validate(&issuer.token().sign()).await.is_ok());
}

/// A guard whose key fetcher cannot have its bounded, redirect-refusing HTTP
/// client (here: no TLS trust roots) is refused at start-up, instead of
/// fetching keys with a default client that has no timeout and follows
/// redirects. The roots are hidden from a child process running this test,
/// so this process's environment is left alone.
#[test]
fn a_guard_whose_http_client_cannot_be_built_is_refused() {
    const CHILD: &str = "GUARD_TEST_NO_TRUST_ROOTS";
    if std::env::var_os(CHILD).is_some() {
        let config = guard::GuardConfig::new("https://idp.example", "order");
        let refused = Guard::try_new(config).err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("HTTP client")),
            "{refused:?}"
        );
        return;
    }
    let name = "jwks::a_guard_whose_http_client_cannot_be_built_is_refused";
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", "/nonexistent/ca-certificates.crt")
        .env("SSL_CERT_DIR", "/nonexistent")
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(child.status.success(), "{output}");
    assert!(
        output.contains("1 passed"),
        "the child ran the test: {output}"
    );
}
