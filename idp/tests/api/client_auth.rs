//! Client authentication (RFC 6749 §2.3) at every endpoint that takes it:
//! `/token`, `/revoke`, `/introspect` and the revocation stream, for each
//! method (`client_secret_basic`, `client_secret_post`, `none`) and the ways
//! it goes wrong. All go through one extractor, so they answer alike.

use reqwest::{RequestBuilder, Response, StatusCode, header};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{GATEWAY_SECRET, TestIdp, spawn};

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
