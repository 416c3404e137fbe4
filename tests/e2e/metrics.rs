//! Prometheus metrics: after a sign-in and an order, every part's metrics
//! listener shows the series the operator's dashboard (deploy/grafana) uses,
//! with the values the flow implies.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::happy_path::place_order;
use crate::harness::{Browser, Stack, User};

/// The sum of the samples of `name` whose labels include every pair of
/// `labels` (Prometheus text format), `None` when there is no such sample.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, series_labels) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = metric == name
            && labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|l| l == format!("{k}=\"{v}\""))
            });
        if matches {
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

/// Asserts `name{labels}` is present with a value above zero.
fn positive(page: &str, part: &str, name: &str, labels: &[(&str, &str)]) {
    let value = sample(page, name, labels)
        .unwrap_or_else(|| panic!("{part}: no {name}{labels:?} in\n{page}"));
    assert!(value > 0.0, "{part}: {name}{labels:?} = {value}");
}

/// The metric names in the expressions of deploy/grafana/baton.json.
fn dashboard_series() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/baton.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for word in words {
                let metric = ["http_", "idp_", "guard_", "gateway_", "db_"]
                    .iter()
                    .any(|p| word.starts_with(p));
                if metric && !names.iter().any(|n| n == word) {
                    names.push(word.to_owned());
                }
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    names
}

#[tokio::test]
async fn every_part_exports_its_series_after_a_sign_in_and_an_order() {
    let stack = Stack::start().await;
    let alice = Browser::sign_in(&stack, User::Alice).await;
    place_order(&alice, "baton-mug", 1).await;
    // The same exchanged token twice at order: the second is a cache hit.
    for _ in 0..2 {
        let (status, body) = alice.get("/api/orders").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Refused at every service: no token, then garbage.
    let http = reqwest::Client::new();
    for service in [&stack.order, &stack.payment, &stack.inventory] {
        let url = service.join("audit").expect("url");
        let status = http.get(url.clone()).send().await.expect("call").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let status = http
            .get(url)
            .bearer_auth("not-a-jwt")
            .send()
            .await
            .expect("call")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let idp = stack.scrape("idp").await;
    positive(
        &idp,
        "idp",
        "idp_sign_ins_total",
        &[("outcome", "succeeded")],
    );
    positive(
        &idp,
        "idp",
        "idp_token_requests_total",
        &[("grant", "authorization_code"), ("outcome", "issued")],
    );
    positive(
        &idp,
        "idp",
        "idp_token_requests_total",
        &[
            ("grant", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("outcome", "issued"),
        ],
    );
    // The exchange grants' revocation checks, answered by the IdP's copy of
    // the log, not a PostgreSQL read each.
    positive(
        &idp,
        "idp",
        "idp_exchange_revocation_checks_total",
        &[("source", "copy")],
    );
    positive(
        &idp,
        "idp",
        "http_requests_total",
        &[("route", "/token"), ("method", "POST"), ("status", "2xx")],
    );
    positive(
        &idp,
        "idp",
        "http_request_duration_seconds_count",
        &[("route", "/login"), ("method", "POST")],
    );
    positive(&idp, "idp", "db_pool_max_connections", &[]);

    let gateway = stack.scrape("gateway").await;
    positive(
        &gateway,
        "gateway",
        "http_requests_total",
        &[("method", "POST"), ("status", "2xx")],
    );
    assert!(
        !gateway.contains("route=\"/api/orders/"),
        "raw paths never become labels"
    );
    positive(
        &gateway,
        "gateway",
        "guard_jwks_fetches_total",
        &[("outcome", "ok")],
    );
    positive(&gateway, "gateway", "db_pool_connections", &[]);
    assert_eq!(
        sample(&gateway, "gateway_circuit_state", &[("route", "orders")]),
        Some(0.0),
        "the orders route's circuit is closed:\n{gateway}"
    );

    for part in ["order", "payment", "inventory"] {
        let page = stack.scrape(part).await;
        positive(&page, part, "http_requests_total", &[("status", "2xx")]);
        positive(
            &page,
            part,
            "http_request_duration_seconds_bucket",
            &[("le", "+Inf")],
        );
        positive(&page, part, "guard_verified_cache_misses_total", &[]);
        positive(
            &page,
            part,
            "guard_jwks_fetches_total",
            &[("outcome", "ok")],
        );
        positive(
            &page,
            part,
            "guard_token_refusals_total",
            &[("reason", "missing_token")],
        );
        positive(
            &page,
            part,
            "guard_token_refusals_total",
            &[("reason", "malformed")],
        );
        positive(&page, part, "db_pool_max_connections", &[]);
        positive(&page, part, "guard_revocation_stream_connected", &[]);
        assert!(
            sample(&page, "guard_revocation_seconds_since_confirmed", &[])
                .is_some_and(|s| s >= 0.0),
            "{part} has been confirmed up to date:\n{page}"
        );
    }
    let order = stack.scrape("order").await;
    positive(
        &order,
        "order",
        "http_requests_total",
        &[("route", "/orders"), ("method", "POST"), ("status", "2xx")],
    );
    positive(&order, "order", "guard_verified_cache_hits_total", &[]);

    // Every series the Grafana dashboard queries is exported by some part.
    let mut pages = vec![idp.clone(), gateway.clone(), order.clone()];
    for part in ["payment", "inventory"] {
        pages.push(stack.scrape(part).await);
    }
    for name in dashboard_series() {
        assert!(
            pages.iter().any(|page| {
                page.lines().any(|l| {
                    l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))
                })
            }),
            "deploy/grafana/baton.json queries {name}, which no part exports"
        );
    }

    // A revocation reaches every service and is counted there.
    stack.idp_cli(&["users", "revoke-sessions", "alice"], "");
    let deadline = Instant::now() + Duration::from_secs(30);
    for part in ["order", "payment", "inventory", "gateway"] {
        loop {
            let page = stack.scrape(part).await;
            if sample(&page, "guard_revocation_events_applied_total", &[]).is_some_and(|n| n > 0.0)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{part} applied no revocation:\n{page}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn the_metrics_are_not_served_on_the_public_listener() {
    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    for base in [&stack.idp, &stack.gateway, &stack.order] {
        let url = base.join("metrics").expect("url");
        let status = http.get(url).send().await.expect("call").status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED,
            "{base}metrics answered {status}"
        );
    }
}
