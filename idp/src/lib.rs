//! Baton's OpenID Connect provider.
//!
//! The library holds everything; `main.rs` is the CLI. Tests (here and in
//! other crates) start a real IdP on an ephemeral port with [`spawn`].

pub mod admin;
pub mod backchannel;
pub mod blocking;
pub mod cache;
pub mod catalog;
pub mod client_extras;
pub mod config;
pub mod crypto;
pub mod dpop;
pub mod error;
pub mod flow;
pub mod grants;
pub mod housekeeping;
pub mod http;
pub mod in_flight;
pub mod keys;
pub mod password;
pub mod realm;
pub mod revocations;
pub mod seed;
pub mod sessions;
pub mod state;
pub mod throttle;
pub mod tokens;

use std::net::SocketAddr;
use std::path::Path;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;
use crypto::MasterKey;
use state::{AppState, Inner};

/// The IdP's migrations (`migrations/idp`).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/idp");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Db(#[from] platform::db::DbError),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("signing keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("passwords: {0}")]
    Password(#[from] password::PasswordError),
    #[error("key encryption key: {0}")]
    MasterKey(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

/// The key-encryption key: `IDP_KEY_ENCRYPTION_KEY`, or else a development key.
///
/// The development key is random per installation and kept in
/// `IDP_DATA_DIR/dev-key-encryption-key` (mode 0600), so a dev install keeps
/// its signing keys across restarts while no two installs share a key (a key
/// derived from a constant would be public the moment this code is). If that
/// file is lost while the database survives, the old keys stay published but
/// cannot sign, and a new key is created on start-up.
pub fn master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(text) = &config.key_encryption_key {
        return MasterKey::parse(text).ok_or_else(|| {
            StartError::MasterKey("IDP_KEY_ENCRYPTION_KEY must be 32 bytes in base64".into())
        });
    }
    let path = config.data_dir.join("dev-key-encryption-key");
    tracing::warn!(
        path = %path.display(),
        "IDP_KEY_ENCRYPTION_KEY IS NOT SET: signing keys are encrypted with a DEVELOPMENT key stored in a \
         file next to the data. Never run like this in production: set IDP_KEY_ENCRYPTION_KEY to 32 random \
         bytes in base64 (e.g. `openssl rand -base64 32`)."
    );
    load_or_create_dev_key(&path)
}

fn load_or_create_dev_key(path: &Path) -> Result<MasterKey, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text).ok_or_else(|| {
            StartError::MasterKey(format!(
                "{} does not hold 32 bytes in base64",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key = MasterKey::generate();
            // Written whole under a private name, then linked into place: a
            // process starting at the same time sees no file or a whole one.
            let staging = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&staging)?;
            std::io::Write::write_all(&mut file, format!("{}\n", key.to_base64()).as_bytes())?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&staging, path);
            let _ = std::fs::remove_file(&staging);
            match linked {
                Ok(()) => Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_dev_key(path)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
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
        config,
        db: pool,
        keys,
        passwords,
        revocation_hub: revocations::Hub::new(),
        stream_counts: Default::default(),
        shutdown: tokio::sync::watch::channel(false).0,
        auth_cache: cache::AuthCache::default(),
        logout_http,
        cors,
    }))
}

/// The background work of a server: re-reading the keys (so rotations by the
/// CLI or another replica reach this process) and the clients' CORS origins,
/// the revocation hub, delivering logout tokens, and purging expired grants.
fn spawn_background(state: AppState) -> JoinHandle<()> {
    tokio::spawn(backchannel::run(state.clone()));
    tokio::spawn(http::cors::reload(state.clone()));
    let hub = state
        .revocation_hub
        .clone()
        .run(state.db.clone(), state.stopping());
    tokio::spawn(hub);
    tokio::spawn(housekeeping::run(
        state.db.clone(),
        state.config.housekeeping_interval,
    ));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.key_reload_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = state.keys.reload().await {
                tracing::warn!(error = %e, "could not reload signing keys; keeping the previous ones");
            }
        }
    })
}

/// `idp serve`: connects (creating the database and applying migrations),
/// listens on `IDP_BIND`, and stops gracefully on SIGTERM/SIGINT.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let pool = platform::db::connect_and_migrate(
        &config.database_url,
        config.database_max_connections,
        &MIGRATOR,
    )
    .await?;
    let listener = TcpListener::bind(config.bind).await?;
    platform::metrics::Exporter::new()
        .pool(&pool)
        .spawn(config.metrics_bind)
        .await?;
    // Present from the start (at 0), so that rates and alerts see the first one.
    metrics::counter!("idp_lockouts_total").increment(0);
    let state = build_state(config, pool).await?;
    let reloader = spawn_background(state.clone());
    tracing::info!(issuer = %state.config.issuer, addr = %listener.local_addr()?, "idp listening");
    let stopping = state.clone();
    axum::serve(
        listener,
        http::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        platform::shutdown::signal().await;
        // Open revocation streams end so that the drain can finish.
        stopping.stop();
    })
    .await?;
    reloader.abort();
    tracing::info!("idp stopped");
    Ok(())
}

/// A running IdP started by [`spawn`]; stops when dropped.
pub struct Spawned {
    pub addr: SocketAddr,
    /// The issuer, `http://127.0.0.1:<port>`, also the base URL.
    pub issuer: String,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    reloader: JoinHandle<()>,
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
        self.reloader.abort();
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
    MIGRATOR.run(&pool).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::with_issuer(&format!("http://127.0.0.1:{}", addr.port()))?;
    config.key_encryption_key = Some(MasterKey::generate().to_base64());
    configure(&mut config);
    let issuer = config.issuer.clone();
    let state = build_state(config, pool).await?;
    let reloader = spawn_background(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let app = http::router(state.clone());
    let stopping = state.clone();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
            stopping.stop();
        })
        .await;
    });
    Ok(Spawned {
        addr,
        issuer,
        state,
        shutdown: Some(tx),
        reloader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_key_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("idp-devkey-{}", uuid::Uuid::new_v4()));
        let path = dir.join("dev-key-encryption-key");
        let a = load_or_create_dev_key(&path).unwrap();
        let b = load_or_create_dev_key(&path).unwrap();
        assert_eq!(a.to_base64(), b.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_or_create_dev_key(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
