//! The session store against PostgreSQL: sealed rows, expiry, deletion.

use std::time::Duration;

use gateway::oidc::TokenSet;
use gateway::session::{SessionData, SessionStore, User};
use platform::crypto::SealKey;
use sqlx::PgPool;

pub fn data() -> SessionData {
    SessionData::new(
        User {
            sub: "0190-user".into(),
            name: Some("Alice Adams".into()),
            email: None,
            roles: vec!["customer".into()],
            scope: "openid orders:read".into(),
            sid: Some("idp-session".into()),
        },
        TokenSet {
            access_token: "eyJ.access.token".into(),
            expires_at: 4_000_000_000,
            refresh_token: Some("refresh-secret".into()),
            id_token: Some("eyJ.id.token".into()),
        },
    )
}

pub fn store(pool: &PgPool, key: u8, idle: Duration) -> SessionStore {
    SessionStore::new(
        pool.clone(),
        SealKey::new(&[key; 32]).unwrap(),
        idle,
        Duration::from_secs(3600),
        Duration::from_secs(5),
    )
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn sessions_are_sealed_and_open_only_with_their_key(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    let id = sessions.create(&data()).await.unwrap();
    let loaded = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.user.name.as_deref(), Some("Alice Adams"));
    assert_eq!(
        loaded.tokens.refresh_token.as_deref(),
        Some("refresh-secret")
    );

    let row = sqlx::query!("SELECT id_hash, sealed FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (hash, sealed) = (row.id_hash, row.sealed);
    assert_ne!(hash, id.as_str().as_bytes());
    let text = String::from_utf8_lossy(&sealed);
    assert!(!text.contains("refresh-secret") && !text.contains("Alice"));

    // Another key (rotated, or a copied table) opens nothing: the session is gone, not an error.
    assert!(
        store(&pool, 2, Duration::from_secs(600))
            .load(&id)
            .await
            .unwrap()
            .is_none()
    );
    // Rows cannot be swapped: a sealed value moved to another id does not open.
    let other = sessions.create(&data()).await.unwrap();
    sqlx::query!(
        "UPDATE sessions SET sealed = $1 WHERE id_hash <> $2",
        &sealed,
        &hash,
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(sessions.load(&other).await.unwrap().is_none());
    assert!(sessions.load(&id).await.unwrap().is_some());

    assert!(sessions.delete(&id).await.unwrap());
    assert!(sessions.load(&id).await.unwrap().is_none());
    assert!(!sessions.delete(&id).await.unwrap());
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn idle_sessions_expire_slide_when_used_and_are_purged(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    let id = sessions.create(&data()).await.unwrap();

    // Used when close to its idle expiry: the expiry slides forward.
    sqlx::query!("UPDATE sessions SET idle_until = now() + interval '10 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sessions.load(&id).await.unwrap().is_some());
    let left = sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM idle_until - now())::float8 AS "left!" FROM sessions"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(left > 500.0, "idle expiry slid to ~600 s, found {left}");

    // Past its idle expiry: gone for the user, and purged.
    sqlx::query!("UPDATE sessions SET idle_until = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sessions.load(&id).await.unwrap().is_none());
    let live = sessions.create(&data()).await.unwrap();
    assert_eq!(sessions.purge_expired().await.unwrap(), 1);
    assert!(sessions.load(&live).await.unwrap().is_some());

    // The absolute lifetime bounds the sliding one.
    sqlx::query!("UPDATE sessions SET expires_at = now() - interval '1 second', idle_until = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sessions.load(&live).await.unwrap().is_none());
}
