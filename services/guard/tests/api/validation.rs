//! Every validator rule, each proven with a token forged to break exactly it.

use guard::testing::{KeyKind, TestKey};
use guard::{Algorithm, AuthError, Guard, Revocation, TokenError};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::helpers::{eventually, issuer_and_guard, ready_guard};

fn refused(result: Result<guard::Principal, AuthError>) -> TokenError {
    match result {
        Err(AuthError::InvalidToken(e)) => e,
        other => panic!("expected an invalid_token refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_of_each_key_type_are_accepted_with_their_claims() {
    let (issuer, guard) = issuer_and_guard().await;
    for kind in [KeyKind::Rsa, KeyKind::Ec, KeyKind::Ed] {
        let key = issuer.key_of(kind);
        let token = issuer
            .token()
            .key(&key)
            .sub("alice")
            .roles(&["customer", "support"])
            .scope("orders:read orders:write")
            .claim("act", json!({"sub": "order"}))
            .sign();
        let p = guard
            .validate(&token)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(p.sub(), "alice");
        assert_eq!(p.client_id(), "gateway");
        assert!(p.has_role("support") && !p.has_role("admin"));
        assert!(p.has_scope("orders:write") && !p.has_scope("orders"));
        assert_eq!(p.act().map(|a| a.sub.as_str()), Some("order"));
        assert!(p.sid().is_some() && !p.jti().is_empty());
        assert_eq!(&**p.token(), token);
    }
}

#[tokio::test]
async fn a_single_string_audience_is_accepted() {
    let (issuer, guard) = issuer_and_guard().await;
    let token = issuer.token().claim("aud", "order").sign();
    assert!(guard.validate(&token).await.is_ok());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    for alg in ["none", "None", "NONE"] {
        let token = issuer.token().header("alg", alg).sign_unsigned();
        assert_eq!(refused(guard.validate(&token).await), TokenError::AlgNone);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let pem = issuer.key_of(KeyKind::Rsa).public_key_pem();
    for alg in ["HS256", "HS384", "HS512"] {
        let token = issuer.token().header("alg", alg).sign_hs256(pem.as_bytes());
        assert_eq!(
            refused(guard.validate(&token).await),
            TokenError::AlgSymmetric
        );
    }
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused() {
    let issuer = guard::testing::TestIssuer::start().await;
    let guard = ready_guard(
        issuer
            .config("order")
            .with_algorithms(&[Algorithm::ES256])
            .unwrap(),
    )
    .await;
    let rs256 = issuer.token().sign();
    assert_eq!(
        refused(guard.validate(&rs256).await),
        TokenError::AlgNotAllowed
    );
    let es256 = issuer.token().key(&issuer.key_of(KeyKind::Ec)).sign();
    assert!(guard.validate(&es256).await.is_ok());
    let ps256 = issuer.token().header("alg", "PS256").sign();
    assert_eq!(
        refused(guard.validate(&ps256).await),
        TokenError::AlgNotAllowed
    );
}

#[tokio::test]
async fn a_key_used_with_another_algorithm_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    // The RSA key's kid, but the header claims ES256.
    let token = issuer.token().header("alg", "ES256").sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::KeyAlgorithmMismatch
    );
    // The EC key's kid with RS256.
    let token = issuer.token().header("kid", "ec-1").sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::KeyAlgorithmMismatch
    );
    // RS512 with the RS256-only key (not even allowed by default).
    let token = issuer.token().header("alg", "RS512").sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::AlgNotAllowed
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let stranger = TestKey::generate(KeyKind::Rsa, "not-published");
    let token = issuer.token().key(&stranger).sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::UnknownKid
    );
}

