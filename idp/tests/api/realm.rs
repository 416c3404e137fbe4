//! Issue 2, rule 7: the realm as data.

use sqlx::PgPool;

use idp::realm;
use idp::seed::{self, SeedConfig};

use crate::helpers::spawn;

#[sqlx::test(migrations = "../migrations/idp")]
async fn seeding_twice_gives_the_same_realm(pool: PgPool) {
    let t = spawn(pool).await;
    let count = |sql: &'static str| {
        let pool = t.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let before = (
        count("SELECT count(*) FROM users").await,
        count("SELECT count(*) FROM user_roles").await,
        count("SELECT count(*) FROM clients").await,
        count("SELECT count(*) FROM scopes").await,
    );
    seed::apply(&t.pool, &t.idp.state.passwords, &SeedConfig::default())
        .await
        .unwrap();
    let after = (
        count("SELECT count(*) FROM users").await,
        count("SELECT count(*) FROM user_roles").await,
        count("SELECT count(*) FROM clients").await,
        count("SELECT count(*) FROM scopes").await,
    );
    // Users, role grants, clients (gateway, cli, reporter, order, payment,
    // inventory) and scopes (with revocations:read).
    assert_eq!(before, (3, 4, 6, 12));
    assert_eq!(before, after);
    let bob = realm::user_by_username(&t.pool, "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        realm::roles_of(&t.pool, bob.id).await.unwrap(),
        vec!["admin"]
    );
    assert!(bob.password_hash.starts_with("$argon2id$"));
    let gateway = realm::client(&t.pool, "gateway").await.unwrap().unwrap();
    assert_eq!(gateway.resources, vec!["order", "payment", "inventory"]);
    assert_eq!(
        gateway.post_logout_redirect_uris,
        vec!["http://localhost:8080/"]
    );
    assert!(realm::client(&t.pool, "cli").await.unwrap().unwrap().public);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_registered_client_and_user_can_sign_in(pool: PgPool) {
    let t = spawn(pool).await;
    idp::admin::upsert_client(
        &t.pool,
        &realm::NewClient {
            id: "my-app".into(),
            name: "My App".into(),
            secret: Some("my-app-secret".into()),
            redirect_uris: vec!["https://my-app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["openid".into(), "email".into()],
            resources: vec!["order".into()],
        },
    )
    .await
    .unwrap();
    let hash = t
        .idp
        .state
        .passwords
        .hash("dave-password".into())
        .await
        .unwrap();
    let (id, created) =
        realm::insert_user(&t.pool, "dave", &hash, "Dave", Some("dave@example.com"))
            .await
            .unwrap();
    assert!(created);
    realm::grant_roles(&t.pool, id, &["support"]).await.unwrap();
    let (_, again) = realm::insert_user(&t.pool, "dave", &hash, "Dave", None)
        .await
        .unwrap();
    assert!(!again, "usernames are unique");

    let query: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "my-app"),
        ("redirect_uri", "https://my-app.example/cb"),
        ("scope", "openid email"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let r = t.browser().sign_in(&query, "dave", "dave-password").await;
    let (target, q) = crate::helpers::location_query(&r);
    assert_eq!(target, "https://my-app.example/cb");
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("my-app", Some("my-app-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "https://my-app.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    let tokens: serde_json::Value = r.json().await.unwrap();
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh_token grant, no refresh token"
    );
    let access: guard::AccessClaims = t
        .verify(tokens["access_token"].as_str().unwrap(), "at+jwt", "order")
        .await;
    assert_eq!(access.roles, vec!["support"]);
    assert_eq!(access.aud, vec!["order"]);

    // A password change ends the user's sessions.
    let ended = idp::sessions::end_all_for_user(
        &t.pool,
        id,
        "password changed",
        std::time::Duration::from_secs(300),
    )
    .await
    .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(
        t.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        reqwest::StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn invalid_registrations_are_refused(pool: PgPool) {
    let t = spawn(pool).await;
    let bad = realm::NewClient {
        id: "bad app".into(),
        name: String::new(),
        secret: None,
        redirect_uris: vec!["https://x.example/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["authorization_code".into()],
        scopes: vec!["openid".into()],
        resources: vec!["order".into()],
    };
    assert!(
        idp::admin::upsert_client(&t.pool, &bad).await.is_err(),
        "the database refuses ids with spaces"
    );
    let insecure = realm::NewClient {
        id: "ok".into(),
        redirect_uris: vec!["http://x.example/cb".into()],
        ..bad
    };
    assert!(idp::admin::upsert_client(&t.pool, &insecure).await.is_err());
}
