//! The ID-token verifier (OIDC Core §3.1.3.7) against a real test issuer,
//! rule by rule, and its sharing of the guard's key cache.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guard::testing::{KeyKind, TestIssuer, TestKey, TokenBuilder};
use guard::{Guard, GuardConfig, IdTokenError, IdTokenVerifier, TokenError};

use crate::helpers::{issuer_and_guard, serve};

const NONCE: &str = "nonce-of-this-sign-in";
const ACCESS_TOKEN: &str = "the-access-token";

/// A valid ID token for the client `gateway`, as Baton's IdP signs them.
fn id_token(issuer: &TestIssuer) -> TokenBuilder {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ACCESS_TOKEN.as_bytes());
    issuer
        .token()
        .header("typ", "JWT")
        .aud(&["gateway"])
        .without_claim("client_id")
        .without_claim("scope")
        .without_claim("roles")
        .without_claim("jti")
        .without_claim("nbf")
        .claim("azp", "gateway")
        .claim("nonce", NONCE)
        .claim("at_hash", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]))
        .claim("name", "Alice Adams")
        .claim("email", "alice@example.com")
}

async fn verify(verifier: &IdTokenVerifier, token: &str) -> Result<(), IdTokenError> {
    verifier
        .verify(token, NONCE, Some(ACCESS_TOKEN))
        .await
        .map(|claims| assert_eq!(claims.sub, "user-1"))
}

#[tokio::test]
async fn a_valid_id_token_is_accepted_with_its_claims() {
    let (issuer, guard) = issuer_and_guard().await;
    let verifier = guard.id_token_verifier("gateway");
    assert_eq!(verifier.client_id(), "gateway");
    for kind in [KeyKind::Rsa, KeyKind::Ec, KeyKind::Ed] {
        let token = id_token(&issuer)
            .key(&issuer.key_of(kind))
            .without_claim("at_hash")
            .sign();
        let claims = verifier
            .verify(&token, NONCE, Some(ACCESS_TOKEN))
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(claims.iss, issuer.issuer());
        assert_eq!(claims.aud, ["gateway"]);
        assert_eq!(claims.azp.as_deref(), Some("gateway"));
        assert_eq!(claims.name.as_deref(), Some("Alice Adams"));
        assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
        assert!(claims.sid.is_some());
    }
    // With at_hash; without typ; a single-string aud; the client listed twice
    // (only the client); without azp.
    let valid = [
        id_token(&issuer).sign(),
        id_token(&issuer).without_header("typ").sign(),
        id_token(&issuer).claim("aud", "gateway").sign(),
        id_token(&issuer).aud(&["gateway", "gateway"]).sign(),
        id_token(&issuer).without_claim("azp").sign(),
    ];
    for token in valid {
        assert_eq!(verify(&verifier, &token).await, Ok(()));
    }
    // at_hash is only checked against an access token given.
    let token = id_token(&issuer).claim("at_hash", "AAAA").sign();
    assert!(verifier.verify(&token, NONCE, None).await.is_ok());
}

#[tokio::test]
async fn an_empty_expected_nonce_matches_no_token() {
    let (issuer, guard) = issuer_and_guard().await;
    let verifier = guard.id_token_verifier("gateway");
    let token = id_token(&issuer).claim("nonce", "").sign();
    assert_eq!(
        verifier.verify(&token, "", None).await.unwrap_err(),
        IdTokenError::NonceMismatch
    );
}

