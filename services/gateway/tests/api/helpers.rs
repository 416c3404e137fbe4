//! The test stack: IdP + gateway + upstreams; a cookie-jar browser
//! (`browser`) and misbehaving addresses (`sockets`).

mod browser;
mod sockets;

pub use browser::{Browser, set_cookie};
pub use sockets::{blackhole, closed_port, raw_get_status};

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use gateway::config::Args;
use gateway::routes::RouteTable;
use gateway::{Application, Config};
use guard::testing::schema_pool;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::idp_proxy::IdpProxy;
use crate::upstream::{self, Upstream};

/// Knobs of a test stack.
pub struct Options {
    /// The IdP's access-token lifetime.
    pub access_ttl: Duration,
    /// The IdP's refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// `GATEWAY_REFRESH_BEFORE_SECS`.
    pub refresh_before: u64,
    /// Extra `[[route]]` tables appended to the standard three routes.
    pub extra_routes: String,
    /// Rate limit of the standard routes (`per_second`, `burst`).
    pub rate_limit: (u32, u32),
    /// The real order, payment and inventory services instead of echo upstreams.
    pub real_services: bool,
    /// A whole route table instead of the standard one (`{ORDER}`, `{PAYMENT}`,
    /// `{INVENTORY}` stand for the upstreams' URLs).
    pub routes: Option<String>,
    /// Echo services only: this many more inventory instances (`{INVENTORY2}`, … in `routes`).
    pub more_inventory: usize,
    /// The IdP behind a proxy that can hold refresh grants (`Stack::idp_proxy`).
    pub slow_idp: bool,
    /// `GATEWAY_DB_MAX_CONNECTIONS`: the gateway gets a pool of its own of this
    /// size (its replicas share it).
    pub db_max_connections: Option<u32>,
    /// `GATEWAY_IDP_TIMEOUT_MS`.
    pub idp_timeout_ms: Option<u64>,
    /// `[defaults]` `relay` and `bearer_relay` of the standard table
    /// (`"plain"` or `"exchange"`).
    pub relay: (&'static str, &'static str),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(3600),
            refresh_before: 30,
            extra_routes: String::new(),
            rate_limit: (1000, 1000),
            real_services: false,
            routes: None,
            more_inventory: 0,
            slow_idp: false,
            db_max_connections: None,
            idp_timeout_ms: None,
            relay: ("plain", "plain"),
        }
    }
}

