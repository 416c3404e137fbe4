//! The relay client between real servers: token and trace forwarded, error
//! mapping, timeouts, identity kept across spawned tasks.

use std::time::Duration;

use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use guard::relay::{self, RelayClient, RelayContext, RelayError, Upstream};
use guard::{Guard, Principal};
use platform::TraceContext;
use serde_json::{Value, json};

use crate::helpers::{issuer_and_guard, serve};

/// A downstream service: protected by its own guard (audience `inventory`),
/// it reports what it received, or answers with the status asked for.
async fn downstream(guard: &Guard) -> Upstream {
    #[derive(Clone, FromRef)]
    struct S {
        guard: Guard,
    }
    async fn whoami(caller: Principal, headers: HeaderMap) -> Json<Value> {
        Json(json!({
            "sub": caller.sub(),
            "jti": caller.jti(),
            "traceparent": headers.get("traceparent").and_then(|v| v.to_str().ok()),
        }))
    }
    async fn status(_: Principal, Path(code): Path<u16>) -> impl IntoResponse {
        let status = StatusCode::from_u16(code).unwrap();
        let body = Json(
            json!({"error": "downstream_says_no", "error_description": format!("because {code}")}),
        );
        (status, [("retry-after", "7")], body)
    }
    async fn bare_conflict(_: Principal) -> impl IntoResponse {
        (StatusCode::CONFLICT, "no JSON here")
    }
    async fn slow(_: Principal) -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }
    async fn redirect() -> impl IntoResponse {
        (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:1/steal")],
        )
    }
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/status/{code}", get(status))
        .route("/bare-conflict", get(bare_conflict))
        .route("/slow", get(slow))
        .route("/redirect", get(redirect))
        .with_state(S {
            guard: guard.clone(),
        });
    let base = serve(router).await;
    RelayClient::new()
        .unwrap()
        .upstream("inventory", format!("{base}/").parse().unwrap())
}

fn inventory_guard(issuer: &guard::testing::TestIssuer) -> Guard {
    Guard::new(issuer.config("inventory"))
}

#[tokio::test]
async fn the_callers_token_and_trace_reach_the_next_hop() {
    let (issuer, order_guard) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let token = issuer.token().sub("alice").sign();
    let incoming =
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let caller = order_guard
        .validate(&token)
        .await
        .unwrap()
        .with_trace(incoming);

    let seen: Value = inventory.get("whoami", &caller).send_json().await.unwrap();
    assert_eq!(seen["sub"], "alice");
    assert_eq!(
        seen["jti"],
        caller.jti(),
        "the same token, validated again at the next hop"
    );
    let traceparent = TraceContext::parse(seen["traceparent"].as_str().unwrap()).unwrap();
    assert_eq!(traceparent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        traceparent.span_id(),
        "00f067aa0ba902b7",
        "a new span for the outbound call"
    );
}

#[tokio::test]
async fn a_relay_through_a_middle_service_keeps_sub_jti_and_trace() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;

    // The middle hop: an `order` service relaying to inventory from a handler.
    #[derive(Clone, FromRef)]
    struct Order {
        guard: Guard,
        inventory: Upstream,
    }
    async fn create(
        caller: Principal,
        State(inventory): State<Upstream>,
    ) -> Result<Json<Value>, RelayError> {
        let last_hop: Value = inventory.get("whoami", &caller).send_json().await?;
        Ok(Json(
            json!({"order_saw": {"sub": caller.sub(), "jti": caller.jti()}, "inventory_saw": last_hop}),
        ))
    }
    let order = serve(
        Router::new()
            .route("/orders", get(create))
            .with_state(Order {
                guard: Guard::new(issuer.config("order")),
                inventory,
            }),
    )
    .await;

    let token = issuer.token().sub("alice").sign();
    let response = reqwest::Client::new()
        .get(format!("{order}/orders"))
        .bearer_auth(&token)
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["order_saw"]["sub"], body["inventory_saw"]["sub"]);
    assert_eq!(body["order_saw"]["jti"], body["inventory_saw"]["jti"]);
    let traceparent = body["inventory_saw"]["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{traceparent}"
    );
}

#[tokio::test]
async fn a_trace_is_started_when_the_caller_sent_none() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let seen: Value = inventory.get("whoami", &caller).send_json().await.unwrap();
    let traceparent = TraceContext::parse(seen["traceparent"].as_str().unwrap()).unwrap();
    assert_eq!(traceparent.trace_id(), caller.trace().trace_id());
}

#[tokio::test]
async fn downstream_answers_map_to_meaningful_upstream_answers() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let cases = [
        (401, 401, "invalid_token"),
        (403, 403, "insufficient_scope"),
        (404, 404, "not_found"),
        (409, 409, "downstream_says_no"),
        (422, 422, "downstream_says_no"),
        (429, 429, "downstream_says_no"),
        (500, 502, "upstream_error"),
        (502, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
    ];
    for (downstream_status, expected, code) in cases {
        let error = inventory
            .get(&format!("status/{downstream_status}"), &caller)
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.status().as_u16(), expected, "{downstream_status}");
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), expected);
        let headers = response.headers().clone();
        let body: Value = serde_json::from_slice(
            &axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["error"], code, "{downstream_status}");
        assert_eq!(body["upstream"], "inventory");
        match downstream_status {
            401 | 403 | 404 | 409 | 422 => {
                let description = body["error_description"].as_str().unwrap();
                assert!(
                    description.contains(&format!("because {downstream_status}")),
                    "{description}"
                );
            }
            429 | 503 => assert_eq!(headers["retry-after"], "7"),
            _ => {}
        }
        if downstream_status == 403 {
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("insufficient_scope")
            );
        }
    }
}

