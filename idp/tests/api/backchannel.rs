//! Issue 15 item 5: OpenID Connect Back-Channel Logout, the IdP's side — the
//! logout token's contents, delivery from the outbox with retries and
//! bounded attempts, and two replicas sharing the outbox (discovery's
//! `backchannel_logout_*` fields: `discovery.rs`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use idp::admin::upsert_client;
use idp::client_extras::ClientExtras;
use idp::realm::NewClient;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::helpers::{TestIdp, payload, spawn, spawn_with};

/// Only bounds a broken build's wait: delivery takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A client's back-channel logout endpoint: answers the scripted statuses in
/// turn (then 200) and hands over every logout token it receives.
struct Receiver {
    url: String,
    tokens: mpsc::UnboundedReceiver<String>,
}

async fn receiver(script: &[u16]) -> Receiver {
    let (tx, tokens) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let app = Router::new().route(
        "/bcl",
        post(move |body: String| async move {
            let token = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let _ = tx.send(token);
            let status = script.lock().unwrap().pop_front().unwrap_or(200);
            axum::http::StatusCode::from_u16(status).unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bcl", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, tokens }
}

impl Receiver {
    async fn next(&mut self) -> String {
        tokio::time::timeout(DEADLINE, self.tokens.recv())
            .await
            .expect("a logout token arrives")
            .expect("the receiver runs")
    }

    /// Every token received so far, once the outbox is empty (nothing more can come).
    async fn rest_after_outbox_drained(&mut self, pool: &PgPool) -> Vec<String> {
        outbox_drained(pool).await;
        let mut rest = Vec::new();
        while let Ok(t) = self.tokens.try_recv() {
            rest.push(t);
        }
        rest
    }
}

async fn outbox_len(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM backchannel_logout_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn outbox_drained(pool: &PgPool) {
    let deadline = Instant::now() + DEADLINE;
    while outbox_len(pool).await > 0 {
        assert!(Instant::now() < deadline, "the outbox never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers `uri` as the gateway's back-channel logout URI.
async fn register(pool: &PgPool, client: &str, uri: &str) {
    ClientExtras {
        backchannel_logout_uri: Some(uri.to_owned()),
        ..Default::default()
    }
    .save(pool, client, false)
    .await
    .unwrap();
}

/// Alice signs in through the gateway in a new browser: the token response
/// and the SSO session (`sid` of the ID token).
async fn gateway_session(t: &TestIdp) -> (Value, Uuid) {
    let tokens = t.gateway_tokens_in(&t.browser(), "openid").await;
    let sid = payload(tokens["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .expect("the ID token carries sid")
        .parse()
        .unwrap();
    (tokens, sid)
}

async fn end(t: &TestIdp, sid: Uuid) {
    assert!(
        idp::sessions::end(&t.pool, sid, "test", Duration::from_secs(300))
            .await
            .unwrap()
    );
}

fn retry_fast(attempts: u32) -> impl FnOnce(&mut idp::Config) {
    move |c| {
        c.backchannel_logout_retry = Duration::from_millis(20);
        c.backchannel_logout_attempts = attempts;
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn signing_out_posts_a_signed_logout_token_to_each_client_of_the_session(pool: PgPool) {
    let t = spawn(pool).await;
    let mut rp = receiver(&[]).await;
    register(&t.pool, "gateway", &rp.url).await;
    // A client with a URI that took no part in the session gets nothing.
    upsert_client(
        &t.pool,
        &NewClient {
            id: "bystander".into(),
            name: "Bystander".into(),
            secret: Some("bystander-secret".into()),
            redirect_uris: vec!["https://bystander.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["openid".into()],
            resources: vec!["order".into()],
        },
    )
    .await
    .unwrap();
    register(&t.pool, "bystander", &rp.url).await;

    let browser = t.browser();
    let tokens = t.gateway_tokens_in(&browser, "openid").await;
    let id_token = payload(tokens["id_token"].as_str().unwrap());
    // RP-initiated logout naming the session: it ends without a question.
    let r = browser
        .get(
            "/logout",
            &[(
                "id_token_hint".to_owned(),
                tokens["id_token"].as_str().unwrap().to_owned(),
            )],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let token = rp.next().await;
    // Signature (with the key from /jwks.json), iss, aud, exp, iat, sub.
    let claims: Value = t.verify(&token, "logout+jwt", "gateway").await;
    assert_eq!(claims["sid"], id_token["sid"], "{claims}");
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(claims["aud"], "gateway");
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 120, "{claims}");
    // What a relying party's guard checks passes too.
    let verifier = guard::Guard::new(guard::GuardConfig::new(&t.idp.issuer, "gateway"))
        .logout_token_verifier("gateway");
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.sid.as_deref(), id_token["sid"].as_str());

    assert!(
        rp.rest_after_outbox_drained(&t.pool).await.is_empty(),
        "one token: the bystander took no part"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_failed_delivery_is_retried_until_it_succeeds(pool: PgPool) {
    let t = spawn_with(pool, retry_fast(5)).await;
    let mut rp = receiver(&[503, 500]).await;
    register(&t.pool, "gateway", &rp.url).await;
    let (_, sid) = gateway_session(&t).await;
    end(&t, sid).await;

    let tries = [rp.next().await, rp.next().await, rp.next().await];
    let mut jtis = HashSet::new();
    for token in &tries {
        let claims = payload(token);
        assert_eq!(claims["sid"], sid.to_string());
        jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 3, "each attempt is a new token, never a replay");
    assert!(
        rp.rest_after_outbox_drained(&t.pool).await.is_empty(),
        "delivered on the third attempt, then done"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn attempts_are_bounded_and_a_refusal_is_not_retried(pool: PgPool) {
    let t = spawn_with(pool, retry_fast(3)).await;
    let mut rp = receiver(&[500, 502, 503, 400]).await;
    register(&t.pool, "gateway", &rp.url).await;

    let (_, sid) = gateway_session(&t).await;
    end(&t, sid).await;
    for _ in 0..3 {
        rp.next().await;
    }
    assert!(
        rp.rest_after_outbox_drained(&t.pool).await.is_empty(),
        "given up after 3 attempts"
    );

    let (_, sid) = gateway_session(&t).await;
    end(&t, sid).await;
    assert_eq!(payload(&rp.next().await)["sid"], sid.to_string());
    assert!(
        rp.rest_after_outbox_drained(&t.pool).await.is_empty(),
        "a 400 (the client refused the token) is final"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_row_one_replica_holds_is_skipped_by_another_without_waiting(pool: PgPool) {
    // The background worker stays asleep: the test drives delivery itself.
    let t = spawn_with(pool, |c| {
        c.backchannel_logout_retry = Duration::from_secs(600);
    })
    .await;
    let mut rp = receiver(&[]).await;
    register(&t.pool, "gateway", &rp.url).await;
    let (_, sid) = gateway_session(&t).await;
    end(&t, sid).await;
    assert_eq!(
        outbox_len(&t.pool).await,
        1,
        "queued with the session's end"
    );

    let mut other = t.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM backchannel_logout_outbox FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let claimed = tokio::time::timeout(DEADLINE, idp::backchannel::deliver_due(&t.idp.state))
        .await
        .expect("never waits for another replica's lock")
        .unwrap();
    assert_eq!(claimed, 0);
    other.rollback().await.unwrap();

    assert_eq!(
        idp::backchannel::deliver_due(&t.idp.state).await.unwrap(),
        1
    );
    assert_eq!(payload(&rp.next().await)["sid"], sid.to_string());
    assert_eq!(outbox_len(&t.pool).await, 0);
    assert_eq!(
        idp::backchannel::deliver_due(&t.idp.state).await.unwrap(),
        0
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn two_replicas_deliver_every_logout_token_exactly_once(pool: PgPool) {
    let t = spawn_with(pool.clone(), retry_fast(5)).await;
    let _second = idp::spawn(pool, retry_fast(5)).await.unwrap();
    let mut rp = receiver(&[]).await;
    register(&t.pool, "gateway", &rp.url).await;
    let mut sids = HashSet::new();
    for _ in 0..6 {
        sids.insert(gateway_session(&t).await.1.to_string());
    }
    let alice: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    // An administrator ends every session of alice at once.
    let ended = idp::sessions::end_all_for_user(&t.pool, alice, "test", Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(ended, 6);

    let mut delivered = Vec::new();
    for _ in 0..6 {
        delivered.push(
            payload(&rp.next().await)["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(rp.rest_after_outbox_drained(&t.pool).await.is_empty());
    assert_eq!(delivered.len(), 6);
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), sids);
}
