//! DPoP-bound tokens (RFC 9449) at a real resource server: a bound token
//! passes only as `Authorization: DPoP` with a fresh proof of its key for
//! this very request.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use guard::dpop::DpopKey;
use guard::testing::{TestIssuer, now};
use guard::{Guard, Principal};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::helpers::{issuer_and_guard, ready_guard, serve};

#[derive(Clone, FromRef)]
struct AppState {
    guard: Guard,
}

async fn whoami(caller: Principal) -> String {
    format!("{} bound={}", caller.sub(), caller.dpop_bound())
}

async fn app(guard: &Guard) -> String {
    let router = Router::new()
        .route("/me", get(whoami).post(whoami))
        .with_state(AppState {
            guard: guard.clone(),
        });
    serve(router).await
}

/// A token bound to `key` (`cnf.jkt`).
fn bound(issuer: &TestIssuer, key: &DpopKey) -> String {
    issuer
        .token()
        .sub("carol")
        .claim("cnf", json!({ "jkt": key.jkt() }))
        .sign()
}

/// An answer: status, every `WWW-Authenticate` value, body (text or JSON).
struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// 401 `invalid_dpop_proof` with the DPoP challenge first.
    fn assert_bad_proof(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            self.body
        );
        assert_eq!(self.json()["error"], "invalid_dpop_proof", "{what}");
        assert!(
            self.challenges[0].starts_with("DPoP realm=\"baton\", error=\"invalid_dpop_proof\""),
            "{what}: {:?}",
            self.challenges
        );
    }
}

async fn call(url: &str, authorization: Option<String>, proof: Option<&str>) -> Answer {
    call_with("GET", url, authorization, proof).await
}

async fn call_with(
    method: &str,
    url: &str,
    authorization: Option<String>,
    proof: Option<&str>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        challenges: response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect(),
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn a_bound_token_with_a_proof_of_its_key_is_accepted_and_the_principal_knows() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    let proof = key.proof("GET", &url, Some(&token));
    let answer = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "carol bound=true");
    // Query strings are not part of `htu`; a second request needs a new proof.
    let proof = key.proof("GET", &url, Some(&token));
    let answer = call(
        &format!("{url}?page=2"),
        Some(format!("DPoP {token}")),
        Some(&proof),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // An unbound token as Bearer is unaffected.
    let plain = issuer.token().sub("dave").sign();
    let answer = call(&url, Some(format!("Bearer {plain}")), None).await;
    assert_eq!(answer.body, "dave bound=false");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    let proof = key.proof("GET", &url, Some(&token));
    let first = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    again.assert_bad_proof("replayed proof");
    assert_eq!(
        again.json()["error_description"],
        "DPoP proof has been used before"
    );
    // A guard for another audience shares the replay cache.
    let other = guard.for_audience("order");
    let other_url = format!("{}/me", app(&other).await);
    let proof = key.proof("GET", &other_url, Some(&token));
    assert_eq!(
        call(&other_url, Some(format!("DPoP {token}")), Some(&proof))
            .await
            .status,
        StatusCode::OK
    );
    call(&other_url, Some(format!("DPoP {token}")), Some(&proof))
        .await
        .assert_bad_proof("replayed at a guard sharing the cache");
}

#[tokio::test]
async fn a_proof_for_another_method_or_url_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let base = app(&guard).await;
    let url = format!("{base}/me");
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    let other_host = base.replace("127.0.0.1", "localhost");
    for (what, proof, description) in [
        (
            "a POST proof on a GET",
            key.proof("POST", &url, Some(&token)),
            "DPoP proof htm does not match the request method",
        ),
        (
            "a proof for another path",
            key.proof("GET", &format!("{base}/orders"), Some(&token)),
            "DPoP proof htu does not match the request URL",
        ),
        (
            "a proof for another host",
            key.proof("GET", &format!("{other_host}/me"), Some(&token)),
            "DPoP proof htu does not match the request URL",
        ),
        (
            "a proof for https",
            key.proof("GET", &url.replace("http:", "https:"), Some(&token)),
            "DPoP proof htu does not match the request URL",
        ),
        (
            "a proof for another token",
            key.proof("GET", &url, Some("another token")),
            "DPoP proof ath does not match the access token",
        ),
        (
            "a proof without ath",
            key.proof("GET", &url, None),
            "DPoP proof ath does not match the access token",
        ),
    ] {
        let answer = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
        answer.assert_bad_proof(what);
        assert_eq!(answer.json()["error_description"], description, "{what}");
    }
    // The right method elsewhere passes.
    let proof = key.proof("POST", &url, Some(&token));
    let answer = call_with("POST", &url, Some(format!("DPoP {token}")), Some(&proof)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn a_proof_signed_by_another_key_than_cnf_jkt_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let (key, thief) = (DpopKey::generate(), DpopKey::generate());
    let token = bound(&issuer, &key);
    // A thief with the token but not the key signs a proof with its own key.
    let proof = thief.proof("GET", &url, Some(&token));
    let answer = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    answer.assert_bad_proof("another key");
    assert_eq!(
        answer.json()["error_description"],
        "DPoP proof is signed by another key than the token is bound to"
    );
}

