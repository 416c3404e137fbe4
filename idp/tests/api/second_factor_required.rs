//! Issue 17 item 6: a second factor required of a person or of everyone
//! signing in to a client, set up during that sign-in when the person has
//! none (`idp users|clients require-second-factor`).

use reqwest::StatusCode;
use sqlx::PgPool;
use totp_rs::Secret;

use crate::helpers::{csrf_of, gateway_authorize, location_query, payload, spawn};
use crate::second_factor::{MFA, code, code_of, events, password_step, redeem, signed_in, submit};

/// The secret a sign-in's setup page shows (its `<code class="secret">`).
fn secret_on(html: &str) -> Vec<u8> {
    let marker = r#"<code class="secret">"#;
    let start = html.find(marker).expect("the key, for typing in") + marker.len();
    let base32 = html[start..].split('<').next().unwrap().to_owned();
    Secret::Encoded(base32).to_bytes().unwrap()
}

/// The "Continue to …" link of the recovery-codes page, and the codes.
fn continue_link(html: &str) -> (String, usize) {
    let marker = r#"<a class="button" href=""#;
    let start = html.find(marker).expect("the way on") + marker.len();
    // As a browser reads the attribute: askama writes `&` as `&#38;`.
    let href = html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    (href, html.matches("<li><code>").count())
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_person_who_must_have_a_second_factor_sets_one_up_at_sign_in(pool: PgPool) {
    let t = spawn(pool).await;
    idp::totp::require_for_user(&t.pool, t.user_id("alice").await, true)
        .await
        .unwrap();
    let b = t.browser();
    let r = b
        .sign_in(&gateway_authorize("openid"), "alice", "alice-password")
        .await;
    assert_eq!(r.status(), StatusCode::OK, "no code before a second factor");
    let html = r.text().await.unwrap();
    assert!(html.contains("Set up a second step") && html.contains("<svg"));
    let secret = secret_on(&html);
    let csrf = csrf_of(&html);
    let page = b.get("/account", &[]).await.text().await.unwrap();
    assert!(
        page.contains("You are not signed in here"),
        "no session yet"
    );

    // A wrong code: the same secret again, nothing stored.
    let r = submit(&b, &csrf, "000000").await;
    assert_eq!(r.status(), StatusCode::OK);
    let again = r.text().await.unwrap();
    assert!(again.contains("That code does not match"));
    assert_eq!(
        secret_on(&again),
        secret,
        "the app just scanned keeps working"
    );

    let r = submit(&b, &csrf, &code(&secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (next, codes) = continue_link(&r.text().await.unwrap());
    assert_eq!(codes, 10, "the recovery codes, shown once");
    assert!(next.starts_with("/authorize?"), "{next}");
    assert_eq!(events(&t, "totp_enrolled").await, 1);
    // The way on: the session answers the request at once.
    let r = b
        .http
        .get(format!("{}{next}", b.base))
        .send()
        .await
        .unwrap();
    let tokens = redeem(&t, &code_of(&r)).await;
    assert_eq!(
        payload(tokens["access_token"].as_str().unwrap())["acr"],
        MFA
    );

    // From now on her sign-ins ask for the app's code.
    password_step(&t, "alice", &gateway_authorize("openid")).await;
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_client_that_requires_a_second_factor_steps_every_session_up(pool: PgPool) {
    let t = spawn(pool).await;
    // bob's session was made with the password before the gateway required more.
    let b = signed_in(&t, "bob").await;
    assert!(
        idp::totp::require_for_client(&t.pool, "gateway", true)
            .await
            .unwrap()
    );

    let mut silent = gateway_authorize("openid");
    silent.push(("prompt".into(), "none".into()));
    let (_, q) = location_query(&b.authorize(&silent).await);
    assert_eq!(q["error"], "interaction_required");

    // No password again: bob sets an app up, and the same session steps up.
    let r = b.authorize(&gateway_authorize("openid")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(!html.contains(r#"name="password""#));
    let secret = secret_on(&html);
    let r = submit(&b, &csrf_of(&html), &code(&secret, 0)).await;
    let (next, _) = continue_link(&r.text().await.unwrap());
    let r = b
        .http
        .get(format!("{}{next}", b.base))
        .send()
        .await
        .unwrap();
    let tokens = redeem(&t, &code_of(&r)).await;
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], MFA);
    assert_eq!(t.audit_lines("bob", "totp_enrolled").await, 1);

    // Single sign-on again, already stepped up: a code at once.
    code_of(&b.authorize(&gateway_authorize("openid")).await);
    // The cli client requires nothing: carol's password is enough there.
    let carol = t.browser();
    let r = carol
        .sign_in(
            &crate::helpers::cli_authorize("openid"),
            "carol",
            "carol-password",
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
