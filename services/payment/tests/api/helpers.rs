use std::net::SocketAddr;

use guard::claims::acr::SECOND_FACTOR;
pub use guard::testing::{ALICE, BOB, CAROL, expect};
use guard::testing::{TestClient, TestIssuer};
use payment::{Application, Config, Rules};
use platform::server::Running;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The rules the tests run with: declines above 500.00, support refunds up
/// to 100.00, a second factor within 5 minutes for refunds past 100.00.
pub const RULES: Rules = Rules {
    support_refund_limit_cents: 10_000,
    decline_above_cents: 50_000,
    step_up_above_cents: 10_000,
    step_up_max_age: std::time::Duration::from_secs(300),
};

/// The scope of the users' tokens.
const SCOPE: &str = "openid payments:write";

/// A running payment service with its own database and issuer.
pub struct TestApp {
    pub client: TestClient,
    pub pool: PgPool,
    pub issuer: TestIssuer,
    _server: Running,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        let issuer = TestIssuer::start().await;
        let config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_bind: None,
            database: platform::db::Database::default(),
            rules: RULES,
            guard: issuer.config("payment"),
        };
        let server = Application::with_pool(config, pool.clone())
            .await
            .unwrap()
            .spawn();
        Self {
            client: TestClient::new(server.url()),
            pool,
            issuer,
            _server: server,
        }
    }

    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.issuer.user_token(sub, roles, SCOPE)
    }

    /// alice: customer.
    pub fn alice(&self) -> String {
        self.issuer.alice(SCOPE)
    }

    /// carol: customer and support.
    pub fn carol(&self) -> String {
        self.issuer.carol(SCOPE)
    }

    /// bob: admin.
    pub fn bob(&self) -> String {
        self.issuer.bob(SCOPE)
    }

    /// bob, signed in with `acr` and `amr` `ago` seconds from now (negative: before).
    pub fn bob_signed_in(&self, acr: &str, amr: &[&str], ago: i64) -> String {
        self.issuer
            .token()
            .sub(BOB)
            .roles(&["admin"])
            .scope(SCOPE)
            .signed_in(acr, amr, ago)
            .sign()
    }

    /// bob, who showed a second factor just now.
    pub fn bob_stepped_up(&self) -> String {
        self.bob_signed_in(SECOND_FACTOR, &["pwd", "otp"], 0)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        self.client.request(method, path, token)
    }

    pub async fn charge(&self, token: &str, key: &str, body: Value) -> Response {
        self.request(Method::POST, "/charges", Some(token))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A succeeded charge of `amount_cents` for alice; its id.
    pub async fn alice_charged(&self, amount_cents: i64) -> String {
        let key = format!("setup-{amount_cents}");
        let body = json!({ "amount_cents": amount_cents });
        let charged = expect(
            self.charge(&self.alice(), &key, body).await,
            StatusCode::CREATED,
        )
        .await;
        charged["charge"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn refund(&self, token: &str, charge: &str, body: Value) -> Response {
        self.request(
            Method::POST,
            &format!("/charges/{charge}/refund"),
            Some(token),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}
