//! Issue 17 item 5: account self-service at `/account` — a person's own
//! sessions, signing them out, and a password change that needs the current
//! password and ends every other session.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{Browser, TestIdp, csrf_of, spawn};

/// A signed-in browser's account page: its HTML and the sessions listed,
/// as `(session id, is this browser)`.
struct AccountView {
    html: String,
    sessions: Vec<(String, bool)>,
}

async fn account(b: &Browser) -> AccountView {
    account_after(b, None).await
}

/// The page as the redirect after a change (`/account?done=…`) shows it.
async fn account_after(b: &Browser, done: Option<&str>) -> AccountView {
    let query: Vec<(String, String)> = done
        .map(|d| ("done".to_owned(), d.to_owned()))
        .into_iter()
        .collect();
    let r = b.get("/account", &query).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let sessions = html
        .split(r#"<li class="session">"#)
        .skip(1)
        .map(|entry| {
            let marker = r#"name="session" value=""#;
            let start = entry.find(marker).expect("a session id") + marker.len();
            let id = entry[start..].split('"').next().unwrap().to_owned();
            (id, entry.contains("This browser"))
        })
        .collect();
    AccountView { html, sessions }
}

impl AccountView {
    fn current(&self) -> String {
        let mut current = self.sessions.iter().filter(|(_, here)| *here);
        let (id, _) = current.next().expect("this browser's session is listed");
        assert!(current.next().is_none());
        id.clone()
    }

    fn csrf(&self) -> String {
        csrf_of(&self.html)
    }
}

/// A browser signed in as `user` (password `<user>-password`) through the
/// gateway, which redeemed the code: the browser and the gateway's tokens.
async fn signed_in_with_tokens(t: &TestIdp, user: &str) -> (Browser, Value) {
    let b = t.browser();
    let tokens = t.gateway_tokens_of(&b, user, "openid offline_access").await;
    (b, tokens)
}

async fn signed_in(t: &TestIdp, user: &str) -> Browser {
    signed_in_with_tokens(t, user).await.0
}

async fn is_signed_out(b: &Browser) -> bool {
    let html = b.get("/account", &[]).await.text().await.unwrap();
    html.contains("You are not signed in here")
}

async fn events(t: &TestIdp, kind: &str) -> i64 {
    t.audit_lines("alice", kind).await
}

async fn sid_revoked(t: &TestIdp, sid: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'sid' AND value = $1)",
    )
    .bind(sid)
    .fetch_one(&t.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn the_account_page_lists_only_your_own_live_sessions(pool: PgPool) {
    let t = spawn(pool).await;
    let nobody = t.browser();
    assert!(is_signed_out(&nobody).await, "no session: nothing to show");

    let laptop = signed_in(&t, "alice").await;
    let phone = signed_in(&t, "alice").await;
    let bob = signed_in(&t, "bob").await;
    let bobs = account(&bob).await.current();

    let view = account(&laptop).await;
    assert_eq!(
        view.sessions.len(),
        2,
        "alice's two sessions, and only hers"
    );
    assert!(view.html.contains("Applications: gateway"), "{}", view.html);
    assert!(!view.html.contains(&bobs));
    let laptop_sid = view.current();
    let phone_sid = account(&phone).await.current();
    assert_ne!(laptop_sid, phone_sid);
    assert!(
        view.sessions
            .iter()
            .any(|(id, here)| *id == phone_sid && !here)
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn signing_out_another_session_ends_it_everywhere(pool: PgPool) {
    let t = spawn(pool).await;
    let laptop = signed_in(&t, "alice").await;
    let phone = signed_in(&t, "alice").await;
    let phone_sid = account(&phone).await.current();

    let view = account(&laptop).await;
    let r = laptop
        .post_form(
            "/account/sessions/end",
            &[("csrf_token", &view.csrf()), ("session", &phone_sid)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/account?done=session");

    assert!(is_signed_out(&phone).await);
    assert!(
        sid_revoked(&t, &phone_sid).await,
        "every service hears of it"
    );
    let after = account_after(&laptop, Some("session")).await;
    assert_eq!(after.sessions.len(), 1);
    assert!(after.html.contains("The session was signed out."));
    assert_eq!(events(&t, "session_signed_out").await, 1);

    // This browser's own session: signed out here, cookie cleared.
    let here = after.current();
    let r = laptop
        .post_form(
            "/account/sessions/end",
            &[("csrf_token", &after.csrf()), ("session", &here)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(is_signed_out(&laptop).await);
    assert!(sid_revoked(&t, &here).await);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn sign_out_every_other_session_keeps_this_one(pool: PgPool) {
    let t = spawn(pool).await;
    let laptop = signed_in(&t, "alice").await;
    let phone = signed_in(&t, "alice").await;
    let tablet = signed_in(&t, "alice").await;
    let view = account(&laptop).await;
    assert_eq!(view.sessions.len(), 3);
    let r = laptop
        .post_form(
            "/account/sessions/end-others",
            &[("csrf_token", &view.csrf())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(is_signed_out(&phone).await);
    assert!(is_signed_out(&tablet).await);
    assert_eq!(account(&laptop).await.sessions.len(), 1);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn another_users_session_cannot_be_ended(pool: PgPool) {
    let t = spawn(pool).await;
    let alice = signed_in(&t, "alice").await;
    let bob = signed_in(&t, "bob").await;
    let bobs = account(&bob).await.current();

    let view = account(&alice).await;
    let r = alice
        .post_form(
            "/account/sessions/end",
            &[("csrf_token", &view.csrf()), ("session", &bobs)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("not one of yours"));
    assert!(!is_signed_out(&bob).await, "bob's session lives on");
    assert!(!sid_revoked(&t, &bobs).await);

    // A made-up or malformed id: the same answer, or a clear refusal.
    let r = alice
        .post_form(
            "/account/sessions/end",
            &[("csrf_token", &view.csrf()), ("session", "not-a-uuid")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn account_forms_refuse_a_missing_or_foreign_csrf_token(pool: PgPool) {
    let t = spawn(pool).await;
    let alice = signed_in(&t, "alice").await;
    let phone = signed_in(&t, "alice").await;
    let phone_sid = account(&phone).await.current();
    // A token from another session of the same person is still foreign here.
    let foreign = account(&phone).await.csrf();

    for csrf in ["", "forged", foreign.as_str()] {
        let r = alice
            .post_form(
                "/account/sessions/end",
                &[("csrf_token", csrf), ("session", &phone_sid)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "csrf {csrf:?}");
        assert!(r.text().await.unwrap().contains("CSRF check failed"));
        let r = alice
            .post_form(
                "/account/password",
                &[
                    ("csrf_token", csrf),
                    ("current_password", "alice-password"),
                    ("new_password", "a-new-password"),
                    ("new_password_again", "a-new-password"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "csrf {csrf:?}");
    }
    assert!(!is_signed_out(&phone).await);
    assert_eq!(events(&t, "password_changed").await, 0);

    // No session at all: nothing happens, the signed-out page says so.
    let nobody = t.browser();
    let r = nobody
        .post_form("/account/sessions/end-others", &[("csrf_token", &foreign)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("You are not signed in here")
    );
    assert!(!is_signed_out(&phone).await);
}

async fn change_password(b: &Browser, current: &str, new: &str, again: &str) -> reqwest::Response {
    let csrf = account(b).await.csrf();
    b.post_form(
        "/account/password",
        &[
            ("csrf_token", csrf.as_str()),
            ("current_password", current),
            ("new_password", new),
            ("new_password_again", again),
        ],
    )
    .await
}

async fn password_works(t: &TestIdp, user: &str, password: &str) -> bool {
    let b = t.browser();
    let csrf = b.login_csrf().await;
    b.post_login(&csrf, user, password).await.status() == StatusCode::SEE_OTHER
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_password_change_needs_the_current_password_and_ends_every_other_session(pool: PgPool) {
    let t = spawn(pool).await;
    let (laptop, laptop_tokens) = signed_in_with_tokens(&t, "alice").await;
    let (phone, phone_tokens) = signed_in_with_tokens(&t, "alice").await;
    let phone_sid = account(&phone).await.current();
    let laptop_sid = account(&laptop).await.current();

    let r = change_password(
        &laptop,
        "wrong-password",
        "a-new-password",
        "a-new-password",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("current password is not right")
    );
    assert_eq!(events(&t, "password_change_failed").await, 1);
    assert!(!is_signed_out(&phone).await);

    let r = change_password(
        &laptop,
        "alice-password",
        "a-new-password",
        "a-new-password",
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/account?done=password");
    assert_eq!(events(&t, "password_changed").await, 1);

    // The other session is over, its refresh tokens with it, and every
    // service hears of it.
    assert!(is_signed_out(&phone).await);
    assert!(sid_revoked(&t, &phone_sid).await);
    let (status, _) = t
        .refresh(phone_tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // This browser stays signed in, in the same session (same sid) under a
    // new cookie, and its application keeps its refresh token.
    let (status, _) = t
        .refresh(laptop_tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = account_after(&laptop, Some("password")).await;
    assert_eq!(after.current(), laptop_sid);
    assert!(!sid_revoked(&t, &laptop_sid).await);
    assert!(after.html.contains("Your password was changed."));

    assert!(!password_works(&t, "alice", "alice-password").await);
    assert!(password_works(&t, "alice", "a-new-password").await);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_new_password_must_be_long_enough_confirmed_and_new(pool: PgPool) {
    let t = spawn(pool).await;
    let alice = signed_in(&t, "alice").await;
    for (new, again, says) in [
        ("short", "short", "at least 8 characters"),
        ("a-new-password", "another-password", "not the same"),
        ("alice-password", "alice-password", "the one you have now"),
    ] {
        let r = change_password(&alice, "alice-password", new, again).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{new}");
        assert!(r.text().await.unwrap().contains(says), "{new}");
    }
    let long = "x".repeat(1025);
    let r = change_password(&alice, "alice-password", &long, &long).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(events(&t, "password_changed").await, 0);
    assert!(password_works(&t, "alice", "alice-password").await);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn wrong_current_passwords_lock_out_like_sign_in(pool: PgPool) {
    let t = spawn(pool).await;
    let alice = signed_in(&t, "alice").await;
    for _ in 0..5 {
        let r = change_password(&alice, "guess", "a-new-password", "a-new-password").await;
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("current password is not right")
        );
    }
    // Locked now: even the right password is refused, and sign-in is locked too.
    let r = change_password(&alice, "alice-password", "a-new-password", "a-new-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );
    assert!(!password_works(&t, "alice", "alice-password").await);
    assert_eq!(events(&t, "password_changed").await, 0);
    assert_eq!(events(&t, "password_change_failed").await, 5);
}
