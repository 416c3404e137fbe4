//! Revocation holds under the conditions production brings: hundreds of
//! revocations committed at once, a service restarted with more revocations
//! live than one page of the log, a subscriber cut off while more than a page
//! happens, and two IdP replicas on one database. Each test revokes real
//! tokens through `/revoke` and then asks the real validators.
//!
//! "Accepted" means anything but 401: a token without the right role gets
//! 403, which still means it authenticated.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use url::Url;

use crate::harness::{Options, Stack};
use crate::revocation_paths::read_endpoints;

/// Bounds a broken build's wait; the stream delivers in milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);
/// More than one page of the IdP's log (1000 rows a page).
const MORE_THAN_A_PAGE: usize = 1100;
const REPORTER_SECRET: &str = "reporter-dev-secret";

/// `n` client-credentials access tokens of the `reporter` client, 16 requests at a time.
async fn tokens(stack: &Stack, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let url = stack.idp.join("token").expect("url");
    futures::stream::iter(0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let answer: serde_json::Value = http
                    .post(url)
                    .basic_auth("reporter", Some(REPORTER_SECRET))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .expect("POST /token")
                    .json()
                    .await
                    .expect("token JSON");
                answer["access_token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no access token: {answer}"))
                    .to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Revokes every token through `POST /revoke` of `idp`, from `tasks` tasks at once.
async fn revoke_all(idp: &Url, tokens: &[String], tasks: usize) {
    let http = reqwest::Client::new();
    let url = idp.join("revoke").expect("url");
    futures::stream::iter(tokens)
        .map(|token| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let status = http
                    .post(url)
                    .basic_auth("reporter", Some(REPORTER_SECRET))
                    .form(&[("token", token.as_str())])
                    .send()
                    .await
                    .expect("POST /revoke")
                    .status();
                assert_eq!(status, StatusCode::OK, "RFC 7009 revocation");
            }
        })
        .buffer_unordered(tasks)
        .collect::<Vec<()>>()
        .await;
}

/// The tokens `endpoint` still accepts (answers anything but 401), 32
/// requests at a time. Each request comes from one of 64 loopback addresses
/// (127.0.1.x), so the gateway's per-address rate limit is not what answers;
/// a 429 would count as "not refused yet" and be asked again.
async fn accepted_at(endpoint: &Url, tokens: &[String]) -> Vec<String> {
    let clients: Vec<reqwest::Client> = (0..64u8)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 1, i + 1]))
                .build()
                .expect("http client")
        })
        .collect();
    futures::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| {
            let http = clients[i % clients.len()].clone();
            async move {
                let status = http
                    .get(endpoint.clone())
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("GET with a bearer token")
                    .status();
                (status != StatusCode::UNAUTHORIZED).then(|| token.clone())
            }
        })
        .buffer_unordered(32)
        .filter_map(|t| async move { t })
        .collect()
        .await
}

/// Waits (bounded) until every validator refuses every token; panics naming
/// how many each still accepts.
async fn assert_all_refused_everywhere(stack: &Stack, tokens: &[String], what: &str) {
    let deadline = Instant::now() + DEADLINE;
    for endpoint in read_endpoints(stack) {
        let mut left = tokens.to_vec();
        loop {
            left = accepted_at(&endpoint, &left).await;
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {endpoint} still accepts {} of {} revoked tokens after {DEADLINE:?}",
                left.len(),
                tokens.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Asserts, without waiting, that `endpoint` refuses every token.
async fn assert_all_refused_now(endpoint: &Url, tokens: &[String], what: &str) {
    let left = accepted_at(endpoint, tokens).await;
    assert!(
        left.is_empty(),
        "{what}: {endpoint} accepts {} of {} revoked tokens",
        left.len(),
        tokens.len()
    );
}

#[tokio::test]
async fn hundreds_of_revocations_committed_at_once_all_reach_every_validator() {
    let stack = Stack::start().await;
    let tokens = tokens(&stack, 400).await;
    // Every validator has seen (and cached) every token before it is revoked.
    for endpoint in read_endpoints(&stack) {
        assert_eq!(accepted_at(&endpoint, &tokens).await.len(), tokens.len());
    }
    revoke_all(&stack.idp, &tokens, 48).await;
    assert_all_refused_everywhere(&stack, &tokens, "400 revocations from 48 tasks").await;
}

#[tokio::test]
async fn a_restarted_service_refuses_every_live_revocation_before_it_reports_ready() {
    let mut stack = Stack::start().await;
    let tokens = tokens(&stack, MORE_THAN_A_PAGE).await;
    revoke_all(&stack.idp, &tokens, 16).await;
    assert_all_refused_everywhere(&stack, &tokens, "before the restart").await;

    stack.restart("inventory").await;
    let inventory = stack.inventory.join("items").expect("url");
    assert_all_refused_now(&inventory, &tokens, "inventory once it reports ready").await;
}

#[tokio::test]
async fn a_subscriber_cut_off_during_more_than_a_page_of_revocations_catches_up() {
    // Services subscribe through a second IdP replica on the same database;
    // revocations are made at the first. Stopping the second cuts every
    // subscriber off while they happen.
    let mut stack = Stack::start_with(Options {
        stream_through_second_idp: true,
        ..Options::default()
    })
    .await;
    let early = tokens(&stack, 3).await;
    let later = tokens(&stack, MORE_THAN_A_PAGE).await;

    revoke_all(&stack.idp, &early, 3).await;
    assert_all_refused_everywhere(&stack, &early, "revoked at replica A, streamed by B").await;

    stack.stop("idp2");
    revoke_all(&stack.idp, &later, 16).await;
    stack.restart("idp2").await;
    assert_all_refused_everywhere(&stack, &later, "after the subscribers reconnect").await;
}
