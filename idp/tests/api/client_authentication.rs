//! Client authentication (RFC 6749 §2.3) at every endpoint that takes it:
//! `/token`, `/revoke`, `/introspect` and the revocation stream, for each
//! method (`client_secret_basic`, `client_secret_post`, `none`) and the ways
//! it goes wrong. All go through one extractor, so they answer alike.
//!
//! Also the client_credentials grant, which is client authentication alone.

use reqwest::{RequestBuilder, Response, StatusCode, header};
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;

use crate::helpers::{GATEWAY_SECRET, TestIdp, error_of, spawn};

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

/// How a request authenticates its client.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Basic(&'static str, &'static str),
    Post(&'static str, &'static str),
    /// A public client naming itself.
    Public(&'static str),
    /// Basic and the secret in the body at once.
    Both,
    /// A raw `Authorization` header.
    Header(&'static str),
}

/// The form endpoints, each with a body it answers once the client is known.
const FORM_ENDPOINTS: [(&str, &[(&str, &str)]); 3] = [
    (
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", "junk")],
    ),
    ("/revoke", &[("token", "junk")]),
    ("/introspect", &[("token", "junk")]),
];

async fn post(t: &TestIdp, path: &str, form: &[(&str, &str)], auth: Auth) -> Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let req = t.http.post(t.url(path));
    let req = match auth {
        Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            form.extend([("client_id", id), ("client_secret", secret)]);
            req
        }
        Auth::Public(id) => {
            form.push(("client_id", id));
            req
        }
        Auth::Both => {
            form.push(("client_secret", GATEWAY_SECRET));
            req.basic_auth("gateway", Some(GATEWAY_SECRET))
        }
        Auth::Header(value) => req.header(header::AUTHORIZATION, value),
    };
    req.form(&form).send().await.unwrap()
}

/// Status, error code and `WWW-Authenticate` of an answer.
async fn outcome(r: Response) -> (StatusCode, Option<String>, Option<String>) {
    let status = r.status();
    let challenge = r
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let error = body["error"].as_str().map(str::to_owned);
    (status, error, challenge)
}

fn is_invalid_client(o: &(StatusCode, Option<String>, Option<String>)) -> bool {
    o.0 == StatusCode::UNAUTHORIZED
        && o.1.as_deref() == Some("invalid_client")
        && o.2.as_deref().is_some_and(|c| c.starts_with("Basic "))
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn every_method_authenticates_at_every_form_endpoint(pool: PgPool) {
    let t = spawn(pool).await;
    for (path, form) in FORM_ENDPOINTS {
        for auth in [
            Auth::Basic("gateway", GATEWAY_SECRET),
            Auth::Post("gateway", GATEWAY_SECRET),
        ] {
            let o = outcome(post(&t, path, form, auth).await).await;
            assert!(!is_invalid_client(&o), "{path} {auth:?}: {o:?}");
            let expected = if path == "/token" {
                StatusCode::BAD_REQUEST // invalid_grant: the client got that far
            } else {
                StatusCode::OK
            };
            assert_eq!(o.0, expected, "{path} {auth:?}: {o:?}");
        }
    }
    // A public client passes at /token and /revoke …
    let token = outcome(post(&t, "/token", FORM_ENDPOINTS[0].1, Auth::Public("cli")).await).await;
    assert!(!is_invalid_client(&token), "{token:?}");
    let revoke = post(&t, "/revoke", &[("token", "junk")], Auth::Public("cli")).await;
    assert_eq!(revoke.status(), StatusCode::OK);
    // … but introspection needs a confidential client.
    let introspect = post(&t, "/introspect", &[("token", "junk")], Auth::Public("cli")).await;
    assert!(is_invalid_client(&outcome(introspect).await));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn bad_client_authentication_is_refused_alike_everywhere(pool: PgPool) {
    let t = spawn(pool).await;
    let unauthorized = [
        Auth::Basic("gateway", "wrong"),
        Auth::Post("gateway", "wrong"),
        Auth::Basic("nobody", "whatever"),
        Auth::Post("nobody", "whatever"),
        Auth::Public("nobody"),
        // A confidential client cannot pass as a public one.
        Auth::Public("gateway"),
        // A public client has no secret to send.
        Auth::Basic("cli", "anything"),
        Auth::Header("Basic !!!"),
        Auth::Header("Basic"),
        Auth::Header("Bearer abc"),
    ];
    for (path, form) in FORM_ENDPOINTS {
        for auth in unauthorized {
            let o = outcome(post(&t, path, form, auth).await).await;
            assert!(is_invalid_client(&o), "{path} {auth:?}: {o:?}");
        }
        let o = outcome(post(&t, path, form, Auth::Both).await).await;
        assert_eq!(
            (o.0, o.1.as_deref()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{path}: two methods at once"
        );
        // No client at all.
        let o = outcome(t.http.post(t.url(path)).form(form).send().await.unwrap()).await;
        assert!(is_invalid_client(&o), "{path} without a client: {o:?}");
    }
}

fn stream(t: &TestIdp) -> RequestBuilder {
    t.http
        .get(t.url("/revocations/stream"))
        .header("accept", "text/event-stream")
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn the_revocation_stream_refuses_bad_client_authentication(pool: PgPool) {
    let t = spawn(pool).await;
    for (req, why) in [
        (stream(&t), "no credentials"),
        (
            stream(&t).basic_auth("cli", Some("anything")),
            "public client",
        ),
        (
            stream(&t).basic_auth("order", Some("wrong")),
            "wrong secret",
        ),
        (stream(&t).basic_auth("nobody", Some("x")), "unknown client"),
        (
            stream(&t).header(header::AUTHORIZATION, "Basic !!!"),
            "malformed",
        ),
    ] {
        let o = outcome(req.send().await.unwrap()).await;
        assert!(is_invalid_client(&o), "{why}: {o:?}");
    }
}
