//! Nobody without a credential can take the service away (issue 13), against
//! the real stack: a flood of wrong client secrets for the gateway's own
//! client id, a flood of wrong passwords from many addresses, a logout link
//! carrying someone else's ID token, and introspection by clients the token
//! was not meant for.
//!
//! The IdP trusts 127.0.0.1 as a proxy here, so each attacking request picks
//! its address with `X-Forwarded-For` (as requests through a real proxy
//! would), while the gateway and the real user reach it without one.

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use super::brute_force::{client_auth, idp_db};
use super::oauth::{Agent, authorize_url, pkce};
use crate::harness::client::{CLI_REDIRECT_URI, cli_sign_in, json_answer};
use crate::harness::{Browser, Options, Stack, User, authorize, html};

async fn stack_behind_a_proxy(extra: &[(&'static str, &str, &str)]) -> Stack {
    let mut env = vec![("idp", "IDP_TRUSTED_PROXIES".into(), "127.0.0.1".into())];
    env.extend(extra.iter().map(|(p, k, v)| (*p, (*k).into(), (*v).into())));
    Stack::start_with(Options {
        env,
        ..Options::default()
    })
    .await
}

/// `n` requests at once, the `i`-th built by `request(i)`: the statuses.
async fn all_at_once(
    n: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<(StatusCode, Option<String>)> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let request = request(i);
        set.spawn(async move {
            let r = request.send().await.expect("send");
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.status(), retry)
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_cannot_lock_the_gateway_out() {
    // Every API call makes the gateway refresh (its tokens are "about to expire").
    let stack = stack_behind_a_proxy(&[("gateway", "GATEWAY_REFRESH_BEFORE_SECS", "100000")]).await;
    let http = reqwest::Client::new();
    let url = stack.idp.join("token").expect("url");
    let answers = all_at_once(300, |i| {
        http.post(url.clone())
            .basic_auth("gateway", Some(format!("guess-{i}")))
            .header("x-forwarded-for", format!("198.51.100.{}", i % 30))
            .form(&[("grant_type", "client_credentials")])
    })
    .await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED));
    let (status, body) = client_auth(&stack, "gateway", "guess-from-here").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The gateway still signs a person in, and refreshes on her next call.
    let browser = Browser::sign_in(&stack, User::Alice).await;
    let (status, body) = browser.get("/api/orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut db = idp_db(&stack).await;
    let rotated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL")
            .fetch_one(&mut db)
            .await
            .expect("refresh_tokens");
    assert!(rotated >= 1, "the gateway refreshed");
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_from_many_addresses_cannot_keep_a_person_out() {
    let stack = stack_behind_a_proxy(&[]).await;
    // One login flow, its form posted 400 times at once from 10 addresses
    // with random names.
    let agent = Agent::new();
    let (_, challenge) = pkce();
    let page = agent
        .http
        .get(authorize_url(
            &stack,
            "cli",
            CLI_REDIRECT_URI,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .expect("GET /authorize");
    let form = html::login_form(&page.text().await.expect("page")).expect("a login form");
    let login = stack.idp.join("login").expect("url");
    let flood = all_at_once(400, |i| {
        let mut form = form.clone();
        form.set("username", &format!("nobody-{i}"));
        form.set("password", "wrong");
        agent
            .http
            .post(login.clone())
            .header("x-forwarded-for", format!("203.0.113.{}", i % 10))
            .form(&form.fields)
    });
    // Meanwhile a person signs in through the gateway.
    let (answers, alice) = tokio::join!(flood, Browser::sign_in(&stack, User::Alice));
    let (status, body) = alice.get("/api/orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Every attacker got an answer: the form again, or "try again" at once.
    for (status, retry) in &answers {
        match *status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(retry.as_deref(), Some("1")),
            other => panic!("unexpected answer {other}"),
        }
    }
    // No more passwords were checked than the per-address limits allow
    // (attempts in flight count: 40 at once from one address hash at most 20).
    let mut db = idp_db(&stack).await;
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = 'login_failed'")
            .fetch_one(&mut db)
            .await
            .expect("auth_events");
    assert!(failed <= 10 * 20, "{failed} wrong passwords checked");
}

async fn cookie_free_logout(stack: &Stack, hint: &str) -> StatusCode {
    let mut url = stack.idp.join("logout").expect("url");
    url.query_pairs_mut().append_pair("id_token_hint", hint);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET /logout")
        .status()
}

async fn userinfo(stack: &Stack, access_token: &str) -> StatusCode {
    let url = stack.idp.join("userinfo").expect("url");
    let request = reqwest::Client::new().get(url.clone());
    authorize(request, &reqwest::Method::GET, &url, access_token)
        .send()
        .await
        .expect("GET /userinfo")
        .status()
}

#[tokio::test]
async fn a_logout_link_with_someone_elses_id_token_signs_nobody_out() {
    let stack = Stack::start().await;
    let scope = "openid orders:read";
    let (alice, _) = cli_sign_in(&stack, User::Alice, scope).await;
    let (_, bob_browser) = cli_sign_in(&stack, User::Bob, scope).await;
    let hint = alice["id_token"].as_str().expect("id_token");
    let access = alice["access_token"].as_str().expect("access_token");

    // Bob's browser follows a link with alice's ID token: bob is asked.
    let mut url = stack.idp.join("logout").expect("url");
    url.query_pairs_mut().append_pair("id_token_hint", hint);
    let page = bob_browser.get(url).send().await.expect("GET /logout");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page");
    assert!(
        page.contains("bob") && page.contains("csrf_token"),
        "a confirmation form: {page}"
    );
    // Someone without any cookie sends it: nothing ends either.
    let status = cookie_free_logout(&stack, hint).await;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    assert_eq!(
        userinfo(&stack, access).await,
        StatusCode::OK,
        "alice is still signed in"
    );
}

async fn introspect(stack: &Stack, client: &str, secret: &str, token: &str) -> Value {
    let request = reqwest::Client::new().post(stack.idp.join("introspect").expect("url"));
    let (status, body) = json_answer(
        guard::client_auth::basic_auth(request, client, secret)
            .form(&[("token", token)])
            .send()
            .await
            .expect("POST /introspect"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn introspection_tells_nothing_to_clients_the_token_is_not_for() {
    let stack = Stack::start().await;
    let (tokens, _) = cli_sign_in(&stack, User::Alice, "openid orders:read").await;
    let access = tokens["access_token"].as_str().expect("access_token");
    // Neither the token's client nor in its aud: as if the token did not exist.
    assert_eq!(
        introspect(&stack, "reporter", "reporter-dev-secret", access).await,
        serde_json::json!({"active": false})
    );
    // A resource server in its aud is told, and so is the gateway (the cli
    // client's tokens name it: it exchanges them per route).
    let answer = introspect(&stack, "order", stack.client_secret("order"), access).await;
    assert_eq!(answer["active"], true, "{answer}");
    let gateway = crate::harness::stack::GATEWAY_CLIENT_SECRET;
    let answer = introspect(&stack, "gateway", gateway, access).await;
    assert_eq!(answer["active"], true, "{answer}");
}
