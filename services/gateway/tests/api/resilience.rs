//! The dashboard (one page, three services called concurrently with the
//! caller's token), circuit breakers with fallbacks, and several instances
//! per route.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Options, Stack};

/// A correctness deadline (not a performance assertion): the answer comes
/// back at all, rather than hanging.
const DEADLINE: Duration = Duration::from_secs(20);

async fn dashboard(client: &reqwest::Client, stack: &Stack, token: Option<&str>) -> Value {
    let mut request = client.get(stack.url("/api/dashboard"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(DEADLINE, request.send())
        .await
        .expect("the dashboard answers")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

fn real() -> Options {
    Options {
        real_services: true,
        ..Default::default()
    }
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_composes_the_three_services_for_sessions_and_bearer_callers(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::with(pool, connect, real()).await;
    let bob = stack.signed_in("bob").await;
    let alice = stack.signed_in("alice").await;

    // Bob (admin) also sees the items running low; the demo stock has some.
    let page: Value = bob.get("/api/dashboard").await.json().await.unwrap();
    assert_eq!(page["user"]["token"], "session");
    assert!(
        page["user"]["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("admin"))
    );
    assert!(page["orders"]["orders"].is_array(), "{page}");
    assert!(page["payments"]["charges"].is_array(), "{page}");
    let low = page["low_stock"]["items"]
        .as_array()
        .expect("low_stock for admins");
    assert!(
        low.iter().all(|i| i["stock"].as_i64().unwrap() < 5),
        "{page}"
    );

    // Alice (customer): her orders and charges, no inventory part.
    let page: Value = alice.get("/api/dashboard").await.json().await.unwrap();
    assert!(page["orders"]["orders"].is_array(), "{page}");
    assert!(page["payments"]["charges"].is_array(), "{page}");
    assert!(page.get("low_stock").is_none(), "{page}");

    // An API client with its own bearer token.
    let (token, _) = stack.token_for(&uuid(), &["admin"]).await;
    let page = dashboard(&reqwest::Client::new(), &stack, Some(&token)).await;
    assert_eq!(page["user"]["token"], "bearer");
    assert!(page["low_stock"]["items"].is_array(), "{page}");

    // No credentials, or a forged token: the page itself is refused.
    let anonymous = reqwest::Client::new()
        .get(stack.url("/api/dashboard"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let forged = reqwest::Client::new()
        .get(stack.url("/api/dashboard"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = false)]
async fn with_payment_stopped_the_dashboard_marks_payments_and_keeps_the_rest(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut stack = Stack::with(pool, connect, real()).await;
    let bob = stack.signed_in("bob").await;
    stack.stop_payment().await;
    let page: Value = tokio::time::timeout(DEADLINE, bob.get("/api/dashboard"))
        .await
        .expect("answers")
        .json()
        .await
        .unwrap();
    assert_eq!(page["payments"], json!({"unavailable": "unreachable"}));
    assert!(page["orders"]["orders"].is_array(), "{page}");
    assert!(page["low_stock"]["items"].is_array(), "{page}");
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_applies_each_routes_rules_and_never_widens_them(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Payments only for support here; inventory's items not exposed at all.
    let table = format!(
        r#"{TWO_ROUTES}
[[route]]
name = "payments"
prefix = "/api/payments"
upstreams = ["{{PAYMENT}}"]
rewrite = "/charges"
audience = "payment"
  [[route.allow]]
  methods = ["GET"]
  any_role = ["support"]

[[route]]
name = "inventory"
prefix = "/api/inventory"
upstreams = ["{{INVENTORY}}"]
audience = "inventory"
  [[route.allow]]
  methods = ["PUT"]
  path = "/items/*"
"#
    );
    let stack = Stack::with(
        pool,
        connect,
        Options {
            routes: Some(table),
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let (token, jti) = stack.token_for(&uuid(), &["customer", "admin"]).await;
    let page = dashboard(&client, &stack, Some(&token)).await;
    assert_eq!(page["orders"]["jti"], jti.as_str(), "{page}");
    assert_eq!(page["payments"], json!({"denied": "insufficient_scope"}));
    assert_eq!(page["low_stock"], json!({"unavailable": "not_exposed"}));
    let (token, _) = stack.token_for(&uuid(), &["support"]).await;
    let page = dashboard(&client, &stack, Some(&token)).await;
    assert_eq!(page["payments"]["path"], "/charges", "{page}");
    assert!(page.get("low_stock").is_none(), "not an admin");
}

/// A server that accepts connections and never answers.
async fn hanging() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

const TWO_ROUTES: &str = r#"
[[route]]
name = "orders"
prefix = "/api/orders"
upstreams = ["{ORDER}"]
rewrite = "/orders"
audience = "order"
  [[route.allow]]
  methods = ["GET"]
"#;

#[sqlx::test(migrations = false)]
async fn a_payment_service_that_hangs_is_marked_timeout_within_its_route_timeout(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (hang, _task) = hanging().await;
    let table = format!(
        r#"{TWO_ROUTES}
[[route]]
name = "payments"
prefix = "/api/payments"
upstreams = ["{hang}"]
rewrite = "/charges"
audience = "payment"
timeout_ms = 300
  [[route.allow]]
  methods = ["GET"]
"#
    );
    let stack = Stack::with(
        pool,
        connect,
        Options {
            routes: Some(table),
            ..Default::default()
        },
    )
    .await;
    let (token, jti) = stack.token_for(&uuid(), &["customer"]).await;
    let page = dashboard(&reqwest::Client::new(), &stack, Some(&token)).await;
    assert_eq!(page["payments"], json!({"unavailable": "timeout"}));
    assert_eq!(page["orders"]["jti"], jti.as_str(), "{page}");
}

/// An upstream that answers only once `n` calls are waiting at the same
/// time: calls made one after the other would each wait forever.
async fn rendezvous(n: usize) -> String {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(|State(b): State<Arc<tokio::sync::Barrier>>| async move {
            b.wait().await;
            axum::Json(json!({"met": true}))
        })
        .with_state(barrier);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_calls_its_three_services_at_the_same_time(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let meet = rendezvous(3).await;
    let route = |name: &str, audience: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nprefix = \"/api/{name}\"\nupstreams = [\"{meet}\"]\n\
             audience = \"{audience}\"\ntimeout_ms = 15000\n[[route.allow]]\nmethods = [\"GET\"]\n"
        )
    };
    let table = [
        route("orders", "order"),
        route("payments", "payment"),
        route("inventory", "inventory"),
    ]
    .concat();
    let stack = Stack::with(
        pool,
        connect,
        Options {
            routes: Some(table),
            ..Default::default()
        },
    )
    .await;
    let (token, _) = stack.token_for(&uuid(), &["admin"]).await;
    let page = dashboard(&reqwest::Client::new(), &stack, Some(&token)).await;
    // Sequential calls would each have waited out their 15 s timeout.
    for part in ["orders", "payments", "low_stock"] {
        assert_eq!(page[part], json!({"met": true}), "{page}");
    }
}

/// An upstream that hangs (past the route timeout) while `failing` is set,
/// counting its calls.
#[derive(Clone, Default)]
struct Flaky {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

async fn flaky_answer(State(f): State<Flaky>) -> axum::response::Response {
    f.calls.fetch_add(1, Ordering::SeqCst);
    if f.failing.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    axum::Json(json!({"from": "flaky"})).into_response()
}

async fn flaky() -> (Flaky, String) {
    let state = Flaky::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(flaky_answer)
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, url)
}

fn flaky_route(name: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[[route]]
name = "{name}"
prefix = "/api/{name}"
upstreams = ["{upstream}"]
audience = "order"
timeout_ms = 200
circuit = {{ failures = 3, cooldown_ms = 3000 }}
{extra}
  [[route.allow]]
  methods = ["GET"]
"#
    )
}

async fn circuit_of(stack: &Stack, route: &str) -> Value {
    let all: Value = reqwest::get(stack.url("/circuits"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == route)
        .unwrap()["instances"][0]
        .clone()
}

#[sqlx::test(migrations = false)]
async fn a_circuit_opens_after_n_failures_fails_fast_or_falls_back_and_closes_after_recovery(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (flaky, url) = flaky().await;
    let table = format!(
        "{TWO_ROUTES}{}{}{}{}",
        flaky_route("flaky", &url, ""),
        flaky_route("static", &url, "fallback = { json = '{\"items\": []}' }"),
        flaky_route("backup", &url, "fallback = { route = \"orders\" }"),
        flaky_route("statuses", "{ORDER}", "rewrite = \"\""),
    );
    let stack = Stack::with(
        pool,
        connect,
        Options {
            routes: Some(table),
            ..Default::default()
        },
    )
    .await;
    let (token, jti) = stack.token_for(&uuid(), &["customer"]).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(stack.url(path)).bearer_auth(&token).send();

    flaky.failing.store(true, Ordering::SeqCst);
    for route in ["flaky", "static", "backup"] {
        for _ in 0..3 {
            let failed = get(&format!("/api/{route}")).await.unwrap();
            assert_eq!(failed.status(), StatusCode::GATEWAY_TIMEOUT);
        }
        assert_eq!(circuit_of(&stack, route).await["state"], "open");
    }
    let calls = flaky.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 9);
    // An answer, even a 5xx, is not a failure of the instance (a service's
    // 5xx usually reports one of its own dependencies).
    for _ in 0..4 {
        let answered = get("/api/statuses/status/503").await.unwrap();
        assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!answered.headers().contains_key("x-baton-denied-by"));
    }
    assert_eq!(circuit_of(&stack, "statuses").await["state"], "closed");

    // Open: fail fast without calling the upstream…
    let fast = get("/api/flaky").await.unwrap();
    assert_eq!(fast.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(fast.headers().contains_key("retry-after"));
    assert_eq!(fast.headers()["x-baton-denied-by"], "gateway");
    assert_eq!(fast.json::<Value>().await.unwrap()["error"], "circuit_open");
    // …or answer from the fallback: a static document, or another route.
    let fixed = get("/api/static").await.unwrap();
    assert_eq!(fixed.status(), StatusCode::OK);
    assert_eq!(fixed.headers()["x-baton-fallback"], "static");
    assert_eq!(fixed.json::<Value>().await.unwrap(), json!({"items": []}));
    let other = get("/api/backup/x").await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(other.headers()["x-baton-fallback"], "orders");
    let echoed: Value = other.json().await.unwrap();
    assert_eq!(echoed["path"], "/orders/x", "the orders route's rewrite");
    assert_eq!(
        echoed["jti"],
        jti.as_str(),
        "the caller's token, validated by order"
    );
    assert_eq!(
        flaky.calls.load(Ordering::SeqCst),
        calls,
        "no call while open"
    );

    // Recovered: after the cool-down a probe goes through and closes it.
    flaky.failing.store(false, Ordering::SeqCst);
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            let response = get("/api/flaky").await.unwrap();
            if response.status() == StatusCode::OK {
                return response.json::<Value>().await.unwrap();
            }
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the circuit closes after the cool-down");
    assert_eq!(closed, json!({"from": "flaky"}));
    let state = circuit_of(&stack, "flaky").await;
    assert_eq!(state["state"], "closed");
    assert_eq!(state["consecutive_failures"], 0);
    // Circuits are per route (and instance): the others have not probed yet.
    assert_ne!(circuit_of(&stack, "static").await["state"], "closed");
}

#[sqlx::test(migrations = false)]
async fn two_inventory_instances_with_one_stopped_lose_no_request(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let table = format!(
        r#"{TWO_ROUTES}
[[route]]
name = "inventory"
prefix = "/api/inventory"
upstreams = ["{{INVENTORY}}", "{{INVENTORY2}}"]
rewrite = ""
audience = "inventory"
  [[route.allow]]
  methods = ["GET"]
  path = "/items"
"#
    );
    let mut stack = Stack::with(
        pool,
        connect,
        Options {
            routes: Some(table),
            more_inventory: 1,
            ..Default::default()
        },
    )
    .await;
    let (token, jti) = stack.token_for(&uuid(), &["admin"]).await;
    let client = reqwest::Client::new();
    let items = stack.url("/api/inventory/items");
    let get = || client.get(&items).bearer_auth(&token).send();
    // Both instances serve while both are up.
    let mut ports = std::collections::HashSet::new();
    for _ in 0..4 {
        let echoed: Value = get().await.unwrap().json().await.unwrap();
        ports.insert(echoed["headers"]["host"].as_str().unwrap().to_owned());
    }
    assert_eq!(ports.len(), 2, "round robin over both: {ports:?}");

    stack.more_inventory[0].stop().await;
    for _ in 0..20 {
        let response = get().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed: Value = response.json().await.unwrap();
        assert_eq!(echoed["jti"], jti.as_str());
    }
    // The stopped instance's circuit opened, so it is no longer even tried.
    let all: Value = reqwest::get(stack.url("/circuits"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inventory = all["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "inventory")
        .unwrap();
    assert_eq!(inventory["instances"][0]["state"], "closed");
    assert_eq!(inventory["instances"][1]["state"], "open");
    // The dashboard (admin) reaches inventory through the live instance too.
    let page = dashboard(&client, &stack, Some(&token)).await;
    assert_eq!(page["low_stock"]["jti"], jti.as_str(), "{page}");
    assert_eq!(page["low_stock"]["query"], "stock_below=5");
}

#[sqlx::test(migrations = false)]
async fn fifty_users_at_once_each_get_their_own_identity_in_every_part(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let mut users = Vec::new();
    for _ in 0..50 {
        let sub = uuid();
        let (token, jti) = stack.token_for(&sub, &["admin"]).await;
        users.push((sub, token, jti));
    }
    let client = reqwest::Client::new();
    for round in 0..2 {
        let calls = users.iter().map(|(sub, token, jti)| {
            let (client, stack) = (&client, &stack);
            async move {
                let page = dashboard(client, stack, Some(token)).await;
                assert_eq!(page["user"]["sub"], sub.as_str());
                for part in ["orders", "payments", "low_stock"] {
                    // The echo upstreams answer the sub and jti they validated.
                    assert_eq!(
                        page[part]["sub"],
                        sub.as_str(),
                        "round {round} {part}: {page}"
                    );
                    assert_eq!(page[part]["jti"], jti.as_str(), "round {round} {part}");
                    assert_eq!(page[part]["token"], token.as_str(), "round {round} {part}");
                }
            }
        });
        futures::future::join_all(calls).await;
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
