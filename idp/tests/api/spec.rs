//! Issue 15, item 4: unknown scopes are left out, not refused (RFC 6749
//! §3.3); discovery advertises only what is implemented; `id_token_hint` at
//! `/authorize` (OIDC Core §3.1.2.1); RS256 ID tokens whatever the default
//! algorithm (OIDC Core §15.1).

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use idp::admin::{self, ClientChanges};
use idp::keys::Alg;
use idp::realm::{self, NewClient};

use crate::helpers::{
    Browser, GATEWAY_REDIRECT, TestIdp, error_of, gateway_authorize, location_query, payload,
    spawn, spawn_with,
};

const DISCOVERY: &str = "/.well-known/openid-configuration";

/// `/authorize` in `browser` with `extra` parameters: where it redirects.
async fn authorize_with(browser: &Browser, extra: &[(&str, &str)]) -> (String, Value) {
    let mut q = gateway_authorize("openid");
    for (k, v) in extra {
        q.retain(|(key, _)| key != k);
        q.push(((*k).to_owned(), (*v).to_owned()));
    }
    let r = browser.authorize(&q).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (target, params) = location_query(&r);
    (target, json!(params))
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn unknown_and_unregistered_scopes_are_left_out_at_authorize(pool: PgPool) {
    let t = spawn(pool).await;
    // address and phone exist nowhere; the gateway may have the rest.
    let tokens = t.gateway_tokens("openid profile email address phone").await;
    assert_eq!(tokens["scope"], "openid profile email");
    let id = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "alice@example.com");

    idp::admin::upsert_client(
        &t.pool,
        &NewClient {
            id: "machine".into(),
            name: "Machine".into(),
            secret: Some("machine-secret".into()),
            redirect_uris: vec![GATEWAY_REDIRECT.into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["orders:read".into()],
            resources: vec!["order".into()],
        },
    )
    .await
    .unwrap();
    // Without openid among what the client may have, there is nothing to sign in for.
    let (target, q) = authorize_with(
        &t.browser(),
        &[("client_id", "machine"), ("scope", "openid orders:read")],
    )
    .await;
    assert_eq!(target, GATEWAY_REDIRECT);
    assert_eq!(q["error"], "invalid_scope");
    assert!(q.get("code").is_none());
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn client_credentials_grant_the_allowed_part_of_a_request(pool: PgPool) {
    let t = spawn(pool).await;
    let reporter = ("reporter", "reporter-dev-secret");
    let r = t
        .client_credentials(reporter, &[("scope", "orders:read address orders:write")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "orders:read");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["scope"],
        "orders:read"
    );
    // Nothing allowed at all: refused.
    assert_eq!(
        error_of(
            t.client_credentials(reporter, &[("scope", "address phone")])
                .await
        )
        .await,
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn discovery_advertises_only_what_is_implemented(pool: PgPool) {
    let t = spawn(pool).await;
    let doc: Value = t.get_json(DISCOVERY).await;
    assert_eq!(doc["prompt_values_supported"], json!(["none", "login"]));
    // The scopes table is the truth: a scope added as data is advertised at once.
    idp::catalog::add(
        &t.pool,
        idp::catalog::Catalog::Scopes,
        "reports:write",
        "Write reports",
    )
    .await
    .unwrap();
    let doc: Value = t.get_json(DISCOVERY).await;
    let scopes = doc["scopes_supported"].as_array().unwrap();
    assert!(scopes.iter().any(|s| s == "reports:write"));
    assert!(!scopes.iter().any(|s| s == "address"));
}

/// Signs `user` in through the gateway in a browser of its own: the browser
/// (holding the IdP session) and the ID token.
async fn signed_in(t: &TestIdp, user: &str) -> (Browser, String) {
    let b = t.browser();
    let tokens = t.gateway_tokens_of(&b, user, "openid").await;
    let id = tokens["id_token"].as_str().unwrap().to_owned();
    (b, id)
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn id_token_hint_of_another_user_never_gets_their_code(pool: PgPool) {
    let t = spawn(pool).await;
    let (alice, alice_id) = signed_in(&t, "alice").await;
    let (_bob, bob_id) = signed_in(&t, "bob").await;

    // Alice's browser, a hint naming bob, prompt=none: login_required, no code.
    let (_, q) = authorize_with(&alice, &[("prompt", "none"), ("id_token_hint", &bob_id)]).await;
    assert_eq!(q["error"], "login_required");
    assert!(q.get("code").is_none());
    // Without prompt=none alice's session is not used: the login form, where
    // only bob may complete the request.
    let mut query = gateway_authorize("openid");
    query.push(("id_token_hint".into(), bob_id.clone()));
    let r = alice.sign_in(&query, "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (target, q) = location_query(&r);
    assert_eq!(
        (target.as_str(), q["error"].as_str()),
        (GATEWAY_REDIRECT, "login_required")
    );
    assert_eq!(q["state"], "st-123");
    assert!(!q.contains_key("code"));
    let r = t.browser().sign_in(&query, "bob", "bob-password").await;
    assert!(location_query(&r).1.contains_key("code"));

    // Her own hint: a code, for her.
    let (_, q) = authorize_with(&alice, &[("prompt", "none"), ("id_token_hint", &alice_id)]).await;
    let code = q["code"].as_str().expect("a code").to_owned();
    let tokens: Value = t.redeem_gateway_code(&code).await.json().await.unwrap();
    assert_eq!(
        payload(tokens["id_token"].as_str().unwrap())["sub"],
        payload(&alice_id)["sub"]
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn id_token_hint_must_be_our_signed_id_token_expired_or_not(pool: PgPool) {
    let t = spawn(pool).await;
    let (alice, alice_id) = signed_in(&t, "alice").await;
    let sub = payload(&alice_id)["sub"].as_str().unwrap().to_owned();

    // An expired ID token of ours still names the user.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = json!({
        "iss": t.idp.issuer, "sub": sub, "aud": "gateway", "iat": now - 7200, "exp": now - 3600,
    });
    let (expired, _) = t.idp.state.keys.sign_jwt("JWT", &expired).await.unwrap();
    let (_, q) = authorize_with(&alice, &[("prompt", "none"), ("id_token_hint", &expired)]).await;
    assert!(q["code"].is_string(), "{q}");

    // A forged signature, an access token, garbage: invalid_request, no code.
    let mut forged = alice_id.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let access = t.gateway_tokens("openid").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for hint in [forged.as_str(), access.as_str(), "not-a-jwt"] {
        let (_, q) = authorize_with(&alice, &[("prompt", "none"), ("id_token_hint", hint)]).await;
        assert_eq!(q["error"], "invalid_request", "{hint}");
        assert!(q.get("code").is_none());
    }
}

/// The `alg` of a JWT's header.
fn alg_of(jwt: &str) -> String {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    format!("{:?}", header.alg)
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn rs256_id_tokens_stay_available_beside_es256(pool: PgPool) {
    let t = spawn_with(pool, |c| c.signing_alg = Alg::ES256).await;
    let doc: Value = t.get_json(DISCOVERY).await;
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );

    // By default everything is ES256.
    let tokens = t.gateway_tokens("openid").await;
    assert_eq!(alg_of(tokens["id_token"].as_str().unwrap()), "ES256");
    assert_eq!(alg_of(tokens["access_token"].as_str().unwrap()), "ES256");

    // A client registered with id_token_signed_response_alg RS256 gets RS256
    // ID tokens (verifying against the JWKS), with an RS256 at_hash; its
    // access tokens stay ES256.
    admin::update_client(
        &t.pool,
        "gateway",
        ClientChanges {
            id_token_alg: Some(Some(Alg::RS256)),
            ..ClientChanges::default()
        },
    )
    .await
    .unwrap();
    let t = spawn_with(t.pool.clone(), |c| c.signing_alg = Alg::ES256).await;
    let tokens = t.gateway_tokens("openid").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(alg_of(id_token), "RS256");
    assert_eq!(alg_of(access), "ES256");
    let claims: Value = t.verify(id_token, "JWT", "gateway").await;
    let half = &platform::crypto::sha256(access.as_bytes())[..16];
    assert_eq!(claims["at_hash"], platform::crypto::b64url(half));

    // Back to the default.
    admin::update_client(
        &t.pool,
        "gateway",
        ClientChanges {
            id_token_alg: Some(None),
            ..ClientChanges::default()
        },
    )
    .await
    .unwrap();
    let gateway = realm::any_client(&t.pool, "gateway")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gateway.id_token_signed_response_alg, None);
}