#[tokio::test]
async fn a_conflict_keeps_the_downstreams_error_code_or_says_conflict() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let coded = inventory
        .get("status/409", &caller)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        coded,
        RelayError::Conflict {
            service: "inventory".into(),
            error: Some("downstream_says_no".into()),
            description: Some("because 409".into()),
        }
    );
    let bare = inventory
        .get("bare-conflict", &caller)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&bare, RelayError::Conflict { error: None, .. }),
        "{bare:?}"
    );
    let response = bare.into_response();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["error"], "conflict");
}

#[tokio::test]
async fn a_downstream_refusing_the_token_is_a_401_not_a_500() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    // A token without the inventory audience: inventory's own guard refuses it.
    let caller = RelayContext::bearer(issuer.token().aud(&["order"]).sign(), TraceContext::new());
    let error = inventory.get("whoami", &caller).send().await.unwrap_err();
    assert!(
        matches!(&error, RelayError::Unauthorized { description: Some(d), .. } if d.contains("audience"))
    );
    assert_eq!(error.into_response().status(), 401);
}

#[tokio::test]
async fn a_slow_upstream_times_out_as_504() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let error = inventory
        .get("slow", &caller)
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::Timeout { .. }), "{error:?}");
    assert_eq!(error.status(), 504);
    assert!(error.is_upstream_failure());
}

#[tokio::test]
async fn a_stopped_upstream_is_a_503_with_retry_after() {
    let (issuer, _) = issuer_and_guard().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there any more
    let payment = RelayClient::new()
        .unwrap()
        .upstream("payment", format!("http://{addr}/").parse().unwrap());
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let error = payment
        .post("charges", &caller)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RelayError::Unavailable { service, .. } if &**service == "payment"),
        "{error:?}"
    );
    let response = error.into_response();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn redirects_are_never_followed_with_the_token() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let error = inventory.get("redirect", &caller).send().await.unwrap_err();
    assert!(
        matches!(error, RelayError::Failed { status, .. } if status == StatusCode::FOUND),
        "{error:?}"
    );
    assert_eq!(error.status(), 502);
}

#[tokio::test]
async fn send_raw_passes_any_status_through() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    let response = inventory
        .get("status/418", &caller)
        .send_raw()
        .await
        .unwrap();
    assert_eq!(response.status(), 418);
}

#[tokio::test]
async fn spawned_tasks_relay_the_right_users_token_under_concurrency() {
    let (issuer, order_guard) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let mut users = tokio::task::JoinSet::new();
    for i in 0..60 {
        let token = issuer.token().sub(&format!("user-{i}")).sign();
        let principal = order_guard.validate(&token).await.unwrap();
        let inventory = inventory.clone();
        // Each "request" sets its caller for the scope, then fans out on new
        // tasks that never receive the principal explicitly.
        users.spawn(RelayContext::from(&principal).scope(async move {
            let mut fan_out = Vec::new();
            for _ in 0..3 {
                let inventory = inventory.clone();
                fan_out.push(relay::spawn(async move {
                    tokio::task::yield_now().await;
                    let caller = RelayContext::current().expect("carried into the task");
                    inventory
                        .get("whoami", caller)
                        .send_json::<Value>()
                        .await
                        .unwrap()
                }));
            }
            let mut seen = Vec::new();
            for task in fan_out {
                seen.push(task.await.unwrap()["sub"].as_str().unwrap().to_owned());
            }
            (format!("user-{i}"), seen)
        }));
    }
    let mut count = 0;
    while let Some(result) = users.join_next().await {
        let (expected, seen) = result.unwrap();
        assert!(
            seen.iter().all(|s| *s == expected),
            "{expected} saw {seen:?}"
        );
        count += 1;
    }
    assert_eq!(count, 60);
    // Outside any scope there is no identity to relay.
    assert!(RelayContext::current().is_none());
    assert!(
        tokio::spawn(async { RelayContext::current().is_none() })
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn paths_resolve_below_the_base_and_never_leave_the_upstream() {
    let (issuer, _) = issuer_and_guard().await;
    let inventory = downstream(&inventory_guard(&issuer)).await;
    let caller = RelayContext::bearer(issuer.token().sign(), TraceContext::new());
    for path in ["whoami", "/whoami"] {
        let seen: Value = inventory.get(path, &caller).send_json().await.unwrap();
        assert_eq!(seen["sub"], "user-1", "{path}");
    }
    // A base without a trailing slash keeps its path.
    let base = inventory.base().as_str().trim_end_matches('/').to_owned();
    let api = RelayClient::new()
        .unwrap()
        .upstream("inventory", format!("{base}/status").parse().unwrap());
    assert_eq!(
        api.get("418", &caller).send_raw().await.unwrap().status(),
        418
    );
    // A scheme-relative "//host/..." is just a path below the upstream.
    let stays = inventory
        .get("//127.0.0.1:1/steal", &caller)
        .send_raw()
        .await
        .unwrap();
    assert_eq!(stays.url().origin(), inventory.base().origin());
    // Absolute URLs to another origin never get the token.
    for escape in [
        "http://127.0.0.1:1/steal",
        "https://evil.example/",
        "file:///etc/passwd",
    ] {
        let error = inventory.get(escape, &caller).send_raw().await.unwrap_err();
        assert!(
            matches!(error, RelayError::InvalidPath { .. }),
            "{escape}: {error:?}"
        );
        assert_eq!(error.status(), 400);
    }
}