#[tokio::test]
async fn a_signature_by_another_key_under_a_known_kid_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let attacker = TestKey::generate(KeyKind::Rsa, "rsa-1");
    let token = issuer.token().key(&attacker).roles(&["admin"]).sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::BadSignature
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let genuine = issuer.token().roles(&["customer"]).sign();
    let forged_claims = issuer.token().roles(&["admin"]);
    let forged_payload = forged_claims.sign().split('.').nth(1).unwrap().to_owned();
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        refused(guard.validate(&tampered).await),
        TokenError::BadSignature
    );
    // A truncated signature too (bad base64 or bad signature, depending on the cut).
    let truncated = &genuine[..genuine.len() - 4];
    assert!(matches!(
        refused(guard.validate(truncated).await),
        TokenError::BadSignature | TokenError::Malformed
    ));
}

#[tokio::test]
async fn time_claims_are_enforced_with_30_seconds_of_leeway() {
    let (issuer, guard) = issuer_and_guard().await;
    let expired = issuer.token().valid(-600, -120).sign();
    assert_eq!(refused(guard.validate(&expired).await), TokenError::Expired);
    let not_yet = issuer
        .token()
        .valid(120, 600)
        .claim("iat", guard::testing::now())
        .sign();
    assert_eq!(
        refused(guard.validate(&not_yet).await),
        TokenError::NotYetValid
    );
    let future_iat = issuer
        .token()
        .claim("iat", guard::testing::now() + 120)
        .sign();
    assert_eq!(
        refused(guard.validate(&future_iat).await),
        TokenError::IssuedInFuture
    );
    // Longer-lived than this service accepts (1 h by default): a revocation
    // would have to be remembered for longer than the denylist keeps it.
    let day_long = issuer
        .token()
        .claim("iat", guard::testing::now())
        .claim("exp", guard::testing::now() + 86_400)
        .sign();
    assert_eq!(
        refused(guard.validate(&day_long).await),
        TokenError::LivesTooLong
    );
    // Within the skew: just expired, not quite valid yet.
    let just_expired = issuer.token().valid(-600, -10).sign();
    assert!(guard.validate(&just_expired).await.is_ok());
    let almost_valid = issuer.token().valid(10, 600).sign();
    assert!(guard.validate(&almost_valid).await.is_ok());
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let other_aud = issuer.token().aud(&["payment", "inventory"]).sign();
    assert_eq!(
        refused(guard.validate(&other_aud).await),
        TokenError::WrongAudience
    );
    let empty_aud = issuer.token().aud(&[]).sign();
    assert_eq!(
        refused(guard.validate(&empty_aud).await),
        TokenError::WrongAudience
    );
    let other_iss = issuer.token().claim("iss", "http://evil.example").sign();
    assert_eq!(
        refused(guard.validate(&other_iss).await),
        TokenError::WrongIssuer
    );
    let near_iss = issuer
        .token()
        .claim("iss", format!("{}/", issuer.issuer()))
        .sign();
    assert_eq!(
        refused(guard.validate(&near_iss).await),
        TokenError::WrongIssuer
    );
    let array_iss = issuer
        .token()
        .claim("iss", json!(["http://evil.example", issuer.issuer()]))
        .sign();
    assert!(guard.validate(&array_iss).await.is_err());
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let (issuer, guard) = issuer_and_guard().await;
    for claim in ["exp", "aud", "iss", "sub", "nbf", "iat", "jti", "client_id"] {
        let token = issuer.token().without_claim(claim).sign();
        assert_eq!(
            refused(guard.validate(&token).await),
            TokenError::MissingClaim(claim),
            "{claim}"
        );
    }
    let empty_sub = issuer.token().sub("").sign();
    assert_eq!(
        refused(guard.validate(&empty_sub).await),
        TokenError::InvalidClaim("sub")
    );
    let string_exp = issuer.token().claim("exp", "tomorrow").sign();
    assert!(matches!(
        refused(guard.validate(&string_exp).await),
        TokenError::InvalidClaims | TokenError::InvalidClaim(_)
    ));
}

