//! Failure behaviour with the real processes stopped and restarted: the IdP
//! down (services keep validating locally), payment down during an order
//! (reservation released, a clear 503), and PostgreSQL restarted under load
//! (the IdP recovers by itself and loses no committed data).

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Stack, User, call_with_token, cli_refresh, cli_token};
use crate::revocation_paths::{assert_refused_everywhere, read_endpoints};

const SCOPE: &str = "openid orders:read orders:write payments:read inventory:read";

async fn statuses(stack: &Stack, token: &str) -> Vec<(String, StatusCode, Value)> {
    let mut out = Vec::new();
    for url in read_endpoints(stack) {
        let (status, body, _) = call_with_token(
            Method::GET,
            url.clone(),
            Some(token),
            None,
            HeaderMap::new(),
        )
        .await;
        out.push((url.to_string(), status, body));
    }
    out
}

/// The token with its signature's last character changed.
fn tampered(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().expect("non-empty");
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

#[tokio::test]
async fn with_the_idp_down_services_keep_validating_locally() {
    let mut stack = Stack::start().await;
    let valid = cli_token(&stack, User::Alice, SCOPE).await;
    let revoked = cli_token(&stack, User::Alice, SCOPE).await;
    for (url, status, body) in statuses(&stack, &valid).await {
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
    }
    let answer = reqwest::Client::new()
        .post(stack.idp.join("revoke").expect("url"))
        .form(&[("token", revoked.as_str()), ("client_id", "cli")])
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_refused_everywhere(&stack, &revoked, "revoked before the outage").await;
    // One order before the outage: order exchanges `valid` for inventory and
    // payment once and keeps those tokens. `unused` never reached order.
    let order = json!({ "lines": [{ "sku": "baton-tee", "quantity": 1 }] });
    let gateway = stack.gateway.clone();
    let place = |token: String| {
        let (gateway, order) = (gateway.clone(), order.clone());
        async move {
            call_with_token(
                Method::POST,
                gateway.join("api/orders").expect("url"),
                Some(&token),
                Some(&order),
                HeaderMap::new(),
            )
            .await
        }
    };
    let (status, body, _) = place(valid.clone()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "order before the outage: {body}"
    );
    let unused = cli_token(&stack, User::Alice, SCOPE).await;

    stack.stop("idp");
    for (url, status, body) in statuses(&stack, &valid).await {
        assert_eq!(
            status,
            StatusCode::OK,
            "IdP down, valid token, {url}: {body}"
        );
    }
    for (what, token) in [
        ("tampered", tampered(&valid)),
        ("revoked", revoked.clone()),
        ("garbage", "a.b.c".to_owned()),
    ] {
        for (url, status, body) in statuses(&stack, &token).await {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "IdP down, {what} token, {url}: {body}"
            );
        }
    }
    // An order goes through the whole chain without the IdP, with the
    // tokens order exchanged before the outage.
    let (status, body, _) = place(valid.clone()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "order with the IdP down: {body}"
    );
    // A token not exchanged yet needs the IdP (the price of per-hop tokens,
    // README "Per-hop tokens"): the gateway, the first hop to exchange it,
    // answers 503, and nothing is relayed as is.
    let (status, body, headers) = place(unused).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a new token with the IdP down: {body}"
    );
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("IdP is unavailable")),
        "{body}"
    );
    assert!(
        headers.get("x-baton-relay").is_none(),
        "not relayed: {body}"
    );

    // Back up: the services' revocation subscribers reconnect by themselves,
    // so a revocation made now still reaches every one of them.
    stack.restart("idp").await;
    let answer = reqwest::Client::new()
        .post(stack.idp.join("revoke").expect("url"))
        .form(&[("token", valid.as_str()), ("client_id", "cli")])
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_refused_everywhere(&stack, &valid, "revoked after the IdP restarted").await;
}

async fn stock(stack: &Stack, token: &str, sku: &str) -> i64 {
    let (status, body, _) = call_with_token(
        Method::GET,
        stack.inventory.join("items").expect("url"),
        Some(token),
        None,
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().or(body.as_array()).cloned();
    items
        .unwrap_or_default()
        .iter()
        .find(|i| i["sku"] == sku)
        .and_then(|i| i["stock"].as_i64())
        .unwrap_or_else(|| panic!("no {sku} in {body}"))
}

#[tokio::test]
async fn payment_down_during_an_order_releases_the_reservation_and_answers_503() {
    let mut stack = Stack::start().await;
    let token = cli_token(&stack, User::Alice, SCOPE).await;
    let before = stock(&stack, &token, "baton-mug").await;
    let order = json!({ "lines": [{ "sku": "baton-mug", "quantity": 2 }] });
    let place = async |stack: &Stack| {
        call_with_token(
            Method::POST,
            stack.gateway.join("api/orders").expect("url"),
            Some(&token),
            Some(&order),
            HeaderMap::new(),
        )
        .await
    };

    stack.stop("payment");
    let (status, body, _) = place(&stack).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "payment_unavailable", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("not placed")),
        "a clear message: {body}"
    );
    assert_eq!(
        stock(&stack, &token, "baton-mug").await,
        before,
        "the reservation was released"
    );
    let (status, orders, _) = call_with_token(
        Method::GET,
        stack.order.join("orders").expect("url"),
        Some(&token),
        None,
        HeaderMap::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !orders.to_string().contains(r#""paid""#),
        "no order was placed (paid) by the failed attempt: {orders}"
    );

    stack.restart("payment").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body, _) = place(&stack).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "payment back, order: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stock(&stack, &token, "baton-mug").await, before - 2);
}

