//! The revocation stream (`GET /revocations/stream`, the protocol of
//! `guard::subscriber`): logout, reuse, revocation and admin actions reach
//! subscribers as they happen, and a reconnection resumes without loss.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{GATEWAY_SECRET, TestIdp, payload, spawn};

/// A bound for reading, so a broken stream fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(t: &TestIdp, last_event_id: Option<&str>) -> Events {
        let mut req = t
            .http
            .get(t.url("/revocations/stream"))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event as (id, data); `None` when the server closed the stream.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    assert_eq!(field("event:").as_deref(), Some("revocation"));
                    return Some((id, serde_json::from_str(&data).unwrap()));
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn revoke(t: &TestIdp, token: &str) {
    let r = t
        .http
        .post(t.url("/revoke"))
        .basic_auth("gateway", Some(GATEWAY_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn revocations_reach_an_open_stream_as_they_happen(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let tokens = t.gateway_tokens_in(&browser, "openid offline_access").await;
    let mut events = Events::open(&t, None).await;

    revoke(&t, tokens["access_token"].as_str().unwrap()).await;
    let (_, e) = events.next().await.unwrap();
    assert_eq!(e["kind"], "token");
    assert_eq!(
        e["jti"],
        payload(tokens["access_token"].as_str().unwrap())["jti"]
    );
    assert!(e["at"].as_i64().unwrap() > 0);

    // Logout (from the browser of the session): the session's tokens go, by sid.
    let id_token = tokens["id_token"].as_str().unwrap();
    let r = browser
        .get(
            "/logout",
            &[("id_token_hint".to_owned(), id_token.to_owned())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sid = payload(id_token)["sid"].clone();
    let mut kinds = Vec::new();
    while !kinds
        .iter()
        .any(|(k, v): &(Value, Value)| k == "session" && *v == sid)
    {
        let (_, e) = events.next().await.unwrap();
        kinds.push((
            e["kind"].clone(),
            e.get("sid").cloned().unwrap_or(Value::Null),
        ));
    }

    // An administrator revokes every token of a user.
    let sub = payload(id_token)["sub"].as_str().unwrap().parse().unwrap();
    idp::sessions::end_all_for_user(&t.pool, sub, "test", Duration::from_secs(300))
        .await
        .unwrap();
    loop {
        let (_, e) = events.next().await.unwrap();
        if e["kind"] == "subject" {
            assert_eq!(e["sub"], sub.to_string());
            assert!(
                e["issued_before"].as_i64().unwrap() >= payload(id_token)["iat"].as_i64().unwrap()
            );
            break;
        }
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_new_subscriber_gets_the_backlog_and_a_reconnection_resumes_after_its_last_id(
    pool: PgPool,
) {
    let t = spawn(pool).await;
    let a = t.gateway_tokens("openid").await;
    let b = t.gateway_tokens("openid").await;
    revoke(&t, a["access_token"].as_str().unwrap()).await;
    revoke(&t, b["access_token"].as_str().unwrap()).await;
    let jti = |tokens: &Value| payload(tokens["access_token"].as_str().unwrap())["jti"].clone();

    let mut first = Events::open(&t, None).await;
    let (id_a, e) = first.next().await.unwrap();
    assert_eq!(e["jti"], jti(&a));
    let (_, e) = first.next().await.unwrap();
    assert_eq!(e["jti"], jti(&b));
    drop(first);

    let mut resumed = Events::open(&t, Some(&id_a)).await;
    let (_, e) = resumed.next().await.unwrap();
    assert_eq!(e["jti"], jti(&b), "only what came after the last seen id");
    // And then live events.
    let c = t.gateway_tokens("openid").await;
    revoke(&t, c["access_token"].as_str().unwrap()).await;
    assert_eq!(resumed.next().await.unwrap().1["jti"], jti(&c));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_revoked_subject_cannot_use_older_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid").await;
    let at = tokens["access_token"].as_str().unwrap();
    let sub = payload(at)["sub"].as_str().unwrap().parse().unwrap();
    let ended = idp::sessions::end_all_for_user(&t.pool, sub, "test", Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(t.userinfo(at).await.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn stopping_the_server_ends_open_streams(pool: PgPool) {
    let t = spawn(pool).await;
    let mut events = Events::open(&t, None).await;
    drop(t.idp);
    assert!(
        events.next().await.is_none(),
        "the stream ends with the server (graceful shutdown)"
    );
}