#[tokio::test]
async fn the_token_type_must_be_at_jwt() {
    let (issuer, guard) = issuer_and_guard().await;
    for typ in ["JWT", "id_token+jwt", ""] {
        let token = issuer.token().header("typ", typ).sign();
        assert_eq!(
            refused(guard.validate(&token).await),
            TokenError::WrongType,
            "{typ}"
        );
    }
    let untyped = issuer.token().without_header("typ").sign();
    assert_eq!(
        refused(guard.validate(&untyped).await),
        TokenError::WrongType
    );
    let media_type = issuer.token().header("typ", "application/at+jwt").sign();
    assert!(guard.validate(&media_type).await.is_ok());
}

#[tokio::test]
async fn critical_header_parameters_are_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let token = issuer
        .token()
        .header("crit", json!(["b64"]))
        .header("b64", false)
        .sign();
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::UnsupportedCrit
    );
}

#[tokio::test]
async fn keys_named_by_the_token_are_never_used() {
    let (issuer, guard) = issuer_and_guard().await;
    let attacker = TestKey::generate(KeyKind::Rsa, "rsa-1");
    let cases = [
        ("jwk", attacker.jwk().clone()),
        ("jku", json!("http://127.0.0.1:1/attacker-jwks.json")),
        ("x5u", json!("http://127.0.0.1:1/attacker.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ];
    for (name, value) in cases {
        let token = issuer
            .token()
            .key(&attacker)
            .header(name, value)
            .roles(&["admin"])
            .sign();
        let error = refused(guard.validate(&token).await);
        assert!(
            matches!(error, TokenError::ForbiddenHeader(n) if n == name),
            "{name}: {error}"
        );
        // Even with the issuer's own key, the header is refused.
        let token = issuer.token().header(name, attacker.jwk().clone()).sign();
        assert!(guard.validate(&token).await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn oversized_and_garbage_tokens_are_refused() {
    let (issuer, guard) = issuer_and_guard().await;
    let big = issuer.token().claim("padding", "x".repeat(9000)).sign();
    assert_eq!(
        refused(guard.validate(&big).await),
        TokenError::TooLarge(8192)
    );
    for garbage in ["", "abc", "a.b.c", "a.b.c.d", "Ünïcode.x.y"] {
        assert_eq!(
            refused(guard.validate(garbage).await),
            TokenError::Malformed,
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn verified_tokens_are_cached_until_forgotten() {
    let (issuer, guard) = issuer_and_guard().await;
    let token = issuer.token().sign();
    assert!(!guard.is_cached(&token));
    guard.validate(&token).await.unwrap();
    assert!(guard.is_cached(&token));
    // Same principal from the cache.
    assert_eq!(guard.validate(&token).await.unwrap().sub(), "user-1");
    guard.forget(&token);
    assert!(!guard.is_cached(&token));
    assert!(
        guard.validate(&token).await.is_ok(),
        "forgetting is not revoking"
    );
}

#[tokio::test]
async fn a_cache_entry_never_outlives_the_token() {
    let (issuer, guard) = issuer_and_guard().await;
    let token = issuer.token().valid(-60, 1).sign();
    guard.validate(&token).await.unwrap();
    eventually("the entry expires with the token", || {
        !guard.is_cached(&token)
    })
    .await;
    // Within the leeway the token is still valid: verified again, not cached.
    assert!(guard.validate(&token).await.is_ok());
    assert!(!guard.is_cached(&token));
}

#[tokio::test]
async fn revoked_tokens_are_refused_even_when_cached() {
    let (issuer, guard) = issuer_and_guard().await;
    let by_jti = issuer.token().sign();
    let by_sid = issuer.token().claim("sid", "session-1").sign();
    let other_session = issuer.token().claim("sid", "session-2").sign();
    let old = issuer.token().sub("mallory").valid(-100, 200).sign();
    for token in [&by_jti, &by_sid, &other_session, &old] {
        guard.validate(token).await.unwrap();
        assert!(guard.is_cached(token));
    }
    let jti = guard.validate(&by_jti).await.unwrap().jti().to_owned();
    guard.revoke(Revocation::Token { jti });
    guard.revoke(Revocation::Session {
        sid: "session-1".into(),
    });
    guard.revoke(Revocation::Subject {
        sub: "mallory".into(),
        issued_before: guard::testing::now() - 50,
    });

    for token in [&by_jti, &by_sid, &old] {
        assert!(!guard.is_cached(token), "revocation evicts the cache entry");
        assert_eq!(refused(guard.validate(token).await), TokenError::Revoked);
    }
    assert!(guard.validate(&other_session).await.is_ok());
    let fresh = issuer.token().sub("mallory").sign();
    assert!(
        guard.validate(&fresh).await.is_ok(),
        "tokens issued after the revocation are fine"
    );
}

#[tokio::test]
async fn validation_is_safe_under_concurrency() {
    let (issuer, guard) = issuer_and_guard().await;
    let tokens: Vec<String> = (0..50)
        .map(|i| issuer.token().sub(&format!("user-{i}")).sign())
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let guard: Guard = guard.clone();
        tasks.spawn(async move {
            for _ in 0..5 {
                let p = guard.validate(&token).await.unwrap();
                assert_eq!(p.sub(), format!("user-{i}"));
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

/// A property: every single-character mutation of a valid token (in the
/// header, the payload or the signature, of an RS256, ES256 or EdDSA token)
/// is refused, and nothing panics. `PROPTEST_CASES` mutations (default 900);
/// proptest shrinks a failure and saves its seed under
/// `services/guard/proptest-regressions/`.
#[test]
fn mutated_tokens_are_always_refused() {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (issuer, guard) = runtime.block_on(issuer_and_guard());
    let tokens: Vec<String> = [KeyKind::Rsa, KeyKind::Ec, KeyKind::Ed]
        .into_iter()
        .map(|kind| issuer.token().key(&issuer.key_of(kind)).sign())
        .collect();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    let config = Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    };
    let mutation = (select(tokens), any::<Index>(), select(ALPHABET));
    let result = TestRunner::new(config).run(&mutation, |(token, at, replacement)| {
        let mut mutated = token.into_bytes();
        let at = at.index(mutated.len());
        prop_assume!(mutated[at] != replacement);
        mutated[at] = replacement;
        let mutated = String::from_utf8(mutated).expect("ASCII");
        let refused = runtime.block_on(guard.validate(&mutated)).is_err();
        prop_assert!(refused, "accepted a mutation at {}: {}", at, mutated);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    runtime.block_on(async move { drop(issuer) });
}

#[tokio::test]
async fn kid_tricks_are_only_ever_dictionary_lookups() {
    let (issuer, guard) = issuer_and_guard().await;
    for kid in [
        "../../../../dev/null",
        "rsa-1' OR '1'='1",
        "rsa-1\u{0}",
        "RSA-1",
        &"k".repeat(2000),
    ] {
        let token = issuer.token().header("kid", kid).sign();
        assert_eq!(
            refused(guard.validate(&token).await),
            TokenError::UnknownKid,
            "{kid}"
        );
    }
    for kid in [
        json!(1),
        json!(["rsa-1"]),
        json!({"kid": "rsa-1"}),
        json!(null),
    ] {
        let token = issuer.token().header("kid", kid.clone()).sign();
        let error = refused(guard.validate(&token).await);
        assert!(
            matches!(error, TokenError::Malformed | TokenError::MissingKid),
            "{kid}: {error}"
        );
    }
}

#[tokio::test]
async fn claims_with_duplicate_members_are_refused() {
    // Parsers that keep the first or the last duplicate disagree: refuse both.
    let (issuer, guard) = issuer_and_guard().await;
    let builder = issuer.token();
    let claims = serde_json::Value::Object(builder.claims().clone()).to_string();
    let duplicated = claims.replacen('{', r#"{"aud":"elsewhere","#, 1);
    let token = builder.sign_payload(&duplicated);
    assert_eq!(
        refused(guard.validate(&token).await),
        TokenError::InvalidClaims
    );
    // The same payload without the duplicate is fine: the refusal is about the duplicate.
    assert!(guard.validate(&builder.sign_payload(&claims)).await.is_ok());
}
