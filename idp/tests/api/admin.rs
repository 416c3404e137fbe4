//! Issue 15, item 3: administrative changes to users, clients, scopes and
//! resources take effect everywhere (sessions, refresh tokens, access tokens
//! through the revocation paths), and the catalog keeps registrations valid.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use idp::admin::{self, ClientChanges};
use idp::catalog::{self, Catalog};
use idp::realm::{self, NewClient, RealmError};

use crate::helpers::{TestIdp, error_of, spawn};

const TTL: Duration = Duration::from_secs(300);

async fn alice(t: &TestIdp) -> realm::User {
    realm::user_by_username(&t.pool, "alice")
        .await
        .unwrap()
        .unwrap()
}

/// Whether the access token is revoked (what every validator learns).
async fn revoked(t: &TestIdp, token: &str) -> bool {
    let claims: guard::AccessClaims = t.verify(token, "at+jwt", "order").await;
    idp::revocations::is_revoked(&t.pool, &claims)
        .await
        .unwrap()
}

async fn events(t: &TestIdp, kind: &str) -> i64 {
    t.audit_lines("alice", kind).await
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn disabling_a_user_ends_sessions_and_revokes_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let tokens = t.gateway_tokens_in(&b, "openid offline_access").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(!revoked(&t, access).await);

    let ended = admin::set_user_disabled(&t.pool, &alice(&t).await, true, TTL)
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(events(&t, "user_disabled").await, 1);
    assert!(revoked(&t, access).await);
    assert_eq!(t.refresh(refresh).await.0, StatusCode::BAD_REQUEST);
    // No new sign-in either: the login form again, no code.
    let r = b
        .sign_in(
            &crate::helpers::gateway_authorize("openid"),
            "alice",
            "alice-password",
        )
        .await;
    assert_ne!(r.status(), StatusCode::SEE_OTHER);
    let listed = admin::users(&t.pool).await.unwrap();
    assert!(listed.iter().any(|u| u.username == "alice" && u.disabled));

    // Enabled again, she signs in.
    admin::set_user_disabled(&t.pool, &alice(&t).await, false, TTL)
        .await
        .unwrap();
    assert_eq!(events(&t, "user_enabled").await, 1);
    t.gateway_tokens("openid").await;
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn deleting_a_user_revokes_everything_and_is_audited(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    let access = tokens["access_token"].as_str().unwrap();
    let user = alice(&t).await;
    assert_eq!(admin::delete_user(&t.pool, &user, TTL).await.unwrap(), 1);
    assert!(realm::user_by_id(&t.pool, user.id).await.unwrap().is_none());
    assert_eq!(events(&t, "user_deleted").await, 1);
    assert!(revoked(&t, access).await);
    let (status, body) = t.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

/// A confidential client_credentials client never looked up by the server
/// before (so no cached copy hides a change).
async fn machine(t: &TestIdp, id: &str) -> String {
    let secret = format!("{id}-secret");
    idp::admin::upsert_client(
        &t.pool,
        &NewClient {
            id: id.into(),
            name: String::new(),
            secret: Some(secret.clone()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["orders:read".into()],
            resources: vec!["order".into()],
        },
    )
    .await
    .unwrap();
    secret
}

async fn client_credentials(t: &TestIdp, id: &str, secret: &str) -> reqwest::Response {
    t.client_credentials((id, secret), &[]).await
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_disabled_or_deleted_client_cannot_authenticate_and_its_tokens_are_revoked(pool: PgPool) {
    let t = spawn(pool).await;
    let secret = machine(&t, "job-a").await;
    admin::set_client_disabled(&t.pool, "job-a", true, TTL)
        .await
        .unwrap();
    assert_eq!(
        error_of(client_credentials(&t, "job-a", &secret).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let listed = realm::any_client(&t.pool, "job-a").await.unwrap().unwrap();
    assert!(listed.disabled);

    // Its client_credentials tokens issued before are revoked (sub = client).
    let secret = machine(&t, "job-b").await;
    let r = client_credentials(&t, "job-b", &secret).await;
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!revoked(&t, &token).await);
    admin::delete_client(&t.pool, "job-b", TTL).await.unwrap();
    assert!(revoked(&t, &token).await);
    assert!(realm::any_client(&t.pool, "job-b").await.unwrap().is_none());

    assert!(matches!(
        admin::delete_client(&t.pool, "nobody", TTL).await,
        Err(RealmError::NotFound(_))
    ));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn disabling_a_client_revokes_its_refresh_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid offline_access").await;
    let revoked_refresh = admin::set_client_disabled(&t.pool, "gateway", true, TTL)
        .await
        .unwrap();
    assert_eq!(revoked_refresh, 1);
    assert!(revoked(&t, tokens["access_token"].as_str().unwrap()).await);
    let refreshed: Option<String> =
        sqlx::query_scalar("SELECT client_id FROM refresh_tokens WHERE revoked_at IS NULL")
            .fetch_optional(&t.pool)
            .await
            .unwrap();
    assert_eq!(refreshed, None);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_rotated_secret_replaces_the_old_one(pool: PgPool) {
    let t = spawn(pool).await;
    let old = machine(&t, "job-c").await;
    let new = admin::rotate_secret(&t.pool, "job-c").await.unwrap();
    assert_ne!(old, new);
    assert_eq!(
        error_of(client_credentials(&t, "job-c", &old).await)
            .await
            .1,
        "invalid_client"
    );
    assert_eq!(
        client_credentials(&t, "job-c", &new).await.status(),
        StatusCode::OK
    );
    assert!(matches!(
        admin::rotate_secret(&t.pool, "cli").await,
        Err(RealmError::Invalid(_))
    ));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn updates_are_checked_like_registrations(pool: PgPool) {
    let t = spawn(pool).await;
    machine(&t, "job-d").await;
    let change = |c: ClientChanges| admin::update_client(&t.pool, "job-d", c);
    for bad in [
        ClientChanges {
            scopes: Some(vec!["reports:write".into()]),
            ..Default::default()
        },
        ClientChanges {
            resources: Some(vec!["reports".into()]),
            ..Default::default()
        },
        ClientChanges {
            resources: Some(vec![]),
            ..Default::default()
        },
        ClientChanges {
            grant_types: Some(vec!["authorization_code".into()]),
            ..Default::default()
        },
    ] {
        assert!(matches!(change(bad).await, Err(RealmError::Invalid(_))));
    }
    catalog::add(&t.pool, Catalog::Scopes, "reports:write", "")
        .await
        .unwrap();
    catalog::add(&t.pool, Catalog::Resources, "reports", "")
        .await
        .unwrap();
    let updated = change(ClientChanges {
        name: Some("Reports job".into()),
        scopes: Some(vec!["reports:write".into()]),
        resources: Some(vec!["reports".into()]),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.grant_types.len()),
        ("Reports job", 1)
    );
    assert!(matches!(
        admin::update_client(&t.pool, "nobody", ClientChanges::default()).await,
        Err(RealmError::NotFound(_))
    ));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn catalog_rows_stay_while_a_client_names_them(pool: PgPool) {
    let t = spawn(pool).await;
    // The defaults are rows from the migration on; resources from the seed.
    let scopes = catalog::list(&t.pool, Catalog::Scopes).await.unwrap();
    let orders_read = scopes.iter().find(|e| e.name == "orders:read").unwrap();
    assert!(orders_read.clients.contains(&"reporter".to_owned()));
    let resources = catalog::names(&t.pool, Catalog::Resources).await.unwrap();
    assert_eq!(resources, vec!["gateway", "inventory", "order", "payment"]);

    for (kind, name) in [
        (Catalog::Scopes, "orders:read"),
        (Catalog::Resources, "order"),
        (Catalog::Scopes, "openid"),
    ] {
        assert!(
            matches!(
                catalog::remove(&t.pool, kind, name).await,
                Err(RealmError::Invalid(_))
            ),
            "{name}"
        );
    }
    assert!(matches!(
        catalog::remove(&t.pool, Catalog::Scopes, "nothing").await,
        Err(RealmError::NotFound(_))
    ));
    assert!(matches!(
        catalog::add(&t.pool, Catalog::Scopes, "bad scope", "").await,
        Err(RealmError::Invalid(_))
    ));
    assert!(
        catalog::add(&t.pool, Catalog::Resources, "reports", "Reports")
            .await
            .unwrap()
    );
    assert!(
        !catalog::add(&t.pool, Catalog::Resources, "reports", "The reports")
            .await
            .unwrap(),
        "a second add only changes the description"
    );
    catalog::remove(&t.pool, Catalog::Resources, "reports")
        .await
        .unwrap();
    assert!(
        !catalog::names(&t.pool, Catalog::Resources)
            .await
            .unwrap()
            .contains(&"reports".to_owned())
    );
}