#[tokio::test]
async fn a_stolen_bound_token_without_the_key_is_refused_as_bearer_and_as_dpop() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    // As a bearer token (RFC 9449 §7.2): refused, the DPoP challenge names why.
    let answer = call(&url, Some(format!("Bearer {token}")), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "invalid_token");
    assert!(
        answer.challenges[0].starts_with(
            "DPoP realm=\"baton\", error=\"invalid_token\", error_description=\"token is DPoP-bound"
        ),
        "{:?}",
        answer.challenges
    );
    // Also with a proof of the key beside it: Bearer never carries a bound token.
    let proof = key.proof("GET", &url, Some(&token));
    let answer = call(&url, Some(format!("Bearer {token}")), Some(&proof)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // As DPoP without a proof.
    call(&url, Some(format!("DPoP {token}")), None)
        .await
        .assert_bad_proof("no proof");
    // A tampered proof (the thief's signature on the owner's proof).
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let forged = DpopKey::generate().proof("GET", &url, Some(&token));
    parts[2] = forged.split('.').nth(2).unwrap().to_owned();
    call(&url, Some(format!("DPoP {token}")), Some(&parts.join(".")))
        .await
        .assert_bad_proof("tampered proof");
    // A token validated without its request (Guard::validate) cannot carry a proof.
    assert!(guard.validate(&token).await.is_err());
}

#[tokio::test]
async fn a_proof_too_old_or_from_the_future_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    // The guard allows its leeway (30 s) around the 60 s window.
    for (what, iat) in [("too old", now() - 100), ("in the future", now() + 60)] {
        let mut claims = key.claims("GET", &url, Some(&token));
        claims["iat"] = json!(iat);
        let answer = call(
            &url,
            Some(format!("DPoP {token}")),
            Some(&key.sign(&claims)),
        )
        .await;
        answer.assert_bad_proof(what);
        assert_eq!(
            answer.json()["error_description"],
            "DPoP proof is too old or issued in the future"
        );
    }
}

#[tokio::test]
async fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = issuer.token().sub("carol").sign();
    let proof = key.proof("GET", &url, Some(&token));
    let answer = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "invalid_token");
    assert!(answer.challenges[0].starts_with("DPoP realm=\"baton\", error=\"invalid_token\""));
}

#[tokio::test]
async fn challenges_advertise_dpop_beside_bearer() {
    let (issuer, guard) = issuer_and_guard().await;
    let url = format!("{}/me", app(&guard).await);
    let answer = call(&url, None, None).await;
    assert_eq!(
        answer.challenges,
        vec![
            "Bearer realm=\"baton\"".to_owned(),
            "DPoP realm=\"baton\", algs=\"ES256 RS256 EdDSA\"".to_owned(),
        ]
    );
    let expired = issuer.token().valid(-600, -120).sign();
    let answer = call(&url, Some(format!("Bearer {expired}")), None).await;
    assert!(answer.challenges[0].starts_with("Bearer realm=\"baton\", error=\"invalid_token\""));
    assert_eq!(
        answer.challenges[1],
        "DPoP realm=\"baton\", algs=\"ES256 RS256 EdDSA\""
    );
}

#[tokio::test]
async fn with_a_public_url_the_proof_must_name_it_not_the_host_header() {
    let issuer = TestIssuer::start().await;
    let public = Url::parse("https://shop.example/orders-api").unwrap();
    let guard = ready_guard(issuer.config("order").with_public_url(public)).await;
    let url = format!("{}/me", app(&guard).await);
    let key = DpopKey::generate();
    let token = bound(&issuer, &key);
    let proof = key.proof("GET", &url, Some(&token));
    call(&url, Some(format!("DPoP {token}")), Some(&proof))
        .await
        .assert_bad_proof("the Host-derived URL");
    let proof = key.proof("GET", "https://shop.example/orders-api/me", Some(&token));
    let answer = call(&url, Some(format!("DPoP {token}")), Some(&proof)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}
