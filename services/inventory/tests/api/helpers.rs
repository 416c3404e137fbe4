use std::net::SocketAddr;

pub use guard::testing::{ALICE, expect};
use guard::testing::{TestClient, TestIssuer};
use inventory::{Application, Config, expiry};
use platform::server::Running;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::PgPool;

/// A running inventory with its own database and issuer.
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
            reservation_ttl: expiry::DEFAULT_TTL,
            guard: issuer.config("inventory"),
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

    /// A valid token for `sub` with `roles` and `scope`.
    pub fn token(&self, sub: &str, roles: &[&str], scope: &str) -> String {
        self.issuer.user_token(sub, roles, scope)
    }

    /// alice: customer.
    pub fn alice(&self) -> String {
        self.issuer.alice("openid inventory:read")
    }

    /// carol: customer and support.
    pub fn carol(&self) -> String {
        self.issuer.carol("openid inventory:read")
    }

    /// bob: admin, with `inventory:write`.
    pub fn bob(&self) -> String {
        self.issuer.bob("openid inventory:read inventory:write")
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        self.client.request(method, path, token)
    }

    pub async fn reserve(&self, token: &str, key: &str, lines: Value) -> Response {
        self.request(Method::POST, "/reservations", Some(token))
            .header("Idempotency-Key", key)
            .json(&json!({ "lines": lines }))
            .send()
            .await
            .unwrap()
    }

    pub async fn release(&self, token: &str, id: &str) -> Response {
        self.request(Method::DELETE, &format!("/reservations/{id}"), Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn stock(&self, sku: &str) -> i32 {
        sqlx::query_scalar("SELECT stock FROM items WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn set_stock(&self, sku: &str, stock: i32) {
        sqlx::query("UPDATE items SET stock = $2 WHERE sku = $1")
            .bind(sku)
            .bind(stock)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}
