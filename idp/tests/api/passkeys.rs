//! Issue 17 items 2 and 7: passkeys registered at `/account/passkeys`, then
//! signing in with one alone (username-less) or as the second step after
//! the password, and the attacks: a replayed answer, an answer to another
//! challenge, another person's passkey, another origin, no user
//! verification, a registration finished by another session or without the
//! password, a credential registered twice, removal without the password.
//!
//! The authenticator is [`SoftAuthenticator`], written here: a software
//! authenticator as WebAuthn §6 describes one (ES256 key, `none`
//! attestation, a signature counter), so each test can also make the
//! answers a real authenticator never would. The Chromium test
//! (`tests/browser`) signs in with the browser's own virtual authenticator.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    Browser, GATEWAY_REDIRECT, TestIdp, csrf_of, gateway_authorize, location_query, payload, spawn,
    spawn_with,
};

const MFA: &str = "urn:baton:acr:mfa";

/// Authenticator data flags (WebAuthn §6.1).
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED: u8 = 0x40;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

/// A software authenticator holding one ES256 credential.
struct SoftAuthenticator {
    key: EcdsaKeyPair,
    credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    counter: u32,
}

/// What a test changes in an answer a real authenticator would give.
#[derive(Clone, Copy)]
struct Answer<'a> {
    origin: &'a str,
    flags: u8,
}

