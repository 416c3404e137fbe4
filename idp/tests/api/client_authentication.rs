//! Issue 2, rule 5: the token endpoint authenticates clients (every method
//! and its failures) and issues service tokens for client_credentials.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;

use crate::helpers::{GATEWAY_SECRET, error_of, spawn};

#[sqlx::test(migrations = "../migrations/idp")]
async fn client_authentication_methods_and_failures(pool: PgPool) {
    let t = spawn(pool).await;
    let cc = [("grant_type", "client_credentials")];
    // client_secret_basic and client_secret_post both work for the reporter.
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .http
        .post(t.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "reporter"),
            ("client_secret", "reporter-dev-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    for (id, secret) in [("reporter", "wrong"), ("nobody", "x"), ("reporter", "")] {
        let r = t
            .http
            .post(t.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&cc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{id}:{secret}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    // A confidential client cannot skip its secret.
    let r = t
        .http
        .post(t.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "reporter"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // Nothing at all.
    let r = t.http.post(t.url("/token")).form(&cc).send().await.unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // Two methods at once.
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "reporter-dev-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_request");
    // Secrets are stored as SHA-256, never in clear.
    let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM clients WHERE id = 'gateway'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(hash.len(), 32);
    assert_ne!(hash, GATEWAY_SECRET.as_bytes());
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn client_credentials_issue_a_service_token(pool: PgPool) {
    let t = spawn(pool).await;
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let claims: AccessClaims = t
        .verify(
            body["access_token"].as_str().unwrap(),
            "at+jwt",
            "inventory",
        )
        .await;
    assert_eq!(
        (
            claims.sub.as_str(),
            claims.client_id.as_str(),
            claims.scope.as_str()
        ),
        ("reporter", "reporter", "orders:read")
    );
    assert!(claims.sid.is_none() && claims.auth_time.is_none() && claims.roles.is_empty());

    for scope in ["orders:write", "openid"] {
        let r = t
            .http
            .post(t.url("/token"))
            .basic_auth("reporter", Some("reporter-dev-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.1, "invalid_scope", "{scope}");
    }
    // The gateway is not registered for client_credentials.
    assert_eq!(
        error_of(t.token(&[("grant_type", "client_credentials")]).await)
            .await
            .1,
        "unauthorized_client"
    );
}