/// A private PostgreSQL cluster (initdb + pg_ctl on a free port in a
/// temporary directory): this test restarts it, so it must never be the
/// machine's shared server. Stopped and removed on drop.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let dir =
            std::env::temp_dir().join(format!("baton-e2e-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = PrivatePostgres { dir, port };
        if is_root() {
            let status = std::process::Command::new("chown")
                .arg("postgres")
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        pg.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "--no-sync", "-D"],
        );
        pg.ctl("start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, or `stop -m immediate` (a crash: recovery replays the WAL).
    fn ctl(&self, what: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        match what {
            "start" => self.run("pg_ctl", &["-w", "-o", &options, "-l", &log, "start", "-D"]),
            "stop" => self.run("pg_ctl", &["-w", "-m", "immediate", "stop", "-D"]),
            other => panic!("pg_ctl {other}?"),
        }
    }

    /// Runs a PostgreSQL program as the postgres user (as root) with the
    /// data directory as its last argument.
    fn run(&self, program: &str, args: &[&str]) {
        let bin = pg_bin(program);
        let data = self.dir.join("data").display().to_string();
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            std::process::Command::new(&bin)
        };
        let out = cmd
            .args(args)
            .arg(&data)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.exists() {
            let _ = std::panic::catch_unwind(|| self.ctl("stop"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `/usr/lib/postgresql/<newest>/bin/<program>`, or the program on `PATH`.
fn pg_bin(program: &str) -> std::path::PathBuf {
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| program.into())
}

async fn refresh(
    stack: &Stack,
    refresh_token: &str,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = cli_refresh(&reqwest::Client::new(), &stack.idp, refresh_token)
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

#[tokio::test]
async fn postgres_restarted_under_load_the_idp_recovers_and_loses_nothing() {
    let pg = PrivatePostgres::start();
    let stack = Stack::start_with(crate::harness::Options {
        admin_url: Some(pg.url()),
        ..Default::default()
    })
    .await;
    // Three refresh-token chains: every 200 commits a rotation (the old token
    // is spent, the new one recorded); losing one would make the next use
    // look like a reuse and end the chain.
    let mut chains = Vec::new();
    for _ in 0..3 {
        let t =
            crate::harness::cli_tokens(&stack, User::Alice, "openid offline_access orders:read")
                .await;
        chains.push(t["refresh_token"].as_str().expect("refresh").to_owned());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for mut token in chains {
        let (stop, stack_idp) = (stop.clone(), stack.idp.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut unavailable, mut other) = (0u32, 0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = cli_refresh(&http, &stack_idp, &token)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let body: Value = r.json().await.expect("token response");
                        token = body["refresh_token"].as_str().expect("refresh").to_owned();
                        ok += 1;
                    }
                    Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
                    Ok(r) => other.push(format!(
                        "{} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    // No answer (a minute passed): whether that rotation
                    // committed is unknown, so this chain cannot be checked.
                    Err(e) => {
                        eprintln!("no answer, chain left unchecked: {e}");
                        return (None, ok, unavailable, other);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (Some(token), ok, unavailable, other)
        }));
    }

    // Let some rotations commit, crash PostgreSQL, bring it back. It stays
    // down longer than the pool's 5 s acquire timeout (platform::db): a shorter
    // outage is absorbed by the pool's reconnect retries and no request ever
    // sees it, which proves nothing about recovery.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(8)).await;
    pg.ctl("start");

    // The same IdP process serves again (its pool reconnects by itself).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(stack.idp.join("readyz").expect("url"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "the IdP did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut total_ok, mut total_unavailable, mut checked) = (0, 0, 0);
    for w in workers {
        let (token, ok, unavailable, other) = w.await.expect("worker");
        assert!(
            other.is_empty(),
            "answers other than 200 and 503: {other:?}"
        );
        total_ok += ok;
        total_unavailable += unavailable;
        let Some(token) = token else { continue };
        checked += 1;
        // The last committed rotation survived the crash: its token works.
        let (status, body) = refresh(&stack, &token).await.expect("POST /token");
        assert_eq!(
            status,
            StatusCode::OK,
            "the chain's last token after recovery: {body}"
        );
    }
    eprintln!(
        "PostgreSQL crash under load: {total_ok} refreshes committed, {total_unavailable} answered 503, {checked}/3 chains checked"
    );
    assert!(total_ok > 10, "the load ran");
    assert!(checked > 0, "at least one chain was checked end to end");
    assert!(total_unavailable > 0, "the outage was seen");
    drop(stack);
}
