//! DPoP (RFC 9449) over the real stack: an API client whose tokens are bound
//! to its key calls through the gateway, which verifies the proof itself and
//! relays an unbound token exchanged for the route's service alone; the
//! bound token is worth nothing without the key.

use guard::dpop::DpopKey;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::harness::client::json_answer;
use crate::harness::{Stack, User, cli_key, cli_proof, cli_tokens};

/// `GET url` with `Authorization: <scheme> <token>` and `proof` as `DPoP`.
async fn get(url: &Url, scheme: &str, token: &str, proof: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(url.clone())
        .header(AUTHORIZATION, format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.expect("GET")
}

fn relay_trace(response: &reqwest::Response) -> Value {
    let header = response
        .headers()
        .get("x-baton-relay")
        .expect("x-baton-relay")
        .to_str()
        .unwrap();
    serde_json::from_str(header).unwrap()
}

#[tokio::test]
async fn a_dpop_bound_api_client_calls_through_the_gateway_and_a_stolen_token_is_useless() {
    let stack = Stack::start().await;
    let tokens = cli_tokens(&stack, User::Alice, "openid orders:read orders:write").await;
    assert_eq!(
        tokens["token_type"], "DPoP",
        "cli's tokens are bound: {tokens}"
    );
    let token = tokens["access_token"].as_str().unwrap();
    let orders = stack.gateway.join("api/orders").unwrap();

    // With a proof of its key for the gateway's URL: through to order, as a
    // token exchanged for order alone (a bound token is never relayed as is).
    let proof = cli_proof(&Method::GET, &orders, Some(token));
    let response = get(&orders, "DPoP", token, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let trace = relay_trace(&response);
    assert_eq!(trace["client_id"], "cli");
    assert_eq!(trace["relay"], "exchange", "{trace}");
    assert_eq!(trace["relayed_aud"], json!(["order"]));
    assert_eq!(trace["relayed_actors"], json!(["gateway"]));

    // A placed order goes through every hop the same way.
    let order = json!({ "lines": [{ "sku": "baton-tee", "quantity": 1 }] });
    let response = reqwest::Client::new()
        .post(orders.clone())
        .header(AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", cli_proof(&Method::POST, &orders, Some(token)))
        .json(&order)
        .send()
        .await
        .unwrap();
    let (status, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The same proof again: a replay.
    let response = get(&orders, "DPoP", token, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (_, body) = json_answer(response).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");

    // Stolen: as a bearer token, without any proof, with the thief's key.
    let response = get(&orders, "Bearer", token, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"baton\", error=\"invalid_token\""),
        "{challenge}"
    );
    let response = get(&orders, "DPoP", token, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let thief = DpopKey::generate();
    let forged = thief.proof("GET", orders.as_str(), Some(token));
    let response = get(&orders, "DPoP", token, Some(&forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A proof made for the gateway is no good at order itself.
    let at_order = stack.order.join("orders").unwrap();
    let proof = cli_proof(&Method::GET, &orders, Some(token));
    let response = get(&at_order, "DPoP", token, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Called directly, order verifies the proof itself.
    let proof = cli_key().proof("GET", at_order.as_str(), Some(token));
    let response = get(&at_order, "DPoP", token, Some(&proof)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_gateway_advertises_dpop_and_cli_cannot_get_a_token_without_a_proof() {
    let stack = Stack::start().await;
    let response = reqwest::Client::new()
        .get(stack.gateway.join("api/orders").unwrap())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges.contains(&"DPoP realm=\"baton\", algs=\"ES256 RS256 EdDSA\""),
        "{challenges:?}"
    );
    // A refresh of cli's token without a proof, or with another key, is refused.
    let tokens = cli_tokens(&stack, User::Alice, "openid offline_access orders:read").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let token_url = stack.idp.join("token").unwrap();
    for proof in [
        None,
        Some(DpopKey::generate().proof("POST", token_url.as_str(), None)),
    ] {
        let mut request = reqwest::Client::new().post(token_url.clone()).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "cli"),
        ]);
        if let Some(proof) = &proof {
            request = request.header("dpop", proof);
        }
        let (status, body) = json_answer(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}