impl SoftAuthenticator {
    /// Creates a credential for the registration options `public_key`:
    /// the authenticator and the browser's answer (WebAuthn L3 JSON).
    fn create(public_key: &Value, origin: &str) -> (Self, Value) {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let credential_id = sha256(key.public_key().as_ref())[..16].to_vec();
        let user_handle = URL_SAFE_NO_PAD
            .decode(public_key["user"]["id"].as_str().unwrap())
            .unwrap();
        let rp_id = public_key["rp"]["id"].as_str().unwrap().to_owned();
        let point = key.public_key().as_ref();
        let cose_key = Cbor::Map(
            [
                (Cbor::Integer(1), Cbor::Integer(2)),  // kty: EC2
                (Cbor::Integer(3), Cbor::Integer(-7)), // alg: ES256
                (Cbor::Integer(-1), Cbor::Integer(1)), // crv: P-256
                (Cbor::Integer(-2), Cbor::Bytes(point[1..33].to_vec())),
                (Cbor::Integer(-3), Cbor::Bytes(point[33..65].to_vec())),
            ]
            .into_iter()
            .collect(),
        );
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(USER_PRESENT | USER_VERIFIED | ATTESTED);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]); // AAGUID
        auth_data.extend_from_slice(&u16::try_from(credential_id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&credential_id);
        auth_data.extend(serde_cbor_2::to_vec(&cose_key).unwrap());
        let attestation = Cbor::Map(
            [
                (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
                (Cbor::Text("attStmt".into()), Cbor::Map(Default::default())),
                (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
            ]
            .into_iter()
            .collect(),
        );
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": public_key["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let answer = json!({
            "id": b64(&credential_id),
            "rawId": b64(&credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "attestationObject": b64(&serde_cbor_2::to_vec(&attestation).unwrap()),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        });
        let authenticator = Self {
            key,
            credential_id,
            user_handle,
            rp_id,
            counter: 0,
        };
        (authenticator, answer)
    }

    /// Signs the sign-in options `public_key` as `answer` says.
    fn get_with(&mut self, public_key: &Value, answer: Answer<'_>) -> Value {
        self.counter += 1;
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(answer.flags);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": public_key["challenge"],
            "origin": answer.origin,
            "crossOrigin": false,
        })
        .to_string();
        let mut signed = auth_data.clone();
        signed.extend(sha256(client_data.as_bytes()));
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(client_data.as_bytes()),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    /// What a real authenticator answers, at `origin`.
    fn get(&mut self, public_key: &Value, origin: &str) -> Value {
        let flags = USER_PRESENT | USER_VERIFIED;
        self.get_with(public_key, Answer { origin, flags })
    }
}

/// An IdP whose issuer is `http://localhost:<port>` (WebAuthn needs a domain).
async fn spawn_at_localhost(pool: PgPool) -> TestIdp {
    spawn_with(pool, |c| {
        c.issuer = c.issuer.replace("127.0.0.1", "localhost")
    })
    .await
}

fn origin(t: &TestIdp) -> String {
    t.idp.issuer.clone()
}

/// A browser with an IdP session of `user`, signed in with the password.
async fn signed_in(t: &TestIdp, user: &str) -> Browser {
    let b = t.browser();
    b.sign_in_gateway(user, &format!("{user}-password"), "openid")
        .await;
    b
}

/// The account CSRF token of the passkeys page.
async fn passkeys_page(b: &Browser) -> (String, String) {
    let r = b.get("/account/passkeys", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    (csrf_of(&html), html)
}

/// `POST options` with `csrf`: the status and `{ceremony, publicKey}`.
async fn options(b: &Browser, path: &str, csrf: &str) -> (StatusCode, Value) {
    let r = b.post_form(path, &[("csrf_token", csrf)]).await;
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Registers a passkey named `name` for `user`, signed in in `b`.
async fn register(t: &TestIdp, b: &Browser, user: &str, name: &str) -> SoftAuthenticator {
    let (csrf, _) = passkeys_page(b).await;
    let (status, started) = options(b, "/account/passkeys/options", &csrf).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let (authenticator, answer) = SoftAuthenticator::create(&started["publicKey"], &origin(t));
    let password = format!("{user}-password");
    let r = finish_registration(b, &csrf, &started, &answer, name, &password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/account/passkeys?done=added");
    authenticator
}

async fn finish_registration(
    b: &Browser,
    csrf: &str,
    started: &Value,
    answer: &Value,
    name: &str,
    password: &str,
) -> reqwest::Response {
    b.post_form(
        "/account/passkeys",
        &[
            ("csrf_token", csrf),
            ("ceremony", started["ceremony"].as_str().unwrap()),
            ("credential", &answer.to_string()),
            ("name", name),
            ("current_password", password),
        ],
    )
    .await
}

/// Opens the gateway's sign-in in `b`: the login page's CSRF token.
async fn login_page(b: &Browser) -> String {
    let page = b.authorize(&gateway_authorize("openid")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Use a passkey"), "{html}");
    csrf_of(&html)
}

async fn post_assertion(
    b: &Browser,
    csrf: &str,
    ceremony: &Value,
    answer: &Value,
) -> reqwest::Response {
    b.post_form(
        "/login/passkey",
        &[
            ("csrf_token", csrf),
            ("ceremony", ceremony["ceremony"].as_str().unwrap()),
            ("credential", &answer.to_string()),
        ],
    )
    .await
}

/// The redirect of a completed sign-in, redeemed: the access token's claims.
async fn signed_in_claims(t: &TestIdp, r: reqwest::Response) -> Value {
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (target, q) = location_query(&r);
    assert_eq!(target, GATEWAY_REDIRECT, "back to the client");
    let tokens: Value = t
        .redeem_gateway_code(&q["code"])
        .await
        .json()
        .await
        .unwrap();
    payload(tokens["access_token"].as_str().unwrap())
}

async fn refused(r: reqwest::Response) {
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("That passkey could not sign you in"),
        "{html}"
    );
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn a_passkey_signs_in_alone_without_a_username(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let alice = signed_in(&t, "alice").await;
    let mut key = register(&t, &alice, "alice", "Alice's laptop").await;
    let (_, html) = passkeys_page(&alice).await;
    assert!(
        html.contains("Alice&#39;s laptop") || html.contains("Alice&#x27;s laptop"),
        "{html}"
    );
    assert_eq!(t.audit_lines("alice", "passkey_registered").await, 1);

    // Another browser: no session, no username typed.
    let b = t.browser();
    let csrf = login_page(&b).await;
    let (status, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ceremony["publicKey"]
            .get("allowCredentials")
            .is_none_or(|a| a.as_array().unwrap().is_empty())
    );
    assert_eq!(ceremony["publicKey"]["userVerification"], "required");
    let answer = key.get(&ceremony["publicKey"], &origin(&t));
    let claims = signed_in_claims(&t, post_assertion(&b, &csrf, &ceremony, &answer).await).await;
    assert_eq!(claims["sub"], t.user_id("alice").await.to_string());
    assert_eq!(claims["acr"], MFA);
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]));
    // The page lists its use.
    let (_, html) = passkeys_page(&alice).await;
    assert!(html.contains("last used"), "{html}");
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn an_answer_counts_once_and_only_for_its_own_challenge(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let alice = signed_in(&t, "alice").await;
    let mut key = register(&t, &alice, "alice", "key").await;
    let b = t.browser();
    let csrf = login_page(&b).await;

    // A ceremony answered wrongly is used up: its right answer comes too late.
    let (_, first) = options(&b, "/login/passkey/options", &csrf).await;
    let mut forged = key.get(&first["publicKey"], &origin(&t));
    forged["response"]["signature"] = json!(b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
    refused(post_assertion(&b, &csrf, &first, &forged).await).await;
    let right = key.get(&first["publicKey"], &origin(&t));
    refused(post_assertion(&b, &csrf, &first, &right).await).await;

    // An answer to one challenge does not answer another.
    let (_, second) = options(&b, "/login/passkey/options", &csrf).await;
    refused(post_assertion(&b, &csrf, &second, &right).await).await;

    // A signed answer replayed: the first counts, the copy does not.
    let (_, third) = options(&b, "/login/passkey/options", &csrf).await;
    let answer = key.get(&third["publicKey"], &origin(&t));
    let r = post_assertion(&b, &csrf, &third, &answer).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let b2 = t.browser();
    let csrf2 = login_page(&b2).await;
    refused(post_assertion(&b2, &csrf2, &third, &answer).await).await;

    // A clone of the authenticator (its counter behind the one last seen)
    // is refused even with a fresh challenge.
    let (_, fourth) = options(&b2, "/login/passkey/options", &csrf2).await;
    key.counter = 0;
    let cloned = key.get(&fourth["publicKey"], &origin(&t));
    refused(post_assertion(&b2, &csrf2, &fourth, &cloned).await).await;
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = 'passkey_failed'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(failed, 5, "every refusal is audited");
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn another_origin_or_no_user_verification_signs_in_nobody(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let alice = signed_in(&t, "alice").await;
    let mut key = register(&t, &alice, "alice", "key").await;
    let b = t.browser();
    let csrf = login_page(&b).await;
    let own = origin(&t);
    for answer in [
        Answer {
            origin: "http://localhost.evil.example",
            flags: USER_PRESENT | USER_VERIFIED,
        },
        Answer {
            origin: &own,
            flags: USER_PRESENT,
        },
    ] {
        let (_, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
        let signed = key.get_with(&ceremony["publicKey"], answer);
        refused(post_assertion(&b, &csrf, &ceremony, &signed).await).await;
    }
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn another_persons_passkey_is_refused(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let mut alice_key = register(&t, &signed_in(&t, "alice").await, "alice", "alice's").await;
    let mut bob_key = register(&t, &signed_in(&t, "bob").await, "bob", "bob's").await;

    // Username-less: bob's key claiming to be alice's (her user handle).
    let b = t.browser();
    let csrf = login_page(&b).await;
    let (_, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
    bob_key.user_handle = alice_key.user_handle.clone();
    let answer = bob_key.get(&ceremony["publicKey"], &origin(&t));
    refused(post_assertion(&b, &csrf, &ceremony, &answer).await).await;

    // The second step after alice's password: only her passkeys are allowed.
    let r = b.post_login(&csrf, "alice", "alice-password").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Use a passkey"), "{html}");
    assert!(
        !html.contains(r#"name="code""#),
        "alice has no app: no code form"
    );
    let (status, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
    assert_eq!(status, StatusCode::OK);
    let allowed = ceremony["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], b64(&alice_key.credential_id));
    let answer = bob_key.get(&ceremony["publicKey"], &origin(&t));
    let r = post_assertion(&b, &csrf, &ceremony, &answer).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("That passkey could not sign you in")
    );

    let (_, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
    let answer = alice_key.get(&ceremony["publicKey"], &origin(&t));
    let claims = signed_in_claims(&t, post_assertion(&b, &csrf, &ceremony, &answer).await).await;
    assert_eq!(claims["sub"], t.user_id("alice").await.to_string());
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(claims["acr"], MFA);
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn a_registration_is_finished_by_its_own_session_once(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let alice = signed_in(&t, "alice").await;
    let mallory = signed_in(&t, "bob").await;
    let (csrf, _) = passkeys_page(&alice).await;
    let (_, started) = options(&alice, "/account/passkeys/options", &csrf).await;
    let (_, answer) = SoftAuthenticator::create(&started["publicKey"], &origin(&t));

    // Another session cannot finish alice's ceremony (nor plant a key on her).
    let (bob_csrf, _) = passkeys_page(&mallory).await;
    let r = finish_registration(
        &mallory,
        &bob_csrf,
        &started,
        &answer,
        "planted",
        "bob-password",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without the CSRF token, nothing is read.
    let r = finish_registration(&alice, "forged", &started, &answer, "x", "alice-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // An answer from another origin is refused.
    let (_, other) = options(&alice, "/account/passkeys/options", &csrf).await;
    let (_, foreign) = SoftAuthenticator::create(&other["publicKey"], "http://localhost:1");
    let r = finish_registration(&alice, &csrf, &other, &foreign, "x", "alice-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Not without her password: a borrowed session cookie plants no passkey.
    let r = finish_registration(&alice, &csrf, &started, &answer, "x", "wrong").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(t.audit_lines("alice", "passkey_change_refused").await, 1);

    let r = finish_registration(&alice, &csrf, &started, &answer, "ok", "alice-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Once: the same answer again finds no ceremony.
    let r = finish_registration(&alice, &csrf, &started, &answer, "again", "alice-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM passkeys")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(held, 1, "only alice's own ceremony stored a passkey");
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn removing_a_passkey_takes_the_password(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let alice = signed_in(&t, "alice").await;
    let mut key = register(&t, &alice, "alice", "key").await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM passkeys")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let (csrf, _) = passkeys_page(&alice).await;
    let remove = |password: &'static str| {
        let (alice, csrf, id) = (&alice, csrf.clone(), id.to_string());
        async move {
            alice
                .post_form(
                    "/account/passkeys/remove",
                    &[
                        ("csrf_token", &csrf),
                        ("passkey", &id),
                        ("current_password", password),
                    ],
                )
                .await
        }
    };
    let r = remove("wrong").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(t.audit_lines("alice", "passkey_change_refused").await, 1);
    let r = remove("alice-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(t.audit_lines("alice", "passkey_removed").await, 1);
    let r = remove("alice-password").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Gone: it signs in no one.
    let b = t.browser();
    let csrf = login_page(&b).await;
    let (_, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
    let answer = key.get(&ceremony["publicKey"], &origin(&t));
    refused(post_assertion(&b, &csrf, &ceremony, &answer).await).await;
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn an_issuer_at_an_ip_address_has_no_passkeys(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    let html = b
        .authorize(&gateway_authorize("openid"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Use a passkey"));
    let (status, answer) = options(&b, "/login/passkey/options", &csrf_of(&html)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"], "not_available");
}

#[sqlx::test(migrator = "idp::MIGRATOR")]
async fn one_counter_value_signs_in_once_however_many_clones_race(pool: PgPool) {
    let t = spawn_at_localhost(pool).await;
    let mut key = register(&t, &signed_in(&t, "alice").await, "alice", "key").await;
    // Sixteen browsers, each with its own ceremony, answered by clones of
    // one authenticator that all sign the same next counter value.
    let mut pending = Vec::new();
    for _ in 0..16 {
        let b = t.browser();
        let csrf = login_page(&b).await;
        let (_, ceremony) = options(&b, "/login/passkey/options", &csrf).await;
        key.counter = 0;
        let answer = key.get(&ceremony["publicKey"], &origin(&t));
        pending.push((b, csrf, ceremony, answer));
    }
    let answers = futures::future::join_all(
        pending
            .iter()
            .map(|(b, csrf, ceremony, answer)| post_assertion(b, csrf, ceremony, answer)),
    )
    .await;
    let signed_in = answers
        .iter()
        .filter(|r| r.status() == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(signed_in, 1, "one counter value, one sign-in");
}
