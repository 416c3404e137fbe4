use std::net::SocketAddr;
use std::time::Duration;

use guard::RelayMode;
pub use guard::testing::{ALICE, CAROL, expect};
use guard::testing::{TestClient, TestIssuer, schema_pool};
use platform::server::Running;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use url::Url;

/// The scope of the users' tokens.
const SCOPE: &str = "openid orders:write";

/// order, inventory and payment, each a real server with its own database
/// (here: its own schema of the test database) and guard, all trusting one issuer.
pub struct Stack {
    pub issuer: TestIssuer,
    pub client: TestClient,
    pub order_pool: PgPool,
    pub inventory_pool: PgPool,
    pub payment_pool: PgPool,
    pub inventory: Option<Running>,
    pub payment: Option<Running>,
    _order: Running,
}

impl Stack {
    pub async fn start(order_pool: PgPool) -> Self {
        Self::start_with(order_pool, None, Duration::from_secs(5)).await
    }

    /// order relays the caller's own token (`ORDER_RELAY=plain`).
    pub async fn start_plain(order_pool: PgPool) -> Self {
        Self::start_mode(order_pool, None, Duration::from_secs(5), RelayMode::Plain).await
    }

    /// order's calls to payment go to `payment` instead of the real payment
    /// service, and time out after `relay_timeout`.
    pub async fn start_with(
        order_pool: PgPool,
        payment_override: Option<Url>,
        relay_timeout: Duration,
    ) -> Self {
        Self::start_mode(
            order_pool,
            payment_override,
            relay_timeout,
            RelayMode::Exchange,
        )
        .await
    }

    async fn start_mode(
        order_pool: PgPool,
        payment_override: Option<Url>,
        relay_timeout: Duration,
        mode: RelayMode,
    ) -> Self {
        let issuer = TestIssuer::start().await;
        let inventory_pool = schema_pool(&order_pool, "inventory", &inventory::MIGRATOR, 5).await;
        let payment_pool = schema_pool(&order_pool, "payment", &payment::MIGRATOR, 5).await;
        let inventory = inventory::Application::with_pool(
            inventory::Config {
                bind: local(),
                metrics_bind: None,
                database: platform::db::Database::default(),
                reservation_ttl: inventory::expiry::DEFAULT_TTL,
                guard: issuer.config("inventory"),
            },
            inventory_pool.clone(),
        )
        .await
        .unwrap()
        .spawn();
        let payment = payment::Application::with_pool(
            payment::Config {
                bind: local(),
                metrics_bind: None,
                database: platform::db::Database::default(),
                rules: payment::Rules::default(),
                guard: issuer.config("payment"),
            },
            payment_pool.clone(),
        )
        .await
        .unwrap()
        .spawn();
        let config = order::Config {
            bind: local(),
            metrics_bind: None,
            database: platform::db::Database::default(),
            pending_ttl: order::expiry::DEFAULT_TTL,
            inventory_url: Url::parse(&inventory.url()).unwrap(),
            payment_url: payment_override.unwrap_or_else(|| Url::parse(&payment.url()).unwrap()),
            relay_timeout,
            relay: mode,
            // order's own client at the issuer: per-hop tokens by exchange.
            guard: issuer
                .config("order")
                .with_client_credentials("order", "order-dev-secret"),
        };
        let order = order::Application::with_pool(config, order_pool.clone())
            .await
            .unwrap()
            .spawn();
        Self {
            issuer,
            client: TestClient::new(order.url()),
            order_pool,
            inventory_pool,
            payment_pool,
            inventory: Some(inventory),
            payment: Some(payment),
            _order: order,
        }
    }

    /// A valid token for all three services.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.issuer.user_token(sub, roles, SCOPE)
    }

    pub fn alice(&self) -> String {
        self.issuer.alice(SCOPE)
    }

    pub fn carol(&self) -> String {
        self.issuer.carol(SCOPE)
    }

    pub fn bob(&self) -> String {
        self.issuer.bob(SCOPE)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        self.client.request(method, path, token)
    }

    pub async fn order(&self, token: &str, lines: Value) -> Response {
        self.request(Method::POST, "/orders", Some(token))
            .json(&json!({ "lines": lines }))
            .send()
            .await
            .unwrap()
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        let sql = "SELECT stock::BIGINT FROM items WHERE sku = $1";
        sqlx::query_scalar(sql)
            .bind(sku)
            .fetch_one(&self.inventory_pool)
            .await
            .unwrap()
    }

    pub async fn set_stock(&self, sku: &str, stock: i32) {
        sqlx::query("UPDATE items SET stock = $2 WHERE sku = $1")
            .bind(sku)
            .bind(stock)
            .execute(&self.inventory_pool)
            .await
            .unwrap();
    }

    pub async fn count(pool: &PgPool, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
    }

    pub async fn orders(&self) -> i64 {
        Self::count(&self.order_pool, "SELECT count(*) FROM orders").await
    }

    pub async fn charges(&self) -> i64 {
        Self::count(&self.payment_pool, "SELECT count(*) FROM charges").await
    }

    pub async fn held_reservations(&self) -> i64 {
        Self::count(
            &self.inventory_pool,
            "SELECT count(*) FROM reservations WHERE status = 'held'",
        )
        .await
    }

    pub async fn stop_payment(&mut self) {
        self.payment.take().unwrap().stop().await.unwrap();
    }

    pub async fn stop_inventory(&mut self) {
        self.inventory.take().unwrap().stop().await.unwrap();
    }
}

/// An address on the loopback interface whose port the system picks.
fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A server that accepts connections and never answers: a hung service.
pub async fn hung_server() -> Url {
    let listener = TcpListener::bind(local()).await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}
