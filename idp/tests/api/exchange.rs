//! RFC 8693 token exchange: the order service trades the token it received
//! for one narrowed to its next hop, naming itself in `act`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use guard::AccessClaims;

use crate::helpers::{TestIdp, spawn};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

pub(crate) async fn exchange(
    t: &TestIdp,
    client: (&str, &str),
    subject: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
    ];
    form.extend_from_slice(extra);
    t.http
        .post(t.url("/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn error_of(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) const ORDER: (&str, &str) = ("order", "order-dev-secret");

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_service_exchanges_a_token_for_a_narrower_one_naming_itself(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t
        .gateway_tokens("openid orders:write inventory:write payments:write")
        .await;
    let subject_token = tokens["access_token"].as_str().unwrap();
    let subject: AccessClaims = t.verify(subject_token, "at+jwt", "order").await;

    let r = exchange(
        &t,
        ORDER,
        subject_token,
        &[("audience", "inventory"), ("scope", "inventory:write")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["issued_token_type"], ACCESS);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let exchanged: AccessClaims = t
        .verify(
            body["access_token"].as_str().unwrap(),
            "at+jwt",
            "inventory",
        )
        .await;
    assert_eq!(exchanged.aud, vec!["inventory"]);
    assert_eq!(exchanged.scope, "inventory:write");
    assert_eq!(
        exchanged.act.as_ref().map(|a| a.sub.as_str()),
        Some("order")
    );
    assert_eq!(
        (
            &exchanged.sub,
            &exchanged.sid,
            &exchanged.roles,
            &exchanged.client_id
        ),
        (
            &subject.sub,
            &subject.sid,
            &subject.roles,
            &subject.client_id
        )
    );
    assert_ne!(exchanged.jti, subject.jti);
    assert!(
        exchanged.exp <= subject.exp,
        "never outlives the subject token"
    );

    // Without audience/scope: everything the client may reach, within the subject token.
    let body: Value = exchange(&t, ORDER, subject_token, &[])
        .await
        .json()
        .await
        .unwrap();
    let all: AccessClaims = t
        .verify(body["access_token"].as_str().unwrap(), "at+jwt", "payment")
        .await;
    assert_eq!(all.aud, vec!["payment", "inventory"]);
    assert_eq!(all.scope, "orders:write inventory:write payments:write");

    // The session ending revokes exchanged tokens too (same sid).
    let sid = subject.sid.unwrap().parse().unwrap();
    idp::sessions::end(&t.pool, sid, "test", std::time::Duration::from_secs(300))
        .await
        .unwrap();
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("gateway", Some("gateway-dev-secret"))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn exchanges_cannot_widen_or_be_made_by_the_wrong_party(pool: PgPool) {
    let t = spawn(pool).await;
    let tokens = t.gateway_tokens("openid inventory:read").await;
    let subject_token = tokens["access_token"].as_str().unwrap();

    // Wider scope, foreign audience.
    assert_eq!(
        error_of(exchange(&t, ORDER, subject_token, &[("scope", "inventory:write")]).await).await,
        "invalid_scope"
    );
    assert_eq!(
        error_of(exchange(&t, ORDER, subject_token, &[("audience", "order")]).await).await,
        "invalid_target"
    );
    assert_eq!(
        error_of(exchange(&t, ORDER, subject_token, &[("audience", "billing")]).await).await,
        "invalid_target"
    );
    // Bad subject tokens.
    assert_eq!(
        error_of(exchange(&t, ORDER, "garbage", &[]).await).await,
        "invalid_request"
    );
    assert_eq!(
        error_of(exchange(&t, ORDER, tokens["id_token"].as_str().unwrap(), &[]).await).await,
        "invalid_request"
    );
    let r = t
        .http
        .post(t.url("/token"))
        .basic_auth(ORDER.0, Some(ORDER.1))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, "invalid_request");
    // A client not registered for the grant.
    let r = exchange(&t, ("reporter", "reporter-dev-secret"), subject_token, &[]).await;
    assert_eq!(error_of(r).await, "unauthorized_client");
    // A token that was not sent to the exchanging service: the reporter's own
    // token names order, payment and inventory, but a client "audit" is none of them.
    idp::admin::upsert_client(
        &t.pool,
        &idp::realm::NewClient {
            id: "audit".into(),
            name: "Audit".into(),
            secret: Some("audit-secret".into()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![idp::realm::TOKEN_EXCHANGE.into()],
            scopes: vec!["inventory:read".into()],
            resources: vec!["inventory".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(exchange(&t, ("audit", "audit-secret"), subject_token, &[]).await).await,
        "invalid_request"
    );
    // A revoked subject token cannot be exchanged.
    let r = t
        .http
        .post(t.url("/revoke"))
        .basic_auth("gateway", Some("gateway-dev-secret"))
        .form(&[("token", subject_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        error_of(exchange(&t, ORDER, subject_token, &[]).await).await,
        "invalid_request"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_exchanged_token_can_be_exchanged_again_and_actors_nest(pool: PgPool) {
    let t = spawn(pool).await;
    // inventory may exchange tokens sent to it, toward payment.
    idp::admin::upsert_client(
        &t.pool,
        &idp::realm::NewClient {
            id: "inventory".into(),
            name: "Inventory".into(),
            secret: Some("inventory-secret".into()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![idp::realm::TOKEN_EXCHANGE.into()],
            scopes: vec!["payments:read".into()],
            resources: vec!["payment".into()],
        },
    )
    .await
    .unwrap();
    let tokens = t.gateway_tokens("openid payments:read").await;
    let first: Value = exchange(&t, ORDER, tokens["access_token"].as_str().unwrap(), &[])
        .await
        .json()
        .await
        .unwrap();
    let r = exchange(
        &t,
        ("inventory", "inventory-secret"),
        first["access_token"].as_str().unwrap(),
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: AccessClaims = t
        .verify(
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap(),
            "at+jwt",
            "payment",
        )
        .await;
    let act = second.act.unwrap();
    assert_eq!(act.sub, "inventory");
    assert_eq!(act.act.unwrap().sub, "order");
}

pub(crate) async fn active(t: &TestIdp, token: &str) -> bool {
    let r = t
        .http
        .post(t.url("/introspect"))
        .basic_auth("gateway", Some("gateway-dev-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["active"] == true
}

/// Revoking a token (RFC 7009) revokes every token exchanged from it, at any
/// depth; a revoked token cannot be exchanged; the client that obtained a
/// token by exchange may revoke it.
#[sqlx::test(migrations = "../migrations/idp")]
async fn revoking_a_token_revokes_every_token_exchanged_from_it(pool: PgPool) {
    let t = spawn(pool).await;
    let exchanged = |subject: String| {
        let t = &t;
        async move {
            let body: Value = exchange(t, ORDER, &subject, &[])
                .await
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let tokens = t.gateway_tokens("openid orders:read inventory:read").await;
    let subject = tokens["access_token"].as_str().unwrap().to_owned();
    let child = exchanged(subject.clone()).await;
    let sibling = exchanged(subject.clone()).await;
    assert!(active(&t, &child).await && active(&t, &sibling).await);

    t.revoke_as(("gateway", "gateway-dev-secret"), &subject)
        .await;
    assert!(!active(&t, &subject).await);
    assert!(!active(&t, &child).await, "derived tokens go with it");
    assert!(!active(&t, &sibling).await);
    let r = exchange(&t, ORDER, &subject, &[]).await;
    assert_eq!(
        error_of(r).await,
        "invalid_request",
        "a revoked token is not exchanged"
    );

    // The exchanging client revokes what it obtained; the subject stays valid.
    let other = t.gateway_tokens("openid orders:read inventory:read").await;
    let other_subject = other["access_token"].as_str().unwrap().to_owned();
    let obtained = exchanged(other_subject.clone()).await;
    t.revoke_as(ORDER, &obtained).await;
    assert!(!active(&t, &obtained).await);
    assert!(active(&t, &other_subject).await);
}

/// The attack: a token derived from a derived token, asked for after the
/// root was revoked. The gateway exchanged its session's token for order;
/// the root is revoked (sign-out, a leak); order (or whoever holds the
/// derived token) then exchanges that derived token toward inventory. The
/// IdP refuses, and the derived token itself is dead.
#[sqlx::test(migrations = "../migrations/idp")]
async fn a_token_derived_from_a_derived_token_is_refused_once_the_root_is_revoked(pool: PgPool) {
    let t = spawn(pool).await;
    let gateway = ("gateway", "gateway-dev-secret");
    let tokens = t
        .gateway_tokens("openid orders:write inventory:write payments:write")
        .await;
    let root = tokens["access_token"].as_str().unwrap().to_owned();
    let r = exchange(&t, gateway, &root, &[("audience", "order")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let for_order = body["access_token"].as_str().unwrap().to_owned();
    // While the root is valid, order may exchange what it received.
    let r = exchange(&t, ORDER, &for_order, &[("audience", "inventory")]).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "exchanged while the root is valid"
    );

    t.revoke_as(gateway, &root).await;
    assert!(
        !active(&t, &for_order).await,
        "the derived token goes with the root"
    );
    let r = exchange(&t, ORDER, &for_order, &[("audience", "inventory")]).await;
    assert_eq!(
        error_of(r).await,
        "invalid_request",
        "nothing is derived from a derived token once its root is revoked"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn the_gateway_exchanges_its_sessions_token_per_route_and_order_exchanges_that_on(
    pool: PgPool,
) {
    let t = spawn(pool).await;
    let tokens = t
        .gateway_tokens("openid orders:write inventory:write payments:write")
        .await;
    let session_token = tokens["access_token"].as_str().unwrap();
    let gateway = ("gateway", "gateway-dev-secret");
    let body: Value = exchange(
        &t,
        gateway,
        session_token,
        &[
            ("audience", "order"),
            ("scope", "orders:write inventory:write payments:write"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let for_order = body["access_token"].as_str().unwrap();
    let claims: AccessClaims = t.verify(for_order, "at+jwt", "order").await;
    assert_eq!(claims.aud, vec!["order"]);
    // order trades the token it received for one toward inventory, although
    // that token names order alone: the policy is order's registered resources.
    let body: Value = exchange(
        &t,
        ORDER,
        for_order,
        &[("audience", "inventory"), ("scope", "inventory:write")],
    )
    .await
    .json()
    .await
    .unwrap();
    let for_inventory: AccessClaims = t
        .verify(
            body["access_token"].as_str().unwrap(),
            "at+jwt",
            "inventory",
        )
        .await;
    assert_eq!(for_inventory.aud, vec!["inventory"]);
    let act = for_inventory.act.unwrap();
    assert_eq!(act.sub, "order");
    assert_eq!(act.act.map(|a| a.sub), Some("gateway".to_owned()));
    // The token order received cannot be exchanged by anyone but order, nor
    // toward a service outside the exchanging client's resources.
    assert_eq!(
        error_of(exchange(&t, gateway, for_order, &[]).await).await,
        "invalid_request"
    );
    assert_eq!(
        error_of(exchange(&t, ORDER, for_order, &[("audience", "order")]).await).await,
        "invalid_target"
    );
    // Nor widened beyond the scopes the subject token carries, nor a derived
    // token exchanged again by the gateway (it names order, not the gateway).
    assert_eq!(
        error_of(
            exchange(
                &t,
                gateway,
                session_token,
                &[("audience", "payment"), ("scope", "payments:refund")]
            )
            .await
        )
        .await,
        "invalid_scope"
    );
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_token_of_an_ended_session_or_a_revoked_subject_is_not_exchanged(pool: PgPool) {
    let t = spawn(pool).await;
    for kind in ["sid", "sub"] {
        let tokens = t.gateway_tokens("openid orders:read inventory:read").await;
        let subject = tokens["access_token"].as_str().unwrap().to_owned();
        let claims: AccessClaims = t.verify(&subject, "at+jwt", "order").await;
        let r = exchange(&t, ORDER, &subject, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{kind}: exchanged while valid");
        // The session ended (sign-out) or every token of the subject was
        // revoked (password change): revoked by session or subject, not jti.
        let value = if kind == "sid" {
            claims.sid.clone().unwrap()
        } else {
            claims.sub.clone()
        };
        sqlx::query(
            "INSERT INTO revocations (kind, value, reason, expires_at, issued_before)
             VALUES ($1, $2, 'test', now() + interval '1 hour',
                     CASE WHEN $1 = 'sub' THEN now() + interval '2 seconds' END)",
        )
        .bind(kind)
        .bind(&value)
        .execute(&t.pool)
        .await
        .unwrap();
        // Written straight into the log, as the CLI or another replica
        // writes: it reaches the grant through the IdP's copy of the log
        // within milliseconds, as it reaches the validators. A token granted
        // in that window carries the same `sid`, `sub` and `iat`: already
        // revoked wherever the revocation is known.
        let mut granted_meanwhile = Vec::new();
        let refused = loop {
            let r = exchange(&t, ORDER, &subject, &[]).await;
            if r.status() != StatusCode::OK {
                break error_of(r).await;
            }
            let body: Value = r.json().await.unwrap();
            granted_meanwhile.push(body["access_token"].as_str().unwrap().to_owned());
            assert!(
                granted_meanwhile.len() < 200,
                "{kind}: still exchanged after a while"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(
            refused, "invalid_request",
            "{kind}: a revoked token is not exchanged"
        );
        for token in &granted_meanwhile {
            assert!(
                !active(&t, token).await,
                "{kind}: what the window granted is revoked"
            );
        }
    }
}
