//! Browser sign-in (BFF), sessions, sign-out, CSRF and security headers.

use reqwest::{Method, StatusCode, header};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Stack, set_cookie};

#[sqlx::test(migrations = false)]
async fn sign_in_keeps_tokens_server_side_and_gives_the_browser_only_an_http_only_cookie(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let mut browser = stack.browser();

    // Signed out: the page offers sign-in, the session endpoint says so.
    let signed_out = browser.session().await;
    assert_eq!(signed_out["authenticated"], false);
    assert_eq!(signed_out["sign_in"], "/auth/login");
    assert!(signed_out.get("account_url").is_none());

    // The authorization request: code flow, PKCE S256, state, nonce, our client.
    let start = browser
        .client
        .get(stack.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let login_cookie = set_cookie(&start, "baton_login").unwrap().to_owned();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Lax"));
    let authorize = url::Url::parse(start.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&stack.idp.url("/authorize")));
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "gateway");
    assert_eq!(q["redirect_uri"], stack.url("/auth/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert!(q["scope"].split(' ').any(|s| s == "openid"));

    // Through the IdP's login form and back.
    let page = browser.sign_in_to("/auth/login", "carol").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/");
    let session = browser.session().await;
    assert_eq!(session["authenticated"], true);
    assert_eq!(session["user"]["name"], "Carol Clark");
    // Where the page links for the person's own sessions and password.
    assert_eq!(session["account_url"], stack.idp.url("/account"));
    let roles: Vec<&str> = session["user"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"customer") && roles.contains(&"support"),
        "{roles:?}"
    );
    assert!(
        session.get("access_token").is_none() && !session.to_string().contains("eyJ"),
        "no token reaches the browser"
    );

    // The row holds neither the cookie value nor any token in clear.
    let cookie = browser.session_cookie.clone().unwrap();
    let rows = sqlx::query!("SELECT id_hash, sealed FROM sessions")
        .fetch_all(&stack.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id_hash.as_slice(), cookie.as_bytes());
    let sealed_text = String::from_utf8_lossy(&rows[0].sealed);
    assert!(
        !sealed_text.contains("eyJ") && !sealed_text.contains("Carol"),
        "session row is sealed"
    );
}

#[sqlx::test(migrations = false)]
async fn the_session_cookie_is_http_only_lax_and_the_id_is_rotated_at_each_sign_in(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let mut browser = stack.browser();
    browser.sign_in("alice").await;
    let first = browser.session_cookie.clone().unwrap();

    // Signing in again (same browser) yields a new id and ends the old session.
    browser.sign_in("alice").await;
    let second = browser.session_cookie.clone().unwrap();
    assert_ne!(first, second);
    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM sessions"#)
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(count, 1, "the previous session was deleted");
    let replay = reqwest::Client::new()
        .get(stack.url("/api/orders"))
        .header(header::COOKIE, format!("baton_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.json::<serde_json::Value>().await.unwrap()["error"],
        "session_ended"
    );

    // The Set-Cookie attributes (over http: no Secure, so no __Host- prefix).
    let attributes = browser.session_set_cookie.clone().unwrap();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.contains(part), "{attributes}");
    }
    assert!(!attributes.contains("Domain="), "{attributes}");
}

