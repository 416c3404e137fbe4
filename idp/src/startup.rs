//! Start-up: [`Application::build`] connects the database (creating and
//! migrating it), opens the signing keys and binds the listener;
//! [`Application::run_until_stopped`] serves until SIGTERM or Ctrl-C. The
//! background work (key reload, CORS origins reload, the revocation hub,
//! back-channel logout delivery, housekeeping, the metrics listener) runs
//! under one [`Tasks`] and stops with the server. [`spawn`] starts the same
//! Application on an ephemeral port for tests.

use std::net::SocketAddr;

use platform::shutdown::{self, Tasks};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::master_key::master_key;
use crate::state::{AppState, Inner};
use crate::{backchannel, blocking, cache, housekeeping, http, keys, password, revocations, seed};

/// The IdP's migrations (`migrations/idp`).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/idp");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] platform::ConfigError),
    #[error(transparent)]
    Db(#[from] platform::db::DbError),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("signing keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("passwords: {0}")]
    Password(#[from] password::PasswordError),
    #[error("key encryption key: {0}")]
    MasterKey(#[from] crate::master_key::MasterKeyError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Builds the application state over a migrated pool: keys (creating the
/// first one if needed), the password hasher and the blocking pool.
pub async fn build_state(config: Config, pool: PgPool) -> Result<AppState, StartError> {
    let master = master_key(&config)?;
    // Two pools: a burst of logins (argon2, ~20 ms each) must not make token
    // signing (RSA, ~0.3 ms) wait behind it.
    let passwords = password::Passwords::new(password::pool(config.blocking_threads)).await?;
    let blocking = blocking::Blocking::new(config.blocking_threads);
    let keys = keys::KeyStore::open(
        pool.clone(),
        master.derive("signing-keys"),
        config.signing_alg,
        blocking,
        config.longest_token_life(),
    )
    .await?;
    let logout_http = reqwest::Client::builder()
        .timeout(config.backchannel_logout_timeout)
        .connect_timeout(config.backchannel_logout_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cors = http::cors::Origins::load(&pool).await?;
    Ok(AppState::new(Inner {
        flow_sealer: master.derive("login-flow"),
        totp_sealer: master.derive("totp-secrets"),
        webauthn: crate::passkeys::relying_party(&config.issuer),
        config,
        db: pool,
        keys,
        passwords,
        revocation_hub: revocations::Hub::new(),
        revocation_view: Default::default(),
        stream_counts: Default::default(),
        shutdown: tokio::sync::watch::channel(false).0,
        auth_cache: cache::AuthCache::default(),
        logout_http,
        cors,
    }))
}

/// Starts the background work of a server under `tasks`: re-reading the keys
/// (so rotations by the CLI or another replica reach this process) and the
/// clients' CORS origins, the revocation hub, delivering logout tokens, and
/// purging expired grants.
fn spawn_background(state: &AppState, tasks: &Tasks) {
    tasks.spawn(
        "back-channel logout delivery",
        backchannel::run(state.clone()),
    );
    let cors = http::cors::reload(state.cors.clone(), state.db.clone());
    tasks.spawn("CORS origins reload", cors);
    let hub = state
        .revocation_hub
        .clone()
        .run(state.db.clone(), state.stopping());
    tasks.spawn("revocation hub", hub);
    let view = state.revocation_view.clone().run(
        state.revocation_hub.clone(),
        state.db.clone(),
        state.stopping(),
    );
    tasks.spawn("revocation copy", view);
    tasks.spawn(
        "housekeeping",
        housekeeping::run(state.db.clone(), state.config.housekeeping_interval),
    );
    let state = state.clone();
    tasks.spawn("signing key reload", async move {
        let mut tick = tokio::time::interval(state.config.key_reload_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = state.keys.reload().await {
                tracing::warn!(error = %e, "could not reload signing keys; keeping the previous ones");
            }
        }
    });
}

/// The IdP, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    tasks: Tasks,
}

impl Application {
    /// `idp serve`: connects (creating the database and applying
    /// migrations) and listens on `IDP_BIND`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = config.database.connect(&MIGRATOR).await?;
        let listener = platform::server::listener(config.bind).await?;
        Self::on(listener, config, pool).await
    }

    /// Builds on `listener` and `pool` (migrated here if needed).
    pub async fn on(
        listener: TcpListener,
        config: Config,
        pool: PgPool,
    ) -> Result<Self, StartError> {
        MIGRATOR.run(&pool).await?;
        let tasks = Tasks::new();
        platform::metrics::Exporter::new()
            .pool(&pool)
            .spawn(config.metrics_bind, &tasks)
            .await?;
        // Present from the start (at 0), so that rates and alerts see the first one.
        metrics::counter!("idp_lockouts_total").increment(0);
        let state = build_state(config, pool).await?;
        spawn_background(&state, &tasks);
        let addr = listener.local_addr()?;
        tracing::info!(issuer = %state.config.issuer, %addr, "idp listening");
        Ok(Self {
            listener,
            addr,
            state,
            tasks,
        })
    }

    /// The port the IdP listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What the handlers share (tests read and seed through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then stops gracefully.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        self.run_until(shutdown::signal()).await?;
        tracing::info!("idp stopped");
        Ok(())
    }

    /// Serves until `shutdown` completes; then open revocation streams end
    /// (so that the drain can finish), and the background tasks stop.
    async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.state.clone();
        let served = axum::serve(
            self.listener,
            http::router(self.state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.stop();
        })
        .await;
        self.tasks.stop().await;
        served
    }
}

/// A running IdP started by [`spawn`]; stops when dropped.
pub struct Spawned {
    pub addr: SocketAddr,
    /// The issuer, `http://127.0.0.1:<port>`, also the base URL.
    pub issuer: String,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Spawned {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Applies the demo realm (`idp seed`), e.g. with the gateway's test address.
    pub async fn seed(&self, seed: &seed::SeedConfig) -> Result<(), seed::SeedError> {
        seed::apply(&self.state.db, &self.state.passwords, seed).await
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.stop();
    }
}

/// Starts a real IdP on `127.0.0.1:<ephemeral port>` over `pool` (migrated
/// here if needed), with the issuer set to that address, a fresh random
/// key-encryption key, and defaults for the rest; `configure` may adjust the
/// configuration before start. For tests of this and other crates.
pub async fn spawn(
    pool: PgPool,
    configure: impl FnOnce(&mut Config),
) -> Result<Spawned, StartError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::with_issuer(&format!("http://127.0.0.1:{}", addr.port()))?;
    config.key_encryption_key = Some(MasterKey::generate().to_base64().into());
    config.metrics_bind = None;
    configure(&mut config);
    let issuer = config.issuer.clone();
    let app = Application::on(listener, config, pool).await?;
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Ok(Spawned {
        addr,
        issuer,
        state,
        shutdown: Some(tx),
    })
}
