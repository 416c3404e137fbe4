//! Issue 2, rule 2: keys at rest and rotation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;

use crate::helpers::{TestIdp, spawn};

async fn service_token(t: &TestIdp) -> String {
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth("reporter", Some("reporter-dev-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn published(t: &TestIdp) -> Vec<String> {
    let jwks: Value = t.get_json("/jwks.json").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn sealer(t: &TestIdp) -> platform::crypto::SealKey {
    idp::master_key(&t.idp.state.config)
        .unwrap()
        .derive("signing-keys")
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn private_keys_are_encrypted_at_rest(pool: PgPool) {
    let t = spawn(pool).await;
    let (kid, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_key_encrypted FROM signing_keys")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    // A PKCS#8 document starts with a DER SEQUENCE (0x30); the sealed bytes are
    // nonce || ciphertext and open only with the configured key and this kid.
    assert!(
        sealer(&t)
            .open(&sealed, kid.as_bytes())
            .is_some_and(|pkcs8| pkcs8[0] == 0x30)
    );
    assert!(sealer(&t).open(&sealed, b"another kid").is_none());
    assert!(
        idp::crypto::MasterKey::generate()
            .derive("signing-keys")
            .open(&sealed, kid.as_bytes())
            .is_none()
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn rotation_publishes_the_next_key_before_it_signs(pool: PgPool) {
    let t = spawn(pool).await;
    let old_kid = kid_of(&service_token(&t).await);
    let c = &t.idp.state.config;
    let next = idp::keys::rotate(
        &t.pool,
        &sealer(&t),
        c.signing_alg,
        Duration::from_secs(600),
        c.longest_token_life(),
    )
    .await
    .unwrap();
    t.idp.state.keys.reload().await.unwrap();
    let kids = published(&t).await;
    assert!(
        kids.contains(&next.kid) && kids.contains(&old_kid),
        "both published: {kids:?}"
    );
    assert_eq!(
        kid_of(&service_token(&t).await),
        old_kid,
        "the new key does not sign yet"
    );

    let keys = idp::keys::list(&t.pool).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let status = |kid: &str| keys.iter().find(|k| k.kid == kid).unwrap().status(now);
    assert_eq!((status(&next.kid), status(&old_kid)), ("pending", "active"));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn after_rotation_old_tokens_still_verify_until_the_old_key_expires(pool: PgPool) {
    let t = spawn(pool).await;
    let old_token = service_token(&t).await;
    let c = &t.idp.state.config;
    let next = idp::keys::rotate(
        &t.pool,
        &sealer(&t),
        c.signing_alg,
        Duration::ZERO,
        c.longest_token_life(),
    )
    .await
    .unwrap();
    t.idp.state.keys.reload().await.unwrap();
    let new_token = service_token(&t).await;
    assert_eq!(kid_of(&new_token), next.kid, "the new key signs");
    // Tokens of both keys verify with the published JWKS.
    let _: AccessClaims = t.verify(&old_token, "at+jwt", "order").await;
    let _: AccessClaims = t.verify(&new_token, "at+jwt", "order").await;
    // The old key stays published exactly as long as its tokens can live.
    let (retire, expire): (time::OffsetDateTime, time::OffsetDateTime) =
        sqlx::query_as("SELECT retire_at, expire_at FROM signing_keys WHERE kid = $1")
            .bind(kid_of(&old_token))
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(
        (expire - retire).whole_seconds(),
        c.longest_token_life().as_secs() as i64
    );
    // Once expired it leaves JWKS.
    sqlx::query("UPDATE signing_keys SET expire_at = now() WHERE kid = $1")
        .bind(kid_of(&old_token))
        .execute(&t.pool)
        .await
        .unwrap();
    t.idp.state.keys.reload().await.unwrap();
    assert_eq!(published(&t).await, vec![next.kid]);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_restart_keeps_the_keys_and_a_lost_master_key_gets_a_new_signing_key(pool: PgPool) {
    let master = idp::crypto::MasterKey::generate().to_base64();
    let m = master.clone();
    let first =
        crate::helpers::spawn_with(pool.clone(), move |c| c.key_encryption_key = Some(m.into()))
            .await;
    let kid = kid_of(&service_token(&first).await);
    drop(first);
    let m = master.clone();
    let again =
        crate::helpers::spawn_with(pool.clone(), move |c| c.key_encryption_key = Some(m.into()))
            .await;
    assert_eq!(
        kid_of(&service_token(&again).await),
        kid,
        "same master key: same signing key"
    );
    drop(again);
    let other = crate::helpers::spawn_with(pool, |_| {}).await;
    let new_kid = kid_of(&service_token(&other).await);
    assert_ne!(
        new_kid, kid,
        "the old key cannot be decrypted, so a new one signs"
    );
    let _: AccessClaims = other
        .verify(&service_token(&other).await, "at+jwt", "order")
        .await;
}
