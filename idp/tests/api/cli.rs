//! The `idp` binary as an operator runs it (a real process over the test's
//! database): the README's guard example — a `reports` service requiring
//! `reports:write` — works without a rebuild, and every command answers
//! `--json`.

use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestIdp, error_of, payload, spawn};

/// The test database's URL, for the CLI's `IDP_DATABASE_URL`.
fn database_url(pool: &PgPool) -> String {
    let db = pool
        .connect_options()
        .get_database()
        .expect("a database name")
        .to_owned();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).unwrap();
    url.set_path(&format!("/{db}"));
    url.to_string()
}

/// Runs `idp --json <args>` (standard input empty, or `stdin`) against the
/// test IdP's database and key-encryption key: success and the JSON answer,
/// or failure and standard error.
async fn idp(t: &TestIdp, args: &[&str], stdin: &str) -> Result<Value, String> {
    use tokio::io::AsyncWriteExt;
    let config = &t.idp.state.config;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idp"))
        .arg("--json")
        .args(args)
        .env("IDP_DATABASE_URL", database_url(&t.pool))
        .env(
            "IDP_KEY_ENCRYPTION_KEY",
            config.key_encryption_key.as_ref().unwrap().expose_secret(),
        )
        .env("IDP_ISSUER", &config.issuer)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the idp binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("--json prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The element of the JSON array `list` whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|e| e[key] == value)
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn a_scope_and_a_resource_added_by_the_cli_are_issued(pool: PgPool) {
    let t = spawn(pool).await;
    // Before: the scope is unknown, so a registration naming it is refused.
    let refused = idp(
        &t,
        &[
            "clients",
            "add",
            "reports-job",
            "--grant",
            "client_credentials",
            "--scope",
            "reports:write",
            "--resource",
            "reports",
        ],
        "",
    )
    .await
    .unwrap_err();
    assert!(refused.contains("unknown scope reports:write"), "{refused}");

    // The README's commands.
    let added = idp(
        &t,
        &[
            "scopes",
            "add",
            "reports:read",
            "--description",
            "Read reports",
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(added["created"], true);
    idp(
        &t,
        &[
            "scopes",
            "add",
            "reports:write",
            "--description",
            "Write reports",
        ],
        "",
    )
    .await
    .unwrap();
    idp(
        &t,
        &[
            "resources",
            "add",
            "reports",
            "--description",
            "The reports service",
        ],
        "",
    )
    .await
    .unwrap();
    let registered = idp(
        &t,
        &[
            "clients",
            "add",
            "reports-job",
            "--name",
            "Reports job",
            "--grant",
            "client_credentials",
            "--scope",
            "reports:read,reports:write",
            "--resource",
            "reports",
        ],
        "",
    )
    .await
    .unwrap();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();

    let r = t
        .client_credentials(("reports-job", &secret), &[("scope", "reports:write")])
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "reports:write");
    let claims: guard::AccessClaims = t
        .verify(body["access_token"].as_str().unwrap(), "at+jwt", "reports")
        .await;
    assert_eq!(
        (claims.aud, claims.scope),
        (vec!["reports".to_owned()], "reports:write".to_owned())
    );

    // Listed as data, with who uses them; in use, they cannot be removed.
    let scopes = idp(&t, &["scopes", "list"], "").await.unwrap();
    let write = find(&scopes, "name", "reports:write").expect("listed");
    assert_eq!(write["clients"], serde_json::json!(["reports-job"]));
    let refused = idp(&t, &["resources", "remove", "reports"], "")
        .await
        .unwrap_err();
    assert!(refused.contains("reports-job"), "{refused}");

    // The secret rotates (the new one printed once); deleting the client frees the rows.
    let rotated = idp(&t, &["clients", "rotate-secret", "reports-job"], "")
        .await
        .unwrap();
    assert_ne!(rotated["client_secret"], registered["client_secret"]);
    idp(&t, &["clients", "delete", "reports-job"], "")
        .await
        .unwrap();
    idp(&t, &["scopes", "remove", "reports:write"], "")
        .await
        .unwrap();
    idp(&t, &["resources", "remove", "reports"], "")
        .await
        .unwrap();
    let resources = idp(&t, &["resources", "list"], "").await.unwrap();
    assert!(find(&resources, "name", "reports").is_none());
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn clients_and_users_are_managed_from_the_cli(pool: PgPool) {
    let t = spawn(pool).await;
    // A client updated to sign ID tokens with RS256 (what IDP_SIGNING_ALG is anyway
    // here), then disabled: it can no longer authenticate.
    let updated = idp(
        &t,
        &[
            "clients",
            "update",
            "reporter",
            "--scope",
            "orders:read",
            "--id-token-alg",
            "RS256",
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(updated["scopes"], serde_json::json!(["orders:read"]));
    assert_eq!(updated["id_token_signed_response_alg"], "RS256");
    assert!(updated.get("secret_hash").is_none());
    let refused = idp(
        &t,
        &["clients", "update", "reporter", "--id-token-alg", "ES256"],
        "",
    )
    .await
    .unwrap_err();
    assert!(refused.contains("RS256 only"), "{refused}");
    idp(&t, &["clients", "disable", "order"], "").await.unwrap();
    let clients = idp(&t, &["clients", "list"], "").await.unwrap();
    let order = find(&clients, "client_id", "order").expect("listed");
    assert_eq!(order["disabled"], true);
    let r = t
        .client_credentials(("order", "order-dev-secret"), &[])
        .await;
    assert_eq!(error_of(r).await.1, "invalid_client");

    // A user added, listed, disabled (sessions end), deleted.
    let added = idp(
        &t,
        &["users", "add", "dave", "--role", "customer"],
        "dave-password\n",
    )
    .await
    .unwrap();
    assert_eq!(added["username"], "dave");
    let tokens = t.gateway_tokens_of(&t.browser(), "dave", "openid").await;
    assert_eq!(
        payload(tokens["id_token"].as_str().unwrap())["sub"],
        added["id"]
    );
    let users = idp(&t, &["users", "list"], "").await.unwrap();
    let dave = find(&users, "username", "dave").expect("listed");
    assert_eq!(
        (&dave["disabled"], &dave["roles"]),
        (&Value::Bool(false), &serde_json::json!(["customer"]))
    );
    let disabled = idp(&t, &["users", "disable", "dave"], "").await.unwrap();
    assert_eq!(disabled["sessions_ended"], 1);
    let deleted = idp(&t, &["users", "delete", "dave"], "").await.unwrap();
    assert_eq!(deleted["sessions_ended"], 0);
    let missing = idp(&t, &["users", "delete", "dave"], "").await.unwrap_err();
    assert!(missing.contains("no user"), "{missing}");
}

#[sqlx::test(migrations = "../migrations/idp")]
async fn an_administrator_resets_a_lost_second_factor(pool: PgPool) {
    let t = spawn(pool).await;
    let b = t.browser();
    b.sign_in_gateway("alice", "alice-password", "openid").await;
    crate::second_factor::enrol(&b).await;

    let out = idp(&t, &["users", "reset-second-factor", "alice"], "")
        .await
        .unwrap();
    assert_eq!(out["second_factor_removed"], true);
    assert_eq!(t.audit_lines("alice", "second_factor_reset").await, 1);
    // The password alone signs her in again; she can set up a new app.
    t.browser()
        .sign_in_gateway("alice", "alice-password", "openid")
        .await;
    let again = idp(&t, &["users", "reset-second-factor", "alice"], "")
        .await
        .unwrap();
    assert_eq!(again["second_factor_removed"], false);
    assert!(
        idp(&t, &["users", "reset-second-factor", "nobody"], "")
            .await
            .unwrap_err()
            .contains("no user")
    );
    // Requiring one, per user and per client, and no longer.
    let required = idp(&t, &["users", "require-second-factor", "carol"], "")
        .await
        .unwrap();
    assert_eq!(required["second_factor_required"], true);
    let off = idp(
        &t,
        &["users", "require-second-factor", "carol", "--off"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(off["second_factor_required"], false);
    let client = idp(&t, &["clients", "require-second-factor", "gateway"], "")
        .await
        .unwrap();
    assert_eq!(client["second_factor_required"], true);
    let gateway_required: bool =
        sqlx::query_scalar("SELECT second_factor_required FROM clients WHERE id = 'gateway'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert!(gateway_required);
    assert!(
        idp(&t, &["clients", "require-second-factor", "nobody"], "")
            .await
            .unwrap_err()
            .contains("no client")
    );
}
