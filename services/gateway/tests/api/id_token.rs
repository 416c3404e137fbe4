//! ID token validation (OIDC Core §3.1.3.7), rule by rule, with tokens minted
//! by guard's test issuer (real keys, real JWKS over HTTP) and forged variants;
//! the gateway's [`Oidc`] verifies them with guard's `IdTokenVerifier` on the
//! key cache of the gateway's guard.

use std::time::Duration;

use axum::Json;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::oidc::{IdpError, Oidc, OidcSettings};
use guard::testing::{KeyKind, TestIssuer, TestKey, TokenBuilder};
use guard::{Guard, GuardConfig};
use serde_json::json;

const NONCE: &str = "nonce-of-this-sign-in";
const ACCESS_TOKEN: &str = "the-access-token";

struct Provider {
    keys: TestIssuer,
    issuer: String,
    oidc: Oidc,
    _discovery: tokio::task::JoinHandle<()>,
}

/// An IdP as the gateway sees it: a discovery document at `issuer` whose
/// `jwks_uri` is the test issuer's real JWKS.
async fn provider() -> Provider {
    let keys = TestIssuer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{}/jwks.json", keys.issuer()),
    });
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    );
    let discovery = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let oidc = Oidc::new(OidcSettings {
        issuer: issuer.clone(),
        client_id: "gateway".into(),
        client_secret: "unused".into(),
        redirect_uri: "http://localhost:8080/auth/callback".into(),
        post_logout_redirect_uri: "http://localhost:8080/".into(),
        scopes: "openid".into(),
        id_tokens: Guard::new(GuardConfig::new(&issuer, "gateway")).id_token_verifier("gateway"),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    Provider {
        keys,
        issuer,
        oidc,
        _discovery: discovery,
    }
}

/// `at_hash` for `ACCESS_TOKEN` with a SHA-256 based algorithm.
fn at_hash() -> String {
    let digest = platform::crypto::sha256(ACCESS_TOKEN.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

impl Provider {
    /// A valid ID token for the gateway.
    fn id_token(&self) -> TokenBuilder {
        TokenBuilder::new(&self.issuer, &self.keys.current_key())
            .header("typ", "JWT")
            .aud(&["gateway"])
            .claim("azp", "gateway")
            .claim("nonce", NONCE)
            .claim("at_hash", at_hash())
            .claim("name", "Alice Adams")
    }

    async fn check(&self, token: &str) -> Result<(), String> {
        match self
            .oidc
            .validate_id_token(token, NONCE, ACCESS_TOKEN)
            .await
        {
            Ok(claims) => {
                assert_eq!(claims.sub, "user-1");
                Ok(())
            }
            Err(IdpError::Rejected(reason)) => Err(reason),
            Err(IdpError::Unavailable(reason)) => panic!("the provider is up: {reason}"),
        }
    }
}

#[tokio::test]
async fn a_valid_id_token_is_accepted_and_each_broken_rule_refused() {
    let p = provider().await;
    assert_eq!(p.check(&p.id_token().sign()).await, Ok(()));
    // An audience besides us is one the gateway does not trust (OIDC Core
    // 3.1.3.7 step 3), even when azp names us.
    assert_eq!(
        p.check(&p.id_token().aud(&["gateway", "other"]).sign())
            .await,
        Err("invalid ID token: aud names an audience other than this client".into())
    );

    let forged_key = TestKey::generate(KeyKind::Rsa, p.keys.current_key().kid());
    let valid = p.id_token().sign();
    // Flip one character inside the signature (not the last: its spare bits would make it invalid base64).
    let at = valid.len() - 10;
    let flipped = if &valid[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &valid[..at], &valid[at + 1..]);
    let public_pem = p.keys.current_key().public_key_pem();

    let cases: Vec<(&str, String)> = vec![
        (
            "nonce does not match",
            p.id_token().claim("nonce", "another-sign-in").sign(),
        ),
        (
            "nonce does not match",
            p.id_token().without_claim("nonce").sign(),
        ),
        (
            "token audience does not include",
            p.id_token()
                .aud(&["another-client"])
                .claim("azp", "another-client")
                .sign(),
        ),
        (
            "azp is another client",
            p.id_token().claim("azp", "another-client").sign(),
        ),
        (
            "azp is required",
            p.id_token()
                .aud(&["gateway", "other"])
                .without_claim("azp")
                .sign(),
        ),
        (
            "token issuer is not trusted",
            p.id_token().claim("iss", p.keys.issuer()).sign(),
        ),
        ("token has expired", p.id_token().valid(-900, -600).sign()),
        (
            "token lacks the required claim exp",
            p.id_token().without_claim("exp").sign(),
        ),
        ("signature is invalid", tampered),
        ("signature is invalid", p.id_token().key(&forged_key).sign()),
        (
            "signing key is unknown",
            p.id_token().header("kid", "not-published").sign(),
        ),
        (
            "token header has no kid",
            p.id_token().without_header("kid").sign(),
        ),
        (
            "alg \"none\" is not accepted",
            p.id_token().header("alg", "none").sign_unsigned(),
        ),
        (
            "symmetric algorithms (HS*) are not accepted",
            p.id_token()
                .header("alg", "HS256")
                .sign_hs256(public_pem.as_bytes()),
        ),
        (
            "at_hash does not match",
            p.id_token()
                .claim("at_hash", "AAAAAAAAAAAAAAAAAAAAAA")
                .sign(),
        ),
        ("not a compact JWS", "not.a.jwt".to_owned()),
        (
            "not an ID token",
            p.id_token().header("typ", "at+jwt").sign(),
        ),
    ];
    for (expected, token) in cases {
        let refused = p.check(&token).await.expect_err(expected);
        assert!(
            refused.contains(expected),
            "expected {expected:?}, got {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_provider_naming_another_issuer_in_discovery_is_not_trusted() {
    // A discovery document that is served at our issuer's address but names another issuer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let document = json!({
        "issuer": "http://idp.evil.example",
        "authorization_endpoint": "http://idp.evil.example/authorize",
        "token_endpoint": "http://idp.evil.example/token",
        "jwks_uri": "http://idp.evil.example/jwks.json",
    });
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let oidc = Oidc::new(OidcSettings {
        issuer: issuer.clone(),
        client_id: "gateway".into(),
        client_secret: "unused".into(),
        redirect_uri: "http://localhost:8080/auth/callback".into(),
        post_logout_redirect_uri: "http://localhost:8080/".into(),
        scopes: "openid".into(),
        id_tokens: Guard::new(GuardConfig::new(&issuer, "gateway")).id_token_verifier("gateway"),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    match oidc.metadata().await {
        Err(IdpError::Unavailable(reason)) => {
            assert!(reason.contains("discovery names issuer"), "{reason}")
        }
        other => panic!(
            "trusted a mismatched issuer: {:?}",
            other.map(|m| m.issuer.clone())
        ),
    }
    assert!(
        oidc.authorization_request(None).await.is_err(),
        "no sign-in against it either"
    );
}
