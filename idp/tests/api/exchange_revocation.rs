//! Revoking a root token ends every token exchanged from it (RFC 8693),
//! although the exchange records nothing: the derived tokens name the root in
//! `derived_from`, and every reader of the revocation log — the IdP's
//! introspection and exchange, each service's guard — refuses them.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::{AccessClaims, AuthError, Guard, GuardConfig, TokenError};

use crate::exchange::{ORDER, active, error_of, exchange};
use crate::helpers::{GATEWAY_SECRET, TestIdp, spawn};

const GATEWAY: (&str, &str) = ("gateway", GATEWAY_SECRET);

async fn exchanged(t: &TestIdp, client: (&str, &str), subject: &str, audience: &str) -> String {
    let r = exchange(t, client, subject, &[("audience", audience)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A guard for `audience` subscribed to the IdP's revocation stream, as a
/// service runs it.
async fn subscribed_guard(t: &TestIdp, audience: &str) -> Guard {
    let stream = url::Url::parse(&t.url("/revocations/stream")).unwrap();
    let guard = Guard::new(
        GuardConfig::new(&t.idp.issuer, audience)
            .with_revocation_stream(stream)
            .with_client_credentials(GATEWAY.0, GATEWAY.1),
    );
    assert!(guard.wait_ready(Duration::from_secs(10)).await);
    guard
}

fn revoked(result: Result<guard::Principal, AuthError>) -> bool {
    result.is_err_and(|e| e == AuthError::InvalidToken(TokenError::Revoked))
}

/// Hundreds of exchanges of a derived token while its root is revoked: some
/// are granted before the IdP sees the revocation, some after. Whatever was
/// granted is refused by a real guard once the revocation arrives and is
/// inactive at introspection; what was refused is a clear `invalid_request`.
#[sqlx::test(migrations = "../migrations/idp")]
async fn exchanges_racing_the_roots_revocation_are_all_refused_afterwards(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t
        .gateway_tokens("openid orders:write inventory:write payments:write")
        .await;
    let root = tokens["access_token"].as_str().unwrap().to_owned();
    let for_order = exchanged(&t, GATEWAY, &root, "order").await;
    let inventory = subscribed_guard(&t, "inventory").await;
    // Granted and cached at inventory before the revocation.
    let before = exchanged(&t, ORDER, &for_order, "inventory").await;
    inventory.validate(&before).await.unwrap();

    let grants = join_all((0..300).map(|_| async {
        let r = exchange(&t, ORDER, &for_order, &[("audience", "inventory")]).await;
        match r.status() {
            StatusCode::OK => Some(
                r.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            _ => {
                assert_eq!(error_of(r).await, "invalid_request");
                None
            }
        }
    }));
    let (grants, ()) = tokio::join!(grants, t.revoke_as(GATEWAY, &root));
    let granted: Vec<String> = grants.into_iter().flatten().collect();

    for _ in 0..500 {
        if revoked(inventory.validate(&before).await) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        revoked(inventory.validate(&before).await),
        "the revocation arrived"
    );
    for token in granted.iter().chain([&before]) {
        assert!(
            revoked(inventory.validate(token).await),
            "refused by a guard"
        );
        assert!(!active(&t, token).await, "introspection: inactive");
    }
    assert!(!active(&t, &for_order).await);
    assert_eq!(
        error_of(exchange(&t, ORDER, &for_order, &[("audience", "inventory")]).await).await,
        "invalid_request",
        "nothing more is granted"
    );
}

/// Introspection of a token two exchanges away from a revoked root: inactive,
/// while a token exchanged from another root stays active.
#[sqlx::test(migrations = "../migrations/idp")]
async fn a_token_two_exchanges_from_a_revoked_root_is_inactive_at_introspection(pool: PgPool) {
    let t = spawn(pool).await;
    let scope = "openid orders:write inventory:write payments:write";
    let root = t.gateway_tokens(scope).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let for_order = exchanged(&t, GATEWAY, &root, "order").await;
    let for_inventory = exchanged(&t, ORDER, &for_order, "inventory").await;
    let bystander_root = t.gateway_tokens(scope).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bystander = exchanged(&t, GATEWAY, &bystander_root, "order").await;
    assert!(active(&t, &for_inventory).await);

    t.revoke_as(GATEWAY, &root).await;
    assert!(
        !active(&t, &for_inventory).await,
        "two exchanges from the root"
    );
    assert!(!active(&t, &for_order).await);
    assert!(
        active(&t, &bystander).await,
        "another root's token lives on"
    );
}

/// The exchange grant asks the IdP's copy of the revocation log, not
/// PostgreSQL, once the copy is whole and current; a revocation another
/// process writes (here a row written straight into the log, which this
/// process did not note) reaches the copy, so the grant refuses the token
/// two exchanges from the root, and introspection (which reads the log)
/// agrees. One this process writes (`POST /revoke`) is refused at once.
#[sqlx::test(migrations = "../migrations/idp")]
async fn the_grant_asks_the_copy_of_the_log_and_the_copy_follows_other_writers(pool: PgPool) {
    let t = spawn(pool).await;
    let scope = "openid orders:write inventory:write payments:write";
    let tokens = || async {
        t.gateway_tokens(scope).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (root, other_root) = (tokens().await, tokens().await);
    let for_order = exchanged(&t, GATEWAY, &root, "order").await;
    let claims: AccessClaims = idp::tokens::unverified_claims(&for_order).unwrap();
    let answers = |want: Option<bool>| copy_answers(&t, &claims, want);
    assert!(answers(Some(false)).await, "the copy is whole and current");
    exchanged(&t, ORDER, &for_order, "inventory").await;

    let root_claims: AccessClaims = idp::tokens::unverified_claims(&root).unwrap();
    sqlx::query(
        "INSERT INTO revocations (kind, value, reason, expires_at)
         VALUES ('jti', $1, 'elsewhere', now() + interval '10 minutes')",
    )
    .bind(&root_claims.jti)
    .execute(&t.pool)
    .await
    .unwrap();
    assert!(answers(Some(true)).await, "the copy learns of it");
    assert_eq!(
        error_of(exchange(&t, ORDER, &for_order, &[("audience", "inventory")]).await).await,
        "invalid_request"
    );
    assert!(!active(&t, &for_order).await);

    // Revoked through this IdP: refused by the very next grant.
    let other = exchanged(&t, GATEWAY, &other_root, "order").await;
    t.revoke_as(GATEWAY, &other_root).await;
    assert_eq!(
        error_of(exchange(&t, ORDER, &other, &[("audience", "inventory")]).await).await,
        "invalid_request",
        "a revocation written here is refused at once"
    );
}

/// Whether the IdP's copy of the revocation log comes to answer `want` for
/// `claims` within five seconds.
async fn copy_answers(t: &TestIdp, claims: &AccessClaims, want: Option<bool>) -> bool {
    for _ in 0..500 {
        if t.idp.state.revocation_view.verdict(claims) == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
