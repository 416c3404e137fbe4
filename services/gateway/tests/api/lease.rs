//! The refresh lease against PostgreSQL: one holder at a time, however many
//! claim at once; a holder stores only while the lease is its own; a lease
//! that ran out can be taken over, and the late holder then stores nothing.

use std::time::Duration;

use gateway::session::refresh::{LEASE_MARGIN, Stored};
use gateway::session::{SessionData, SessionId};
use sqlx::PgPool;

use crate::sessions::{data, store};

fn refreshed(mut data: SessionData, token: &str) -> SessionData {
    data.tokens.access_token = token.to_owned();
    data.tokens.refresh_token = Some(format!("{token}-refresh"));
    data
}

async fn access_token(sessions: &gateway::session::SessionStore, id: &SessionId) -> String {
    let snapshot = sessions.snapshot(id).await.unwrap().unwrap();
    snapshot.data.tokens.access_token
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn of_two_hundred_simultaneous_claims_exactly_one_gets_the_lease(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    let id = sessions.create(&data()).await.unwrap();
    let cookie = id.as_str().to_owned();
    let claims = (0..200).map(|_| {
        let (sessions, cookie) = (sessions.clone(), cookie.clone());
        tokio::spawn(async move {
            let id = SessionId::from_cookie(&cookie).unwrap();
            let seen = sessions.snapshot(&id).await.unwrap().unwrap();
            sessions.claim_refresh(&id, &seen).await.unwrap().is_some()
        })
    });
    let won = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter(|claimed| *claimed.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    assert!(sessions.snapshot(&id).await.unwrap().unwrap().leased);
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn a_lease_excludes_others_until_its_holder_stores(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    assert_eq!(
        sessions.lease_duration(),
        Duration::from_secs(10) + LEASE_MARGIN,
        "the lease outlives the refresh: discovery and token request, 5 s each"
    );
    let id = sessions.create(&data()).await.unwrap();
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    assert!(!seen.leased);
    let lease = sessions.claim_refresh(&id, &seen).await.unwrap().unwrap();

    let other = sessions.snapshot(&id).await.unwrap().unwrap();
    assert!(other.leased);
    assert!(sessions.claim_refresh(&id, &other).await.unwrap().is_none());

    let next = refreshed(seen.data, "second");
    assert_eq!(
        sessions.store_refreshed(&lease, &next).await.unwrap(),
        Stored::Done
    );
    assert_eq!(access_token(&sessions, &id).await, "second");
    // Released by storing; but a claim on the row as it was before is refused:
    // its refresh token has just been used.
    assert!(!sessions.snapshot(&id).await.unwrap().unwrap().leased);
    assert!(sessions.claim_refresh(&id, &other).await.unwrap().is_none());
    // A stored lease is spent.
    let again = refreshed(next, "third");
    assert_eq!(
        sessions.store_refreshed(&lease, &again).await.unwrap(),
        Stored::Lost
    );
    assert_eq!(access_token(&sessions, &id).await, "second");

    // A released lease lets the next claimer in.
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    let lease = sessions.claim_refresh(&id, &seen).await.unwrap().unwrap();
    sessions.release(lease).await.unwrap();
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    assert!(!seen.leased);
    assert!(sessions.claim_refresh(&id, &seen).await.unwrap().is_some());
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn a_holder_whose_lease_ran_out_and_was_taken_stores_nothing(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    let id = sessions.create(&data()).await.unwrap();
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    let late = sessions.claim_refresh(&id, &seen).await.unwrap().unwrap();

    sqlx::query!("UPDATE sessions SET refresh_until = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    assert!(!seen.leased, "a lease that ran out is free");
    let taker = sessions.claim_refresh(&id, &seen).await.unwrap().unwrap();

    assert_eq!(
        sessions
            .store_refreshed(&late, &refreshed(data(), "late"))
            .await
            .unwrap(),
        Stored::Lost
    );
    assert_eq!(
        sessions
            .store_refreshed(&taker, &refreshed(data(), "taker"))
            .await
            .unwrap(),
        Stored::Done
    );
    assert_eq!(access_token(&sessions, &id).await, "taker");
}

#[sqlx::test(migrations = "../../migrations/gateway")]
async fn a_session_signed_out_during_its_refresh_is_not_brought_back(pool: PgPool) {
    let sessions = store(&pool, 1, Duration::from_secs(600));
    let id = sessions.create(&data()).await.unwrap();
    let seen = sessions.snapshot(&id).await.unwrap().unwrap();
    let lease = sessions.claim_refresh(&id, &seen).await.unwrap().unwrap();
    assert!(sessions.delete(&id).await.unwrap());
    assert_eq!(
        sessions
            .store_refreshed(&lease, &refreshed(data(), "new"))
            .await
            .unwrap(),
        Stored::Gone
    );
    assert!(sessions.load(&id).await.unwrap().is_none());
}
