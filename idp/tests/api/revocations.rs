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

/// One event: (name, id, data).
type Sse = (String, String, Value);

impl Events {
    /// Opens the stream as the gateway (registered with `revocations:read`).
    async fn open(t: &TestIdp, last_event_id: Option<&str>) -> Events {
        let response = request(t, last_event_id)
            .basic_auth("gateway", Some(GATEWAY_SECRET))
            .send()
            .await
            .unwrap();
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

    /// The next revocation as (id, data), skipping checkpoints; `None` when
    /// the server closed the stream.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            let (name, id, data) = self.next_any().await?;
            if name == "revocation" {
                return Some((id, data));
            }
        }
    }

    /// The revocations up to the next `caught-up`, and that checkpoint's id.
    async fn until_caught_up(&mut self) -> (Vec<Value>, String) {
        let mut events = Vec::new();
        loop {
            let (name, id, data) = self.next_any().await.expect("the stream stays open");
            match name.as_str() {
                "revocation" => events.push(data),
                "caught-up" => return (events, id),
                _ => {}
            }
        }
    }

    /// The next event of any kind.
    async fn next_any(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                if let (Some(name), Some(data)) = (field("event:"), field("data:")) {
                    let id = field("id:").unwrap_or_default();
                    return Some((name, id, serde_json::from_str(&data).unwrap()));
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

fn request(t: &TestIdp, last_event_id: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = t
        .http
        .get(t.url("/revocations/stream"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req
}

async fn revoke(t: &TestIdp, token: &str) {
    t.revoke_as(("gateway", GATEWAY_SECRET), token).await;
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

/// A revocation is recorded in an open transaction (a sign-out in progress)
/// while a later one commits; the earlier-numbered one commits last. A reader
/// that paged by insertion order would have moved past it for good.
#[sqlx::test(migrations = "../migrations/idp")]
async fn a_revocation_committed_after_a_later_one_still_reaches_open_and_new_streams(pool: PgPool) {
    let t = spawn(pool).await;
    let mut events = Events::open(&t, None).await;
    let _ = events.until_caught_up().await;
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(300);

    let mut slow = t.pool.begin().await.unwrap();
    idp::revocations::record(&mut slow, "jti", "inserted-first", "test", expires)
        .await
        .unwrap();
    let mut conn = t.pool.acquire().await.unwrap();
    idp::revocations::record(&mut conn, "jti", "committed-first", "test", expires)
        .await
        .unwrap();
    assert_eq!(events.next().await.unwrap().1["jti"], "committed-first");
    slow.commit().await.unwrap();
    assert_eq!(events.next().await.unwrap().1["jti"], "inserted-first");

    // A subscriber that resumes after the first one it saw gets the second.
    let mut fresh = Events::open(&t, None).await;
    let (id, first) = fresh.next().await.unwrap();
    assert_eq!(first["jti"], "committed-first");
    let mut resumed = Events::open(&t, Some(&id)).await;
    let (backlog, _) = resumed.until_caught_up().await;
    let jtis: Vec<&Value> = backlog.iter().map(|e| &e["jti"]).collect();
    assert_eq!(jtis, ["inserted-first"]);
}

/// More revocations than one page of the log (1000): a new subscriber gets
/// all of them before its first checkpoint, and one resuming from any event
/// gets every later one.
#[sqlx::test(migrations = "../migrations/idp")]
async fn subscribers_get_every_revocation_however_many_pages(pool: PgPool) {
    let t = spawn(pool).await;
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(300);
    let mut tx = t.pool.begin().await.unwrap();
    for i in 0..2500 {
        idp::revocations::record(&mut tx, "jti", &format!("j{i}"), "test", expires)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut first = Events::open(&t, None).await;
    let (all, _) = first.until_caught_up().await;
    assert_eq!(all.len(), 2500, "the whole backlog before the checkpoint");
    let mut second = Events::open(&t, None).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(second.next().await.unwrap().0);
    }
    let mut resumed = Events::open(&t, Some(&ids[9])).await;
    let (rest, _) = resumed.until_caught_up().await;
    assert_eq!(rest.len(), 2490, "everything after the tenth event");
    assert_eq!(rest[0]["jti"], all[10]["jti"]);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_subscriber_whose_position_was_purged_gets_a_snapshot(pool: PgPool) {
    let t = spawn(pool).await;
    let live = time::OffsetDateTime::now_utc() + Duration::from_secs(300);
    let long_gone = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let mut conn = t.pool.acquire().await.unwrap();
    for (jti, expires) in [("old", long_gone), ("kept", live), ("purged", long_gone)] {
        idp::revocations::record(&mut conn, "jti", jti, "test", expires)
            .await
            .unwrap();
    }
    idp::revocations::purge(&t.pool).await.unwrap();

    // Resuming from before the purge point: a snapshot of what is live.
    let mut resumed = Events::open(&t, Some("1")).await;
    let (name, _, data) = resumed.next_any().await.unwrap();
    assert_eq!(name, "snapshot", "{data}");
    let (backlog, _) = resumed.until_caught_up().await;
    assert_eq!(backlog.len(), 1);
    assert_eq!(backlog[0]["jti"], "kept");
    // From after it: nothing is missing, no snapshot.
    let mut after = Events::open(&t, Some("3")).await;
    assert_eq!(after.next_any().await.unwrap().0, "caught-up");
    // A position this log never gave out: a snapshot too.
    let mut foreign = Events::open(&t, Some("999999")).await;
    assert_eq!(foreign.next_any().await.unwrap().0, "snapshot");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn only_registered_resource_servers_may_read_the_stream(pool: PgPool) {
    let t = spawn(pool).await;
    let anonymous = request(&t, None).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));

    let wrong = request(&t, None)
        .basic_auth("gateway", Some("not-the-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // A confidential client without `revocations:read`.
    let reporter = request(&t, None)
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(reporter.status(), StatusCode::FORBIDDEN);
    assert_eq!(payload_error(reporter).await, "access_denied");

    // A public client cannot authenticate at all.
    let public = request(&t, None)
        .query(&[("client_id", "cli")])
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);

    // The seeded services may.
    for (id, secret) in [
        ("order", "order-dev-secret"),
        ("payment", "payment-dev-secret"),
        ("inventory", "inventory-dev-secret"),
    ] {
        let r = request(&t, None)
            .basic_auth(id, Some(secret))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{id}");
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_client_holds_a_bounded_number_of_streams(pool: PgPool) {
    let t = crate::helpers::spawn_with(pool, |c| c.revocation_streams_per_client = 2).await;
    let first = Events::open(&t, None).await;
    let _second = Events::open(&t, None).await;
    let third = request(&t, None)
        .basic_auth("gateway", Some(GATEWAY_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    // Another client is not affected; a closed stream frees its place.
    let order = request(&t, None)
        .basic_auth("order", Some("order-dev-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::OK);
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        let r = request(&t, None)
            .basic_auth("gateway", Some(GATEWAY_SECRET))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed stream frees its place");
}

async fn payload_error(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// Tokens carry whole seconds. A subject revocation covers every token
/// issued in its second (the stream rounds `issued_before` up), and a sign-in
/// right after it waits out that second, so its token is not caught.
#[sqlx::test(migrations = "../migrations/idp")]
async fn a_subject_revocation_covers_its_whole_second_but_not_the_next_sign_in(pool: PgPool) {
    let t = spawn(pool).await;
    let before = t.gateway_tokens("openid").await;
    let old = before["access_token"].as_str().unwrap();
    let sub = payload(old)["sub"].as_str().unwrap().to_owned();
    idp::sessions::end_all_for_user(
        &t.pool,
        sub.parse().unwrap(),
        "test",
        Duration::from_secs(300),
    )
    .await
    .unwrap();
    let after = t.gateway_tokens("openid").await;
    let new = after["access_token"].as_str().unwrap();
    assert_eq!(t.userinfo(old).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(t.userinfo(new).await.status(), StatusCode::OK);

    let mut events = Events::open(&t, None).await;
    let (backlog, _) = events.until_caught_up().await;
    let subject = backlog
        .iter()
        .find(|e| e["kind"] == "subject")
        .expect("the subject revocation");
    let cutoff = subject["issued_before"].as_i64().unwrap();
    assert!(
        payload(old)["iat"].as_i64().unwrap() < cutoff,
        "the old token is covered"
    );
    assert!(
        payload(new)["iat"].as_i64().unwrap() >= cutoff,
        "the new one is not"
    );
}
