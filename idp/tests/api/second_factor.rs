//! Issue 17 items 1, 3 and 7: an authenticator app (TOTP, RFC 6238) set up
//! at `/account`, asked for at sign-in after the password, `acr`/`amr` in the
//! tokens, step-up when a client asks for `acr_values`, and the attacks:
//! wrong, replayed and old codes, recovery codes used twice, guessing in
//! parallel, skipping the second step.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use totp_rs::Secret;

use crate::helpers::{
    Browser, GATEWAY_REDIRECT, TestIdp, csrf_of, gateway_authorize, location_query, payload, spawn,
};

pub(crate) const MFA: &str = "urn:baton:acr:mfa";
const PWD: &str = "urn:baton:acr:pwd";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of `secret` `steps` time steps from now.
pub(crate) fn code(secret: &[u8], steps: i64) -> String {
    let at = now().saturating_add_signed(steps * idp::totp::STEP as i64);
    idp::totp::code_at(secret, at)
}

/// A browser with an IdP session of `user`, signed in through the gateway.
pub(crate) async fn signed_in(t: &TestIdp, user: &str) -> Browser {
    let b = t.browser();
    b.sign_in_gateway(user, &format!("{user}-password"), "openid")
        .await;
    b
}

/// What the setup page offers: its CSRF token, the sealed setup and the secret.
async fn setup_page(b: &Browser) -> (String, String, Vec<u8>) {
    let r = b.get("/account/authenticator", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("<svg"), "the QR code is drawn in the page");
    let field = |marker: &str| {
        let start = html.find(marker).expect(marker) + marker.len();
        html[start..].split(['"', '<']).next().unwrap().to_owned()
    };
    let base32 = field(r#"<code class="secret">"#);
    let secret = Secret::Encoded(base32).to_bytes().unwrap();
    (csrf_of(&html), field(r#"name="setup" value=""#), secret)
}

/// Sets up an authenticator app for the signed-in `b`: its secret and the
/// recovery codes. The first code's step counts as used.
pub(crate) async fn enrol(b: &Browser) -> (Vec<u8>, Vec<String>) {
    let (csrf, setup, secret) = setup_page(b).await;
    let r = b
        .post_form(
            "/account/authenticator",
            &[
                ("csrf_token", &csrf),
                ("setup", &setup),
                ("code", &code(&secret, 0)),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    (secret, codes)
}

/// Time passes for `user`'s authenticator: the steps accepted so far are
/// forgotten, so the next test code is new again (tests cannot wait 30 s).
async fn time_passes(t: &TestIdp, user: &str) {
    sqlx::query(
        "UPDATE totp_authenticators SET last_step = 0
         WHERE user_id = (SELECT id FROM users WHERE username = $1)",
    )
    .bind(user)
    .execute(&t.pool)
    .await
    .unwrap();
}

/// A new browser through the password step: the second-factor page.
pub(crate) async fn password_step(
    t: &TestIdp,
    user: &str,
    query: &[(String, String)],
) -> (Browser, String) {
    let b = t.browser();
    let r = b.sign_in(query, user, &format!("{user}-password")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "no code yet: the second step is asked for"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"action="/login/otp""#), "{html}");
    (b, csrf_of(&html))
}

pub(crate) async fn submit(b: &Browser, csrf: &str, code: &str) -> reqwest::Response {
    b.post_form("/login/otp", &[("csrf_token", csrf), ("code", code)])
        .await
}

/// The gateway's code from a redirect back to it.
pub(crate) fn code_of(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.url());
    let (target, q) = location_query(r);
    assert_eq!(target, GATEWAY_REDIRECT);
    q["code"].clone()
}

pub(crate) async fn redeem(t: &TestIdp, code: &str) -> Value {
    let r = t.redeem_gateway_code(code).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub(crate) async fn events(t: &TestIdp, kind: &str) -> i64 {
    t.audit_lines("alice", kind).await
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_authenticator_app_is_set_up_only_with_a_code_it_shows(pool: PgPool) {
    let t = spawn(pool).await;
    let b = signed_in(&t, "alice").await;
    let (csrf, setup, first_secret) = setup_page(&b).await;

    // A wrong code stores nothing and offers the same secret again.
    let wrong = b
        .post_form(
            "/account/authenticator",
            &[("csrf_token", &csrf), ("setup", &setup), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let base32 = Secret::Raw(first_secret.clone()).to_encoded().to_string();
    assert!(
        wrong.text().await.unwrap().contains(&base32),
        "the app just scanned keeps working"
    );
    // A forged or tampered setup, or a missing CSRF token, stores nothing.
    let forged = b
        .post_form(
            "/account/authenticator",
            &[
                ("csrf_token", &csrf),
                ("setup", "AAAA"),
                ("code", &code(&first_secret, 0)),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let no_csrf = b
        .post_form(
            "/account/authenticator",
            &[("setup", &setup), ("code", &code(&first_secret, 0))],
        )
        .await;
    assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST);
    // Another person's session cannot confirm this setup (it is bound to the session).
    let bob = signed_in(&t, "bob").await;
    let bobs_csrf = csrf_of(&bob.get("/account", &[]).await.text().await.unwrap());
    let r = bob
        .post_form(
            "/account/authenticator",
            &[
                ("csrf_token", &bobs_csrf),
                ("setup", &setup),
                ("code", &code(&first_secret, 0)),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM totp_authenticators")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let (secret, codes) = enrol(&b).await;
    let (sealed, hashes): (Vec<u8>, i64) = sqlx::query_as(
        "SELECT a.secret_sealed, (SELECT count(*) FROM recovery_codes r WHERE r.user_id = a.user_id)
         FROM totp_authenticators a JOIN users u ON u.id = a.user_id WHERE u.username = 'alice'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(
        !sealed.windows(secret.len()).any(|w| w == secret),
        "the secret is sealed at rest"
    );
    assert_eq!(hashes, 10);
    let recovery: Vec<Vec<u8>> = sqlx::query_scalar("SELECT code_hash FROM recovery_codes")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert!(
        recovery.iter().all(|h| codes
            .iter()
            .all(|c| !h.windows(c.len()).any(|w| w == c.as_bytes()))),
        "recovery codes are stored hashed"
    );
    assert_eq!(events(&t, "totp_enrolled").await, 1);
    let account = b.get("/account", &[]).await.text().await.unwrap();
    assert!(account.contains("Your authenticator app is on."));
    let page = b
        .get("/account/authenticator", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Recovery codes left: 10."), "{page}");
    assert!(!page.contains("<svg"), "the secret is never shown again");

    // A second setup (an older page, a double submit) changes nothing.
    let r = b
        .post_form(
            "/account/authenticator",
            &[
                ("csrf_token", &csrf),
                ("setup", &setup),
                ("code", &code(&first_secret, 0)),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(events(&t, "totp_enrolled").await, 1);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn signing_in_asks_for_the_code_after_the_password_and_the_tokens_say_so(pool: PgPool) {
    let t = spawn(pool).await;
    let (secret, _) = enrol(&signed_in(&t, "alice").await).await;

    let (b, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    let before = t.audit_lines("alice", "login_succeeded").await;
    // The password step alone opened no session.
    let html = b.get("/account", &[]).await.text().await.unwrap();
    assert!(html.contains("You are not signed in here"));

    let r = submit(&b, &csrf, &code(&secret, 1)).await;
    let tokens = redeem(&t, &code_of(&r)).await;
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], MFA);
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    let id = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], MFA);
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(t.audit_lines("alice", "login_succeeded").await, before + 1);

    // Refreshed tokens keep how the user signed in.
    let (status, refreshed) = t
        .refresh(tokens["refresh_token"].as_str().expect("a refresh token"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let access = payload(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], MFA);
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(payload(refreshed["id_token"].as_str().unwrap())["acr"], MFA);

    // bob has no authenticator: the password is enough, and the tokens say so.
    let bob = t.browser();
    let code = bob.sign_in_gateway("bob", "bob-password", "openid").await;
    let tokens = redeem(&t, &code).await;
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], PWD);
    assert_eq!(access["amr"], json!(["pwd"]));
    assert_eq!(payload(tokens["id_token"].as_str().unwrap())["acr"], PWD);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_code_is_accepted_once_and_older_ones_never(pool: PgPool) {
    let t = spawn(pool).await;
    let (secret, _) = enrol(&signed_in(&t, "alice").await).await;
    let used = code(&secret, 1);
    let (b, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    code_of(&submit(&b, &csrf, &used).await);

    // Seen over a shoulder and replayed inside its 90 s window: refused.
    let (thief, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    for stale in [used.clone(), code(&secret, 0), code(&secret, -1)] {
        let r = submit(&thief, &csrf, &stale).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("That code is not right"));
    }
    assert_eq!(events(&t, "totp_failed").await, 3);
    for wrong in ["", "12345", "abcdef", "0000000"] {
        let r = submit(&thief, &csrf, wrong).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let html = thief.get("/account", &[]).await.text().await.unwrap();
    assert!(html.contains("You are not signed in here"));
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_recovery_code_signs_in_once(pool: PgPool) {
    let t = spawn(pool).await;
    let (_, codes) = enrol(&signed_in(&t, "alice").await).await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    let (b, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    let tokens = redeem(&t, &code_of(&submit(&b, &csrf, &typed).await)).await;
    assert_eq!(
        payload(tokens["access_token"].as_str().unwrap())["acr"],
        MFA
    );
    assert_eq!(events(&t, "recovery_code_used").await, 1);

    let (again, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    let r = submit(&again, &csrf, &codes[3]).await;
    assert_eq!(r.status(), StatusCode::OK, "used once: refused");
    let page = again.get("/account", &[]).await.text().await.unwrap();
    assert!(page.contains("You are not signed in here"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes WHERE used_at IS NULL")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(left, 9);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn guessing_codes_in_parallel_is_capped_and_locks_the_second_step(pool: PgPool) {
    let t = spawn(pool).await;
    let (secret, _) = enrol(&signed_in(&t, "alice").await).await;
    let (b, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    // 60 guesses at once (a million codes, three of them valid at any time).
    let guesses = (0..60).map(|i| {
        let (b, csrf) = (&b, &csrf);
        async move {
            submit(b, csrf, &format!("{:06}", 100_000 + i * 7919))
                .await
                .status()
        }
    });
    let answers = futures::future::join_all(guesses).await;
    assert!(answers.iter().all(|s| *s == StatusCode::OK));
    let checked = events(&t, "totp_failed").await;
    assert!(
        checked <= 5,
        "only the account's budget of guesses is checked, however many arrive at once: {checked}"
    );
    assert!(events(&t, "login_locked").await >= 55);

    // Locked: even the right code waits out the lock-out.
    let r = submit(&b, &csrf, &code(&secret, 1)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn the_second_step_cannot_be_skipped_or_borrowed(pool: PgPool) {
    let t = spawn(pool).await;
    let (secret, _) = enrol(&signed_in(&t, "alice").await).await;

    // A flow that never passed the password step has nobody to finish.
    let b = t.browser();
    let csrf = b.login_csrf().await;
    let r = submit(&b, &csrf, &code(&secret, 1)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The second-step page's flow, posted back to the password form with a
    // wrong password, gets no further than the password.
    let (b, csrf) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    let r = b.post_login(&csrf, "alice", "wrong").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Invalid username or password.")
    );

    // Without the flow's CSRF token: refused.
    let (b, _) = password_step(&t, "alice", &gateway_authorize("openid")).await;
    let r = b
        .post_form("/login/otp", &[("code", &code(&secret, 1))])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_client_asking_for_a_second_factor_steps_the_session_up(pool: PgPool) {
    let t = spawn(pool).await;
    // alice's session was made with the password; then she set up an app.
    let b = signed_in(&t, "alice").await;
    let (secret, _) = enrol(&b).await;
    let sid = |tokens: &Value| payload(tokens["access_token"].as_str().unwrap())["sid"].clone();

    // Nothing asked for: single sign-on as before, acr says password.
    let r = b.authorize(&gateway_authorize("openid")).await;
    let plain = redeem(&t, &code_of(&r)).await;
    assert_eq!(payload(plain["access_token"].as_str().unwrap())["acr"], PWD);

    let mut step_up = gateway_authorize("openid");
    step_up.push(("acr_values".into(), MFA.into()));
    // prompt=none cannot show the second step.
    let mut silent = step_up.clone();
    silent.push(("prompt".into(), "none".into()));
    let r = b.authorize(&silent).await;
    let (_, q) = location_query(&r);
    assert_eq!(q["error"], "interaction_required");

    // The second step only (no password form), then the same session, stepped up.
    let r = b.authorize(&step_up).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"action="/login/otp""#));
    assert!(!html.contains(r#"name="password""#));
    let r = submit(&b, &csrf_of(&html), &code(&secret, 1)).await;
    let stepped = redeem(&t, &code_of(&r)).await;
    let access = payload(stepped["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], MFA);
    assert_eq!(sid(&stepped), sid(&plain), "the same session, stepped up");
    assert!(
        access["auth_time"].as_i64()
            >= payload(plain["access_token"].as_str().unwrap())["auth_time"].as_i64()
    );

    // Now single sign-on satisfies the request without asking again.
    let r = b.authorize(&step_up).await;
    let again = redeem(&t, &code_of(&r)).await;
    assert_eq!(payload(again["access_token"].as_str().unwrap())["acr"], MFA);

    // A person without an app gets what they can do (acr_values is voluntary):
    // the token says password, and the service that needs more refuses it.
    let bob = signed_in(&t, "bob").await;
    let r = bob.authorize(&step_up).await;
    let bobs = redeem(&t, &code_of(&r)).await;
    assert_eq!(payload(bobs["access_token"].as_str().unwrap())["acr"], PWD);

    let doc: Value = t.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["acr_values_supported"], json!([PWD, MFA]));
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("amr"))
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn removing_the_app_takes_a_current_code(pool: PgPool) {
    let t = spawn(pool).await;
    let b = signed_in(&t, "alice").await;
    let (secret, _) = enrol(&b).await;
    let csrf = csrf_of(
        &b.get("/account/authenticator", &[])
            .await
            .text()
            .await
            .unwrap(),
    );

    let r = b
        .post_form(
            "/account/authenticator/remove",
            &[("csrf_token", &csrf), ("code", "123456")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b
        .post_form(
            "/account/authenticator/remove",
            &[("code", &code(&secret, 1))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "CSRF");
    time_passes(&t, "alice").await;
    let r = b
        .post_form(
            "/account/authenticator/remove",
            &[("csrf_token", &csrf), ("code", &code(&secret, 0))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(events(&t, "totp_disabled").await, 1);
    assert_eq!(events(&t, "totp_failed").await, 1);

    // The password alone signs in again.
    let other = t.browser();
    other
        .sign_in_gateway("alice", "alice-password", "openid")
        .await;
}
