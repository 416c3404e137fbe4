//! Key rotation under load: `idp keys rotate` while a steady, bounded load
//! goes through the gateway with tokens signed by the old key and, once the
//! new key signs, by the new one. Not one request may fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::harness::client::json_answer;
use crate::harness::{Options, Stack, User, authorize, cli_refresh, cli_tokens};

/// Concurrent callers, each sending one request per [`PACE`] (waiting for its
/// answer): about 25 requests a second, under the gateway's per-route rate
/// limit (`deploy/routes.toml`: 20/s per address and route, three routes here).
const WORKERS: usize = 3;
const PACE: Duration = Duration::from_millis(120);

/// The `kid` in a JWT's header.
pub fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().expect("a JWT");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn rotating_the_signing_key_under_load_fails_no_request() {
    // Short windows so the test sees the whole rotation, keeping the rule
    // "publish before signing, longer than the JWKS max-age".
    let idp = |k: &str, v: &str| ("idp", k.to_owned(), v.to_owned());
    let stack = Stack::start_with(Options {
        env: vec![
            idp("IDP_JWKS_MAX_AGE_SECS", "2"),
            idp("IDP_KEY_PUBLISH_SECS", "5"),
            idp("IDP_KEY_RELOAD_SECS", "1"),
        ],
        ..Options::default()
    })
    .await;
    let first = cli_tokens(
        &stack,
        User::Carol,
        "openid offline_access orders:read payments:read inventory:read",
    )
    .await;
    let old_kid = kid(first["access_token"].as_str().expect("access token"));
    // Every token issued during the test stays in use until the end.
    let tokens = Arc::new(RwLock::new(vec![
        first["access_token"].as_str().expect("token").to_owned(),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let paths = ["api/orders", "api/payments", "api/inventory/items"];

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (tokens, stop, ok, failed) = (tokens.clone(), stop.clone(), ok.clone(), failed.clone());
        let gateway = stack.gateway.clone();
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = w;
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let token = {
                    let all = tokens.read().await;
                    all[i % all.len()].clone()
                };
                let url = gateway.join(paths[i % paths.len()]).expect("url");
                let request = authorize(http.get(url.clone()), &Method::GET, &url, &token);
                match request.send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let status = r.status();
                        eprintln!(
                            "{url} with kid {}: {status} {}",
                            kid(&token),
                            r.text().await.unwrap_or_default()
                        );
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("{url}: {e}");
                    }
                }
                i += 1;
            }
        }));
    }

    // Refresh now and then: each refresh is signed by whichever key signs now.
    let mut refresh_token = first["refresh_token"].as_str().expect("refresh").to_owned();
    let mut refresh = async || {
        let (status, body) = json_answer(
            cli_refresh(&reqwest::Client::new(), &stack.idp, &refresh_token)
                .send()
                .await
                .expect("POST /token"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "refresh: {body}");
        refresh_token = body["refresh_token"].as_str().expect("refresh").to_owned();
        let access = body["access_token"].as_str().expect("access").to_owned();
        tokens.write().await.push(access.clone());
        access
    };
    refresh().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rotated = stack.idp_cli(&["keys", "rotate"], "");
    eprintln!("idp keys rotate: {rotated}");

    // Keep the load on until a refreshed token carries the new key, then a
    // while longer with both kinds in the mix.
    let deadline = Instant::now() + Duration::from_secs(60);
    let new_kid = loop {
        let access = refresh().await;
        let k = kid(&access);
        if k != old_kid {
            break k;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never started signing"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        refresh().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let all = tokens.read().await;
    let (old, new) = (
        all.iter().filter(|t| kid(t) == old_kid).count(),
        all.iter().filter(|t| kid(t) == new_kid).count(),
    );
    eprintln!(
        "rotation under load: {ok} requests OK, {failed} failed; tokens: {old} old key, {new} new key"
    );
    assert!(
        old >= 2 && new >= 2,
        "both keys' tokens were in use: {old} / {new}"
    );
    assert!(ok > 100, "the load ran ({ok} requests)");
    assert_eq!(failed, 0, "requests failed during the rotation");

    // The old key stays published: its tokens are still valid.
    let (status, jwks) = json_answer(
        reqwest::get(stack.idp.join("jwks.json").expect("url"))
            .await
            .expect("GET /jwks.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
}
