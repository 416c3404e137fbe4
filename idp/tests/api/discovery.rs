use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn;

#[sqlx::test(migrations = "../migrations/idp")]
async fn both_metadata_documents_name_the_issuer_and_every_required_field(pool: PgPool) {
    let t = spawn(pool).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["issuer"], t.idp.issuer.as_str());
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "revocation_endpoint",
            "introspection_endpoint",
            "end_session_endpoint",
        ] {
            let url = doc[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} missing"));
            assert!(url.starts_with(&t.idp.issuer), "{field} = {url}");
        }
        for field in [
            "scopes_supported",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
            "grant_types_supported",
            "token_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(
                doc[field].as_array().is_some_and(|a| !a.is_empty()),
                "{field} missing"
            );
        }
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        assert!(
            doc["scopes_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "orders:write")
        );
        // Back-Channel Logout 1.0, with `sid` in ID and logout tokens.
        assert_eq!(doc["backchannel_logout_supported"], true);
        assert_eq!(doc["backchannel_logout_session_supported"], true);
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn jwks_is_cacheable_and_publishes_only_public_parts(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t.http.get(t.url("/jwks.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            key.get(private).is_none(),
            "{private} must never be published"
        );
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn health_and_readiness(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t.http.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t.http.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
    // The database goes away: not ready, and it says why.
    t.pool.close().await;
    let r = t.http.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["not_ready"],
        serde_json::json!(["database"])
    );
    let r = t.http.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn unknown_paths_are_404_json_and_every_answer_has_a_request_id(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t.http.get(t.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_https_issuer_sends_hsts_and_a_plain_one_does_not(pool: PgPool) {
    let plain = crate::helpers::spawn(pool.clone()).await;
    let r = plain.http.get(plain.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    drop(plain);
    // Behind TLS termination: the issuer is https, the test talks to the
    // listener directly.
    let https = crate::helpers::spawn_with(pool, |c| {
        c.issuer = "https://id.example.test".into();
    })
    .await;
    let r = https
        .http
        .get(format!(
            "http://{}/.well-known/openid-configuration",
            https.idp.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}
