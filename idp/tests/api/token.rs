//! Issue 2, rules 5 and 9: the token endpoint and its strict input handling:
//! authorization codes (contract, PKCE, replay, expiry, storage), signing
//! algorithms and bad input. Client authentication and client_credentials
//! are in `client_authentication.rs`, refresh tokens in `refresh_tokens.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;
use guard::dpop::DpopKey;

use crate::helpers::{
    GATEWAY_REDIRECT, GATEWAY_SECRET, TestIdp, VERIFIER, error_of, payload, spawn, spawn_with,
};

#[derive(Debug, Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    aud: String,
    azp: String,
    nonce: String,
    at_hash: String,
    sid: String,
    auth_time: i64,
    name: String,
    email: String,
    exp: i64,
}

pub(crate) async fn code_for(t: &TestIdp, scope: &str) -> String {
    t.browser()
        .sign_in_gateway("alice", "alice-password", scope)
        .await
}

pub(crate) fn redeem(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", GATEWAY_REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn issued_tokens_follow_the_contract_and_verify_against_jwks(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t
        .gateway_tokens("openid profile email orders:write offline_access")
        .await;
    let at = tokens["access_token"].as_str().unwrap();
    let access: AccessClaims = t.verify(at, "at+jwt", "payment").await;
    assert_eq!(access.iss, t.idp.issuer);
    assert_eq!(access.aud, vec!["order", "payment", "inventory"]);
    assert_eq!(access.client_id, "gateway");
    assert_eq!(
        access.scope,
        "openid profile email orders:write offline_access"
    );
    assert_eq!(access.roles, vec!["customer"]);
    assert!(uuid::Uuid::parse_str(&access.sub).is_ok());
    assert!(access.sid.is_some() && access.auth_time.is_some());
    assert_eq!(access.exp - access.iat, 300);
    assert_eq!(access.nbf, access.iat);

    let id: IdClaims = t
        .verify(tokens["id_token"].as_str().unwrap(), "JWT", "gateway")
        .await;
    assert_eq!(id.iss, t.idp.issuer);
    assert_eq!((id.aud.as_str(), id.azp.as_str()), ("gateway", "gateway"));
    assert_eq!(id.sub, access.sub);
    assert_eq!(id.nonce, "n-456");
    assert_eq!(Some(id.sid), access.sid);
    assert_eq!(Some(id.auth_time), access.auth_time);
    assert_eq!(
        (id.name.as_str(), id.email.as_str()),
        ("Alice Adams", "alice@example.com")
    );
    assert!(id.exp > access.iat);
    // at_hash: left half of SHA-256 of the access token, base64url.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, at.as_bytes());
    assert_eq!(
        id.at_hash,
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &digest.as_ref()[..16]
        )
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid offline_access").await;
    let first: Value = t.token(&redeem(&code)).await.json().await.unwrap();
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(t.userinfo(at).await.status(), StatusCode::OK);

    assert_eq!(
        error_of(t.token(&redeem(&code)).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    // The access token and the refresh token from the first redemption are dead.
    assert_eq!(t.userinfo(at).await.status(), StatusCode::UNAUTHORIZED);
    let r = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM revocations WHERE kind = 'jti' AND value = $1")
            .bind(payload(at)["jti"].as_str().unwrap())
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(revoked, 1, "a jti revocation is published for the services");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn pkce_must_match(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid").await;
    let mut form = redeem(&code);
    form.retain(|(k, _)| *k != "code_verifier");
    form.push((
        "code_verifier",
        "wrong-verifier-wrong-verifier-wrong-verifier-0",
    ));
    assert_eq!(error_of(t.token(&form).await).await.1, "invalid_grant");
    // The failed attempt consumed the code.
    assert_eq!(
        error_of(t.token(&redeem(&code)).await).await.1,
        "invalid_grant"
    );

    let code = code_for(&t, "openid").await;
    let mut form = redeem(&code);
    form.retain(|(k, _)| *k != "code_verifier");
    assert_eq!(
        error_of(t.token(&form).await).await.1,
        "invalid_grant",
        "verifier missing"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_verifier_without_a_challenge_is_a_downgrade_and_refused(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let mut q = crate::helpers::gateway_authorize("openid");
    q.retain(|(k, _)| !k.starts_with("code_challenge"));
    let r = browser.sign_in(&q, "alice", "alice-password").await;
    let code = crate::helpers::location_query(&r).1["code"].clone();
    assert_eq!(
        error_of(t.token(&redeem(&code)).await).await.1,
        "invalid_grant"
    );
    // Without PKCE at all a confidential client may redeem it (the SSO session answers at once).
    let r = browser.authorize(&q).await;
    let code = crate::helpers::location_query(&r).1["code"].clone();
    let mut form = redeem(&code);
    form.retain(|(k, _)| *k != "code_verifier");
    assert_eq!(t.token(&form).await.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn redirect_uri_must_match_the_authorization_request(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid").await;
    let mut form = redeem(&code);
    form.retain(|(k, _)| *k != "redirect_uri");
    form.push(("redirect_uri", "http://localhost:8080/other"));
    assert_eq!(error_of(t.token(&form).await).await.1, "invalid_grant");
    let code = code_for(&t, "openid").await;
    let mut form = redeem(&code);
    form.retain(|(k, _)| *k != "redirect_uri");
    assert_eq!(
        error_of(t.token(&form).await).await.1,
        "invalid_request",
        "redirect_uri missing"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_expired_code_is_refused(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid").await;
    let lifetime: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM authorization_codes",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(
        (59.0..=61.0).contains(&lifetime),
        "codes live 60 s, got {lifetime}"
    );
    sqlx::query("UPDATE authorization_codes SET expires_at = now() - interval '1 second'")
        .execute(&t.pool)
        .await
        .unwrap();
    assert_eq!(
        error_of(t.token(&redeem(&code)).await).await.1,
        "invalid_grant"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn codes_are_stored_hashed_and_bound_to_their_client(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid").await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM authorization_codes WHERE code_hash = $1")
            .bind(code.as_bytes())
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0, "the code itself is not in the database");
    // The public cli client cannot redeem the gateway's code.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", GATEWAY_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let r = t.cli_token(&form, Some(&DpopKey::generate())).await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
    // Another client holding a leaked code cannot burn it: the rightful
    // client still redeems it, and nothing it issued is revoked.
    let r = t.token(&redeem(&code)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the gateway still redeems its code"
    );
    let tokens: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        t.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn bad_input_gets_standard_errors_never_a_500(pool: PgPool) {
    let t = spawn(pool).await;
    let post = |body: &'static str, content_type: &'static str| {
        t.http
            .post(t.url("/token"))
            .basic_auth("gateway", Some(GATEWAY_SECRET))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let form = "application/x-www-form-urlencoded";
    let cases = [
        (
            post("grant_type=password&username=a&password=b", form).await,
            "unsupported_grant_type",
        ),
        (
            post(
                "grant_type=urn:ietf:params:oauth:grant-type:device_code",
                form,
            )
            .await,
            "unsupported_grant_type",
        ),
        (post("", form).await, "invalid_request"),
        (
            post(
                "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
                form,
            )
            .await,
            "invalid_request",
        ),
        (
            post(r#"{"grant_type":"client_credentials"}"#, "application/json").await,
            "invalid_request",
        ),
        (
            post(
                "grant_type=authorization_code&code=garbage&redirect_uri=x",
                form,
            )
            .await,
            "invalid_grant",
        ),
        (
            post("grant_type=refresh_token&refresh_token=%FF%00garbage", form).await,
            "invalid_request",
        ),
        (
            post("grant_type=authorization_code", form).await,
            "invalid_request",
        ),
        (post("%%%===&&&", form).await, "invalid_request"),
        (
            post("grant_type=client_credentials&client_id=a%00b", form).await,
            "invalid_request",
        ),
    ];
    for (r, expected) in cases {
        assert_eq!(
            error_of(r.unwrap()).await,
            (StatusCode::BAD_REQUEST, expected.to_owned())
        );
    }
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(64 * 1024)
    );
    let r = t
        .http
        .post(t.url("/token"))
        .header("content-type", form)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = t.http.get(t.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A NUL in Basic credentials (PostgreSQL text cannot hold it) is a client error.
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("a%00b", Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn es256_and_eddsa_are_selectable(pool: PgPool) {
    for (alg, kty) in [("ES256", "EC"), ("EdDSA", "OKP")] {
        // Each algorithm gets its own IdP over the same database: keys of the
        // earlier algorithm stay published, the configured one signs.
        let t = spawn_with(pool.clone(), |c| c.signing_alg = alg.parse().unwrap()).await;
        let r = t
            .http
            .post(t.url("/token"))
            .basic_auth("reporter", Some("reporter-dev-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let at = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                at.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg);
        let _: AccessClaims = t.verify(&at, "at+jwt", "order").await;
        let jwks: Value = t.get_json("/jwks.json").await;
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kty"] == kty && k["kid"] == header["kid"])
        );
        let doc: Value = t.get_json("/.well-known/openid-configuration").await;
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!([alg, "RS256"]),
            "RS256 stays available for ID tokens (OIDC Core §15.1)"
        );
        // An ID token signed with it verifies too (at_hash uses the algorithm's hash).
        let tokens = t.gateway_tokens("openid").await;
        let id: Value = t
            .verify(tokens["id_token"].as_str().unwrap(), "JWT", "gateway")
            .await;
        assert!(id["at_hash"].is_string());
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_replay_during_the_first_redemption_stops_its_tokens(pool: PgPool) {
    let t = spawn(pool).await;
    let code = code_for(&t, "openid").await;
    // The first redemption has consumed the code and is still issuing...
    let mut first = t.pool.begin().await.unwrap();
    assert!(matches!(
        idp::grants::consume_code(&mut first, &code, "gateway")
            .await
            .unwrap(),
        idp::grants::Redeem::Fresh(_)
    ));
    first.commit().await.unwrap();
    // ...when a replay arrives.
    assert_eq!(
        error_of(t.token(&redeem(&code)).await).await.1,
        "invalid_grant"
    );
    // The first redemption learns of it and hands nothing out.
    let mut tx = t.pool.begin().await.unwrap();
    let exp = time::OffsetDateTime::now_utc() + Duration::from_secs(300);
    assert!(
        !idp::grants::record_code_issue(&mut tx, &code, "jti-1", exp, None)
            .await
            .unwrap()
    );
}