pub struct Stack {
    pub idp: idp::Spawned,
    /// `http://127.0.0.1:<port>`, the gateway's public URL.
    pub gateway: String,
    /// The gateway's database (schema `gateway`).
    pub db: PgPool,
    /// The pool the gateway replicas use: `db`, or one of `GATEWAY_DB_MAX_CONNECTIONS`.
    gateway_db: PgPool,
    /// The proxy in front of the IdP (`Options::slow_idp`).
    pub idp_proxy: Option<Arc<IdpProxy>>,
    /// The upstreams: echo servers, or the real services.
    pub services: Services,
    /// The extra inventory instances (`Options::more_inventory`).
    pub more_inventory: Vec<Upstream>,
    /// What a replica needs: the configuration and the route table's text.
    config: Config,
    table: String,
    /// The state of each gateway replica started, the first being `gateway`.
    pub states: Vec<gateway::AppState>,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// What the routes lead to.
pub enum Services {
    /// Echo servers (see `upstream.rs`), in route order: order, payment, inventory.
    Echo([Upstream; 3]),
    /// The real services: order, payment, inventory.
    Real(Vec<platform::server::Running>),
}

impl Services {
    fn urls(&self) -> [String; 3] {
        match self {
            Self::Echo([o, p, i]) => [o.url(), p.url(), i.url()],
            Self::Real(r) => [r[0].url(), r[1].url(), r[2].url()],
        }
    }
}

/// The real services over their own schemas, validating tokens from `issuer`.
async fn real_services(admin: &PgPool, issuer: &str) -> Services {
    let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let guard = |aud: &str| guard::GuardConfig::new(issuer, aud);
    let inventory_pool = schema_pool(admin, "inventory", &inventory::MIGRATOR, 10).await;
    let inventory = inventory::Application::with_pool(
        inventory::Config {
            bind,
            metrics_bind: None,
            database: platform::db::Database::default(),
            reservation_ttl: inventory::expiry::DEFAULT_TTL,
            guard: guard("inventory"),
        },
        inventory_pool,
    )
    .await
    .unwrap()
    .spawn();
    let payment_pool = schema_pool(admin, "payment", &payment::MIGRATOR, 10).await;
    let payment = payment::Application::with_pool(
        payment::Config {
            bind,
            metrics_bind: None,
            database: platform::db::Database::default(),
            rules: payment::Rules::default(),
            guard: guard("payment"),
        },
        payment_pool,
    )
    .await
    .unwrap()
    .spawn();
    let order_pool = schema_pool(admin, "orders", &order::MIGRATOR, 10).await;
    let config = order::Config {
        bind,
        metrics_bind: None,
        database: platform::db::Database::default(),
        pending_ttl: order::expiry::DEFAULT_TTL,
        inventory_url: inventory.url().parse().unwrap(),
        payment_url: payment.url().parse().unwrap(),
        relay_timeout: guard::relay::DEFAULT_TIMEOUT,
        relay: guard::RelayMode::Exchange,
        // order's own client in the seeded realm: per-hop tokens by exchange.
        guard: guard("order").with_client_credentials("order", "order-dev-secret"),
    };
    let order = order::Application::with_pool(config, order_pool)
        .await
        .unwrap()
        .spawn();
    Services::Real(vec![order, payment, inventory])
}

impl Drop for Stack {
    fn drop(&mut self) {
        for tx in self.shutdown.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// The gateway's route table for the three test upstreams, in the format of
/// `deploy/routes.toml`.
fn routes(order: &str, payment: &str, inventory: &str, o: &Options) -> String {
    let (per_second, burst) = o.rate_limit;
    let (relay, bearer_relay) = o.relay;
    format!(
        r#"
[defaults]
timeout_ms = 5000
rate_limit = {{ per_second = {per_second}, burst = {burst} }}
relay = "{relay}"
bearer_relay = "{bearer_relay}"

[[route]]
name = "orders"
prefix = "/api/orders"
upstreams = ["{order}"]
rewrite = "/orders"
audience = "order"
  [[route.allow]]
  methods = ["GET"]
  [[route.allow]]
  methods = ["POST"]
  path = "/"
  all_scopes = ["orders:write"]

[[route]]
name = "payments"
prefix = "/api/payments"
upstreams = ["{payment}"]
rewrite = "/charges"
audience = "payment"
  [[route.allow]]
  methods = ["GET"]
  [[route.allow]]
  methods = ["POST"]
  path = "/*/refund"
  any_role = ["admin", "support"]

[[route]]
name = "inventory"
prefix = "/api/inventory"
upstreams = ["{inventory}"]
rewrite = ""
audience = "inventory"
  [[route.allow]]
  methods = ["GET"]
  path = "/items"
  [[route.allow]]
  methods = ["PUT"]
  path = "/items/*"
  any_role = ["admin"]
{extra}
"#,
        extra = o.extra_routes
    )
}

impl Stack {
    pub async fn start(pool: PgPoolOptions, connect: PgConnectOptions) -> Self {
        Self::with(pool, connect, Options::default()).await
    }

    /// Starts the IdP (seeded demo realm), three upstreams and the gateway.
    /// `extra_routes` may name `{ORDER}`, `{PAYMENT}`, `{INVENTORY}` for the upstream URLs.
    pub async fn with(pool: PgPoolOptions, connect: PgConnectOptions, o: Options) -> Self {
        guard::testing::log::init();
        let idp_pool = pool.connect_with(connect.clone()).await.unwrap();
        let db = schema_pool(&idp_pool, "gateway", &gateway::MIGRATOR, 10).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());

        // A slow IdP is the real one behind a proxy, which is then its issuer.
        let proxy_listener = match o.slow_idp {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let proxy_issuer = proxy_listener
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()));
        let (access_ttl, refresh_ttl) = (o.access_ttl, o.refresh_ttl);
        let idp = idp::spawn(idp_pool.clone(), move |c| {
            c.access_token_ttl = access_ttl;
            c.refresh_token_ttl = refresh_ttl;
            if let Some(issuer) = proxy_issuer {
                c.issuer = issuer;
            }
        })
        .await
        .unwrap();
        let idp_proxy = proxy_listener
            .map(|listener| IdpProxy::start(listener, format!("http://{}", idp.addr)));
        let seed = idp::seed::SeedConfig {
            gateway_url: gateway.clone(),
            ..Default::default()
        };
        idp::seed::apply(&idp.state.db, &idp.state.passwords, &seed)
            .await
            .unwrap();

        let services = if o.real_services {
            real_services(&idp_pool, &idp.issuer).await
        } else {
            Services::Echo([
                upstream::start(&idp.issuer, "order").await,
                upstream::start(&idp.issuer, "payment").await,
                upstream::start(&idp.issuer, "inventory").await,
            ])
        };
        let [order, payment, inventory] = services.urls();
        let mut o = o;
        o.extra_routes = o
            .extra_routes
            .replace("{ORDER}", &order)
            .replace("{PAYMENT}", &payment)
            .replace("{INVENTORY}", &inventory);
        let mut more_inventory = Vec::new();
        for _ in 0..o.more_inventory {
            more_inventory.push(upstream::start(&idp.issuer, "inventory").await);
        }
        let table = match &o.routes {
            Some(table) => more_inventory
                .iter()
                .enumerate()
                .fold(table.clone(), |t, (i, u)| {
                    t.replace(&format!("{{INVENTORY{}}}", i + 2), &u.url())
                })
                .replace("{ORDER}", &order)
                .replace("{PAYMENT}", &payment)
                .replace("{INVENTORY}", &inventory),
            None => routes(&order, &payment, &inventory, &o),
        };
        let routes = RouteTable::parse(&table, |_| None).unwrap();

        let key =
            base64::engine::general_purpose::STANDARD.encode(platform::crypto::random_token(24));
        let mut vars = vec![
            ("GATEWAY_PUBLIC_URL", gateway.clone()),
            ("GATEWAY_ISSUER", idp.issuer.clone()),
            ("GATEWAY_CLIENT_SECRET", "gateway-dev-secret".to_owned()),
            ("GATEWAY_SESSION_KEY", key),
            ("GATEWAY_REFRESH_BEFORE_SECS", o.refresh_before.to_string()),
        ];
        if let Some(n) = o.db_max_connections {
            vars.push(("GATEWAY_DB_MAX_CONNECTIONS", n.to_string()));
        }
        if let Some(ms) = o.idp_timeout_ms {
            vars.push(("GATEWAY_IDP_TIMEOUT_MS", ms.to_string()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let config = platform::config::from_vars::<Args>(&vars)
            .unwrap()
            .resolve()
            .unwrap();
        let gateway_db = match o.db_max_connections {
            Some(_) => PgPoolOptions::new()
                .max_connections(config.database.max_connections)
                .connect_with(connect.clone().options([("search_path", "gateway")]))
                .await
                .unwrap(),
            None => db.clone(),
        };
        let mut stack = Self {
            idp,
            gateway,
            db,
            gateway_db,
            idp_proxy,
            services,
            more_inventory,
            config,
            table,
            states: Vec::new(),
            shutdown: Vec::new(),
        };
        stack.serve(routes, listener);
        stack
    }

    fn serve(&mut self, routes: RouteTable, listener: tokio::net::TcpListener) {
        let app = Application::new(
            self.config.clone(),
            routes,
            self.gateway_db.clone(),
            listener,
        )
        .unwrap();
        self.states.push(app.state().clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        self.shutdown.push(tx);
    }

    /// Starts another gateway replica (same configuration and database, as
    /// behind one load balancer) and returns its base URL.
    pub async fn replica(&mut self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes = RouteTable::parse(&self.table, |_| None).unwrap();
        self.serve(routes, listener);
        url
    }

    /// The order, payment and inventory upstreams' URLs.
    pub fn upstream_urls(&self) -> [String; 3] {
        self.services.urls()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// Stops the payment upstream: from now on it is down.
    pub async fn stop_payment(&mut self) {
        match &mut self.services {
            Services::Echo([_, payment, _]) => payment.stop().await,
            Services::Real(servers) => servers.remove(1).stop().await.unwrap(),
        }
    }

    /// A new browser (empty cookie jar).
    pub fn browser(&self) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            gateway: self.gateway.clone(),
            csrf: None,
            session_cookie: None,
            session_set_cookie: None,
        }
    }

    /// A browser signed in as `user` (password `<user>-password`).
    pub async fn signed_in(&self, user: &str) -> Browser {
        let mut b = self.browser();
        b.sign_in(user).await;
        b
    }

    /// An access token the IdP issues to the gateway client for `sub` with
    /// `roles` (as after a sign-in), and its `jti`.
    pub async fn token_for(&self, sub: &str, roles: &[&str]) -> (String, String) {
        let client = idp::realm::client(&self.idp.state.db, "gateway")
            .await
            .unwrap()
            .unwrap();
        let subject = idp::tokens::Subject {
            sub: sub.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            sid: None,
            auth_time: None,
            amr: vec!["pwd".to_owned()],
        };
        let token = idp::tokens::issue_access(
            &self.idp.state,
            &client,
            subject,
            "openid orders:read payments:read inventory:read",
            None,
        )
        .await
        .unwrap();
        (token.token, token.jti)
    }

    /// A client-credentials access token of the seeded `reporter` client
    /// (no user, no roles; scopes orders:read payments:read inventory:read).
    pub async fn reporter_token(&self) -> String {
        self.client_credentials_token(
            ("reporter", "reporter-dev-secret"),
            "orders:read payments:read inventory:read",
        )
        .await
    }

    /// A client-credentials access token of `client` (id, secret) for `scope`.
    pub async fn client_credentials_token(&self, client: (&str, &str), scope: &str) -> String {
        let response: Value = reqwest::Client::new()
            .post(self.idp.url("/token"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {response}"))
            .to_owned()
    }
}
