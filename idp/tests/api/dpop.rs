//! DPoP at the IdP (RFC 9449): proofs at `/token` bind the tokens to the
//! client's key; the public `cli` client must send one, and its refresh
//! tokens need the same key.

use guard::dpop::DpopKey;
use guard::unix_now as now;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestIdp, payload, spawn};

const REPORTER_SECRET: &str = "reporter-dev-secret";

async fn answer(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `client_credentials` as `reporter`, with `proof` as the `DPoP` header.
async fn reporter_token(t: &TestIdp, proof: Option<&str>) -> (StatusCode, Value) {
    let mut request = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some(REPORTER_SECRET))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    answer(request.send().await.unwrap()).await
}

fn jkt_of(token: &Value) -> Value {
    payload(token["access_token"].as_str().unwrap())["cnf"]["jkt"].clone()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn cli_without_a_proof_is_refused_at_token(pool: PgPool) {
    let t = spawn(pool).await;
    let code = t.cli_code(&t.browser(), "openid orders:read").await;
    let (status, body) = answer(t.cli_redeem(&code, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert_eq!(
        body["error_description"],
        "a public client must send a DPoP proof"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn cli_tokens_are_bound_and_its_refresh_token_needs_the_same_key(pool: PgPool) {
    let t = spawn(pool).await;
    let key = DpopKey::generate();
    let code = t
        .cli_code(&t.browser(), "openid offline_access orders:read")
        .await;
    let (status, tokens) = answer(t.cli_redeem(&code, Some(&key)).await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(jkt_of(&tokens), key.jkt());
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];

    // Stolen with the refresh token but without the key: another key, or none.
    let (status, body) = answer(t.cli_token(&form, Some(&DpopKey::generate())).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "the refresh token is bound to another DPoP key"
    );
    let (status, body) = answer(t.cli_token(&form, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_dpop_proof");

    // The refusals used nothing up: the owner refreshes, and stays bound.
    let (status, next) = answer(t.cli_token(&form, Some(&key)).await).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["token_type"], "DPoP");
    assert_eq!(jkt_of(&next), key.jkt());
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", next["refresh_token"].as_str().unwrap()),
    ];
    let (status, _) = answer(t.cli_token(&form, Some(&DpopKey::generate())).await).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the rotated token is bound too"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_replayed_or_misdirected_proof_is_refused_at_token(pool: PgPool) {
    let t = spawn(pool).await;
    let key = DpopKey::generate();
    let proof = t.token_proof(&key);
    let (status, first) = reporter_token(&t, Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, body) = reporter_token(&t, Some(&proof)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert_eq!(body["error_description"], "DPoP proof has been used before");

    let url = t.url("/token");
    let mut old = key.claims("POST", &url, None);
    old["iat"] = json!(now() - 600);
    let mut future = key.claims("POST", &url, None);
    future["iat"] = json!(now() + 600);
    for (what, proof) in [
        ("a GET proof", key.proof("GET", &url, None)),
        ("another URL", key.proof("POST", &t.url("/revoke"), None)),
        ("an old proof", key.sign(&old)),
        ("a proof from the future", key.sign(&future)),
        ("not a JWT", "garbage".to_owned()),
    ] {
        let (status, body) = reporter_token(&t, Some(&proof)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}");
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn confidential_clients_may_send_a_proof(pool: PgPool) {
    let t = spawn(pool).await;
    let (status, plain) = reporter_token(&t, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plain["token_type"], "Bearer");
    assert_eq!(jkt_of(&plain), Value::Null);
    let key = DpopKey::generate();
    let (status, bound) = reporter_token(&t, Some(&t.token_proof(&key))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bound["token_type"], "DPoP");
    assert_eq!(jkt_of(&bound), key.jkt());
    // Introspection tells the binding (RFC 9449 §6.2).
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("reporter", Some(REPORTER_SECRET))
        .form(&[("token", bound["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let (_, intro) = answer(r).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["token_type"], "DPoP");
    assert_eq!(intro["cnf"]["jkt"], key.jkt());
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_exchanged_token_never_carries_the_subject_tokens_binding(pool: PgPool) {
    let t = spawn(pool).await;
    let key = DpopKey::generate();
    let (_, bound) = reporter_token(&t, Some(&t.token_proof(&key))).await;
    // The gateway (named in the reporter's `aud`) exchanges it for order.
    let (status, exchanged) = answer(
        t.token(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", bound["access_token"].as_str().unwrap()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", "order"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{exchanged}");
    assert_eq!(exchanged["token_type"], "Bearer");
    let claims = payload(exchanged["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"], Value::Null);
    assert_eq!(claims["aud"], json!(["order"]));
    assert_eq!(claims["act"]["sub"], "gateway");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(pool: PgPool) {
    let t = spawn(pool).await;
    let key = DpopKey::generate();
    let code = t.cli_code(&t.browser(), "openid profile").await;
    let (_, tokens) = answer(t.cli_redeem(&code, Some(&key)).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(t.userinfo(access).await.status(), StatusCode::UNAUTHORIZED);
    let url = t.url("/userinfo");
    let call = |proof: String| {
        t.http
            .get(&url)
            .header("authorization", format!("DPoP {access}"))
            .header("dpop", proof)
            .send()
    };
    let thief = DpopKey::generate();
    let r = call(thief.proof("GET", &url, Some(access))).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = call(key.proof("GET", &url, Some(access))).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["preferred_username"], "alice");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn discovery_names_the_proof_algorithms(pool: PgPool) {
    let t = spawn(pool).await;
    let doc: Value = t.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256", "EdDSA"])
    );
}