#[sqlx::test(migrations = false)]
async fn a_callback_that_does_not_match_the_started_sign_in_is_refused(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.browser();

    // No sign-in started in this browser: refused, no session.
    let forged = browser
        .client
        .get(stack.url("/auth/callback?code=abc&state=xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("Sign-in did not complete")
    );

    // Started, but the state does not match (login CSRF / mix-up).
    let start = browser
        .client
        .get(stack.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let wrong = browser
        .client
        .get(stack.url("/auth/callback?code=abc&state=not-the-state"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.unwrap().contains("state mismatch"));

    // The flow is single-use: the flow cookie was cleared by the failed attempt.
    let again = browser
        .client
        .get(stack.url("/auth/callback?code=abc&state=not-the-state"))
        .send()
        .await
        .unwrap();
    assert!(again.text().await.unwrap().contains("not started here"));
    assert_eq!(browser.session().await["authenticated"], false);

    // An error from the IdP (e.g. the user cancelled) is shown, not a session.
    let start = browser
        .client
        .get(stack.url("/auth/login"))
        .send()
        .await
        .unwrap();
    let authorize = url::Url::parse(start.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let denied = browser
        .client
        .get(stack.url(&format!("/auth/callback?error=access_denied&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
    assert!(denied.text().await.unwrap().contains("access_denied"));
}

#[sqlx::test(migrations = false)]
async fn return_to_brings_the_person_back_and_never_elsewhere(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let mut browser = stack.browser();
    let page = browser
        .sign_in_to("/auth/login?return_to=/%3Fview%3Dorders", "alice")
        .await;
    assert_eq!(page.url().path(), "/");
    assert_eq!(page.url().query(), Some("view=orders"));

    let mut other = stack.browser();
    let page = other
        .sign_in_to("/auth/login?return_to=//evil.example/x", "alice")
        .await;
    assert_eq!(page.url().as_str(), stack.url("/"));
}

#[sqlx::test(migrations = false)]
async fn logout_ends_the_session_revokes_and_goes_through_the_idp(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let mut browser = stack.signed_in("alice").await;
    assert_eq!(browser.get("/api/orders").await.status(), StatusCode::OK);
    let cookie = browser.session_cookie.clone().unwrap();
    let csrf = browser.csrf.clone().unwrap();

    // Without the CSRF token (or from another origin): refused, still signed in.
    let no_token = browser
        .client
        .post(stack.url("/auth/logout"))
        .header(header::ORIGIN, &stack.gateway)
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let cross_site = browser
        .client
        .post(stack.url("/auth/logout"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(browser.session().await["authenticated"], true);

    // The page's sign-out form.
    let out = browser
        .client
        .post(stack.url("/auth/logout"))
        .header(header::ORIGIN, &stack.gateway)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(&out, "baton_session").unwrap();
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("Expires="),
        "{cleared}"
    );
    let end_session = url::Url::parse(out.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(
        end_session.as_str().starts_with(&stack.idp.url("/logout")),
        "{end_session}"
    );
    let q: std::collections::HashMap<_, _> = end_session.query_pairs().into_owned().collect();
    assert_eq!(q["post_logout_redirect_uri"], stack.url("/"));
    assert!(q.contains_key("id_token_hint"));

    // Through the IdP's end-session endpoint and back to the page.
    let back = browser.follow(out).await;
    assert_eq!(
        back.url().as_str(),
        stack.url("/"),
        "the IdP sends the browser back"
    );

    // Access has ended: in this browser, and for anyone replaying the old cookie.
    assert_eq!(browser.session().await["authenticated"], false);
    assert_eq!(
        browser.get("/api/orders").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let replay = reqwest::Client::new()
        .get(stack.url("/api/orders"))
        .header(header::COOKIE, format!("baton_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM sessions"#)
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn state_changing_calls_without_csrf_proof_are_refused(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.signed_in("alice").await;
    let csrf = browser.csrf.clone().unwrap();
    let order = json!({"items": [{"sku": "SKU-1", "quantity": 1}]});

    // A cross-site form or fetch: another Origin, even with a stolen-looking token.
    let cross_site = browser
        .client
        .post(stack.url("/api/orders"))
        .header(header::ORIGIN, "http://evil.example")
        .header("x-csrf-token", &csrf)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(cross_site.headers()["x-baton-denied-by"], "gateway");
    assert_eq!(
        cross_site.json::<serde_json::Value>().await.unwrap()["error"],
        "csrf_check_failed"
    );

    // No Origin and a cross-site fetch marker.
    let fetch_site = browser
        .client
        .post(stack.url("/api/orders"))
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &csrf)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_site.status(), StatusCode::FORBIDDEN);

    // Same origin but no token, or a wrong one.
    let no_token = browser
        .client
        .post(stack.url("/api/orders"))
        .header(header::ORIGIN, &stack.gateway)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong = browser
        .client
        .post(stack.url("/api/orders"))
        .header(header::ORIGIN, &stack.gateway)
        .header("x-csrf-token", "x".repeat(43))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    // The page's own call passes, and reads need no token.
    let ok = browser.api(Method::POST, "/api/orders", Some(order)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let echoed: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/orders");
    let read = browser
        .client
        .get(stack.url("/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
}

#[sqlx::test(migrations = false)]
async fn every_response_carries_the_security_headers(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.signed_in("alice").await;
    for path in [
        "/",
        "/static/app.js",
        "/auth/session",
        "/api/orders",
        "/api/nowhere",
        "/healthz",
    ] {
        let response = browser.get(path).await;
        let h = response.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{path}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
    }
    // The page has no inline script for the CSP to allow.
    let html = browser.get("/").await.text().await.unwrap();
    assert!(html.contains("<script src=\"/static/app.js\""));
    assert!(!html.contains("<script>") && !html.contains(" onclick="));
}

#[sqlx::test(migrations = false)]
async fn a_token_revoked_by_the_idp_ends_the_session_with_a_sign_in_hint(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.signed_in("alice").await;
    assert_eq!(browser.get("/api/orders").await.status(), StatusCode::OK);
    let sub = browser.session().await["user"]["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    // What the IdP's revocation stream delivers to the gateway's guard (whose
    // denylist every route's validator shares) when alice's sessions are
    // revoked (sign-out elsewhere, an admin action).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    stack.states[0].guard.revoke(guard::Revocation::Subject {
        sub: sub.clone(),
        issued_before: now + 5,
    });

    let refused = browser.get("/api/orders").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "session_ended");
    assert_eq!(body["sign_in"], "/auth/login?return_to=%2Fapi%2Forders");
    assert_eq!(browser.session().await["authenticated"], false);
}

/// `/auth/login` with `acr_values` and `max_age` (the step-up link the relay
/// hands the page) asks the IdP for that sign-in; anything else in them is
/// refused, never passed on.
#[sqlx::test(migrations = false)]
async fn a_step_up_sign_in_asks_the_idp_for_the_acr_and_max_age(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let stack = Stack::start(pool, connect).await;
    let browser = stack.browser();
    let authorize_query = |path: &str| {
        let client = browser.client.clone();
        let url = stack.url(path);
        async move {
            let start = client.get(url).send().await.unwrap();
            let status = start.status();
            let query: std::collections::HashMap<String, String> = start
                .headers()
                .get(header::LOCATION)
                .map(|l| {
                    url::Url::parse(l.to_str().unwrap())
                        .unwrap()
                        .query_pairs()
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            (status, query)
        }
    };
    let (status, q) =
        authorize_query("/auth/login?acr_values=urn%3Abaton%3Aacr%3Amfa&max_age=300&return_to=/")
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(q["acr_values"], "urn:baton:acr:mfa");
    assert_eq!(q["max_age"], "300");
    let (_, plain) = authorize_query("/auth/login").await;
    assert!(!plain.contains_key("acr_values") && !plain.contains_key("max_age"));
    for bad in [
        "/auth/login?acr_values=%22%3E%3Cscript%3E",
        "/auth/login?acr_values=",
        "/auth/login?acr_values=urn%3Abaton%3Aacr%3Amfa&max_age=-1",
        "/auth/login?acr_values=urn%3Abaton%3Aacr%3Amfa&max_age=soon",
    ] {
        let (status, q) = authorize_query(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(q.is_empty(), "{bad}: no redirect");
    }
}
