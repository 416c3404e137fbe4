//! Issue 2, rule 6: RP-initiated logout.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{
    GATEWAY_REDIRECT, VERIFIER, csrf_of, gateway_authorize, location_query, spawn,
};

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn logout_with_an_id_token_hint_ends_the_session_and_redirects_to_the_registered_uri(
    pool: PgPool,
) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let code = browser
        .sign_in_gateway("alice", "alice-password", "openid offline_access")
        .await;
    let r = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", GATEWAY_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    let tokens: serde_json::Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let r = browser
        .get(
            "/logout",
            &q(&[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "http://localhost:8080/"),
                ("state", "bye"),
            ]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (target, params) = location_query(&r);
    assert_eq!(target, "http://localhost:8080/");
    assert_eq!(params["state"], "bye");
    let cleared = r.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("baton_idp_session=;")
            || c.starts_with("baton_idp_session=\"\"")
            || c.contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is cleared");

    // The session is over: prompt=none needs a login, refresh tokens and access tokens are dead.
    let mut query = gateway_authorize("openid");
    query.push(("prompt".into(), "none".into()));
    assert_eq!(
        location_query(&browser.authorize(&query).await).1["error"],
        "login_required"
    );
    let r = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        t.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn logout_never_redirects_to_an_unregistered_uri(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    for query in [
        q(&[
            ("client_id", "gateway"),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]),
        q(&[
            ("client_id", "gateway"),
            ("post_logout_redirect_uri", "http://localhost:8080/x"),
        ]),
        q(&[("post_logout_redirect_uri", "http://localhost:8080/")]),
        q(&[
            ("client_id", "nobody"),
            ("post_logout_redirect_uri", "http://localhost:8080/"),
        ]),
        q(&[
            ("id_token_hint", "not.a.token"),
            ("post_logout_redirect_uri", "http://localhost:8080/"),
        ]),
    ] {
        let r = browser.get("/logout", &query).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query:?}");
        assert!(r.headers().get("location").is_none());
    }
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn logout_without_a_hint_asks_for_confirmation_with_csrf(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    browser
        .sign_in_gateway("bob", "bob-password", "openid")
        .await;
    let query = q(&[
        ("client_id", "gateway"),
        ("post_logout_redirect_uri", "http://localhost:8080/"),
        ("state", "s1"),
    ]);
    let r = browser.get("/logout", &query).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("bob") && html.contains("Sign out"));
    let csrf = csrf_of(&html);

    // A forged confirmation (no valid token) only shows the question again.
    let forged = browser
        .http
        .post(t.url("/logout"))
        .form(&[
            ("confirm", "yes"),
            ("csrf_token", "forged"),
            ("client_id", "gateway"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    let mut check = gateway_authorize("openid");
    check.push(("prompt".into(), "none".into()));
    assert!(
        location_query(&browser.authorize(&check).await)
            .1
            .contains_key("code"),
        "still signed in"
    );

    let r = browser
        .http
        .post(t.url("/logout"))
        .form(&[
            ("confirm", "yes"),
            ("csrf_token", csrf.as_str()),
            ("client_id", "gateway"),
            ("post_logout_redirect_uri", "http://localhost:8080/"),
            ("state", "s1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_query(&r).1["state"], "s1");
    assert_eq!(
        location_query(&browser.authorize(&check).await).1["error"],
        "login_required"
    );

    // Without a session there is nothing to confirm.
    let r = t.browser().get("/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("signed out"));
}

/// Signs `user` in with `browser` through the gateway: the ID token.
async fn id_token_of(
    t: &crate::helpers::TestIdp,
    browser: &crate::helpers::Browser,
    user: &str,
) -> String {
    let tokens = t.gateway_tokens_of(browser, user, "openid").await;
    tokens["id_token"].as_str().unwrap().to_owned()
}

async fn still_signed_in(browser: &crate::helpers::Browser) -> bool {
    let mut check = gateway_authorize("openid");
    check.push(("prompt".into(), "none".into()));
    location_query(&browser.authorize(&check).await)
        .1
        .contains_key("code")
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_hint_of_another_session_never_signs_anybody_out_silently(pool: PgPool) {
    let t = spawn(pool).await;
    let (alice, bob) = (t.browser(), t.browser());
    let alice_hint = id_token_of(&t, &alice, "alice").await;
    id_token_of(&t, &bob, "bob").await;
    let query = q(&[
        ("id_token_hint", &alice_hint),
        ("post_logout_redirect_uri", "http://localhost:8080/"),
    ]);

    // Bob's browser opens a logout link carrying alice's ID token: bob is
    // asked, alice's session is not touched.
    let r = bob.get("/logout", &query).await;
    assert_eq!(r.status(), StatusCode::OK, "a confirmation page");
    let html = r.text().await.unwrap();
    assert!(html.contains("bob") && html.contains("csrf_token"));
    assert!(still_signed_in(&bob).await, "bob is still signed in");
    assert!(still_signed_in(&alice).await, "alice is still signed in");

    // Without any session cookie (an attacker holding the ID token): nothing ends.
    let r = t.browser().get("/logout", &query).await;
    assert!(r.status().is_redirection() || r.status() == StatusCode::OK);
    assert!(still_signed_in(&alice).await, "alice is still signed in");

    // Alice's own browser with her own hint: signed out at once.
    let r = alice.get("/logout", &query).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!still_signed_in(&alice).await);
    assert!(still_signed_in(&bob).await);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_hint_signed_by_a_withdrawn_key_gets_the_confirmation_page(pool: PgPool) {
    let t = spawn(pool).await;
    let browser = t.browser();
    let hint = id_token_of(&t, &browser, "alice").await;
    // Every key that signed it is withdrawn from JWKS.
    sqlx::query("UPDATE signing_keys SET retire_at = now(), expire_at = now()")
        .execute(&t.pool)
        .await
        .unwrap();
    t.idp.state.keys.reload().await.unwrap();

    let r = browser
        .get(
            "/logout",
            &q(&[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", "http://localhost:8080/"),
                ("state", "s2"),
            ]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "not an error page");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Sign out") && html.contains("alice"),
        "{html}"
    );
    assert!(
        still_signed_in(&browser).await,
        "nothing ended before confirming"
    );
    let r = browser
        .http
        .post(t.url("/logout"))
        .form(&[
            ("confirm", "yes"),
            ("csrf_token", csrf_of(&html).as_str()),
            ("client_id", "gateway"),
            ("post_logout_redirect_uri", "http://localhost:8080/"),
            ("state", "s2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location_query(&r).1["state"], "s2");
}