#[tokio::test]
async fn each_broken_rule_is_refused_with_its_reason() {
    let (issuer, guard) = issuer_and_guard().await;
    let verifier = guard.id_token_verifier("gateway");
    let forged_key = TestKey::generate(KeyKind::Rsa, issuer.current_key().kid());
    let public_pem = issuer.current_key().public_key_pem();
    let token = |t: TokenError| IdTokenError::Token(t);
    let cases: Vec<(IdTokenError, String)> = vec![
        (
            token(TokenError::WrongAudience),
            id_token(&issuer)
                .aud(&["another-client"])
                .claim("azp", "another-client")
                .sign(),
        ),
        (
            IdTokenError::WrongAzp,
            id_token(&issuer).claim("azp", "another-client").sign(),
        ),
        (
            IdTokenError::AzpRequired,
            id_token(&issuer)
                .aud(&["gateway", "other"])
                .without_claim("azp")
                .sign(),
        ),
        (
            IdTokenError::UntrustedAudience,
            id_token(&issuer)
                .aud(&["gateway", "other"])
                .claim("azp", "gateway")
                .sign(),
        ),
        (
            token(TokenError::WrongIssuer),
            id_token(&issuer).claim("iss", "http://idp.evil").sign(),
        ),
        (
            token(TokenError::Expired),
            id_token(&issuer).valid(-900, -600).sign(),
        ),
        (
            token(TokenError::NotYetValid),
            id_token(&issuer)
                .claim("nbf", guard::unix_now() + 600)
                .sign(),
        ),
        (
            token(TokenError::IssuedInFuture),
            id_token(&issuer)
                .claim("iat", guard::unix_now() + 600)
                .sign(),
        ),
        (
            token(TokenError::MissingClaim("exp")),
            id_token(&issuer).without_claim("exp").sign(),
        ),
        (
            token(TokenError::MissingClaim("iat")),
            id_token(&issuer).without_claim("iat").sign(),
        ),
        (
            token(TokenError::MissingClaim("sub")),
            id_token(&issuer).without_claim("sub").sign(),
        ),
        (
            IdTokenError::NonceMismatch,
            id_token(&issuer).claim("nonce", "another-sign-in").sign(),
        ),
        (
            IdTokenError::NonceMismatch,
            id_token(&issuer).without_claim("nonce").sign(),
        ),
        (
            IdTokenError::AtHashMismatch,
            id_token(&issuer)
                .claim("at_hash", "AAAAAAAAAAAAAAAAAAAAAA")
                .sign(),
        ),
        (
            token(TokenError::BadSignature),
            id_token(&issuer).key(&forged_key).sign(),
        ),
        (
            token(TokenError::UnknownKid),
            id_token(&issuer).header("kid", "not-published").sign(),
        ),
        (
            token(TokenError::MissingKid),
            id_token(&issuer).without_header("kid").sign(),
        ),
        (
            token(TokenError::AlgNone),
            id_token(&issuer).header("alg", "none").sign_unsigned(),
        ),
        (
            token(TokenError::AlgSymmetric),
            id_token(&issuer)
                .header("alg", "HS256")
                .sign_hs256(public_pem.as_bytes()),
        ),
        (
            token(TokenError::KeyAlgorithmMismatch),
            id_token(&issuer)
                .key(&issuer.key_of(KeyKind::Ec))
                .header("alg", "RS256")
                .sign(),
        ),
        (
            token(TokenError::UnsupportedCrit),
            id_token(&issuer).header("crit", vec!["exp"]).sign(),
        ),
        (
            token(TokenError::ForbiddenHeader("jku")),
            id_token(&issuer).header("jku", "http://evil/jwks").sign(),
        ),
        (
            token(TokenError::ForbiddenHeader("jwk")),
            id_token(&issuer)
                .header("jwk", issuer.current_key().jwk().clone())
                .sign(),
        ),
        (
            token(TokenError::ForbiddenHeader("x5u")),
            id_token(&issuer).header("x5u", "http://evil/cert").sign(),
        ),
        (
            token(TokenError::TooLarge(8 * 1024)),
            id_token(&issuer).claim("name", "a".repeat(9000)).sign(),
        ),
        (token(TokenError::Malformed), "not.a.jwt".to_owned()),
    ];
    for (expected, token) in cases {
        assert_eq!(
            verify(&verifier, &token).await,
            Err(expected.clone()),
            "{expected}"
        );
    }
}

#[tokio::test]
async fn an_access_token_is_not_an_id_token() {
    let (issuer, guard) = issuer_and_guard().await;
    let verifier = guard.id_token_verifier("gateway");
    // Everything an ID token needs, but typed (and signed) as an access token.
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let access = id_token(&issuer).header("typ", typ).sign();
        assert_eq!(
            verify(&verifier, &access).await,
            Err(IdTokenError::WrongType),
            "{typ}"
        );
    }
    // Other types are not ID tokens either.
    let logout = id_token(&issuer).header("typ", "logout+jwt").sign();
    assert_eq!(
        verify(&verifier, &logout).await,
        Err(IdTokenError::WrongType)
    );
    // And the ID token is not an access token for the guard.
    let id = id_token(&issuer).sign();
    assert_eq!(
        guard.validate(&id).await.unwrap_err(),
        guard::AuthError::InvalidToken(TokenError::WrongType)
    );
}

#[tokio::test]
async fn the_verifier_shares_the_guard_key_cache() {
    let (issuer, guard) = issuer_and_guard().await;
    let verifier = guard.for_audience("payment").id_token_verifier("gateway");
    let fetched = issuer.jwks_requests();
    for _ in 0..3 {
        assert_eq!(verify(&verifier, &id_token(&issuer).sign()).await, Ok(()));
    }
    assert_eq!(issuer.jwks_requests(), fetched, "no fetch per sign-in");

    // A key published after the guard loaded its keys is found by one refetch.
    let new = issuer.rotate(KeyKind::Ec);
    assert_eq!(
        verify(&verifier, &id_token(&issuer).key(&new).sign()).await,
        Ok(())
    );
    assert_eq!(issuer.jwks_requests(), fetched + 1);
    assert!(guard.status().kids.contains(&new.kid().to_owned()));
}

#[tokio::test]
async fn keys_unavailable_is_not_a_refusal() {
    // An IdP that answers nothing useful: no key was ever loaded.
    let down = serve(
        axum::Router::new().fallback(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
    )
    .await;
    let key = TestKey::generate(KeyKind::Ec, "ec-1");
    let token = TokenBuilder::new(&down, &key)
        .header("typ", "JWT")
        .aud(&["gateway"])
        .claim("nonce", NONCE)
        .sign();
    let verifier = Guard::new(GuardConfig::new(&down, "order")).id_token_verifier("gateway");
    assert_eq!(
        verify(&verifier, &token).await,
        Err(IdTokenError::KeysUnavailable)
    );
}
