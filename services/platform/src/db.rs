//! Database start-up shared by every part: create the database when it is
//! missing, connect with a bounded pool, and apply the part's migrations; and
//! [`every`], for periodic housekeeping (expired keys, stale reservations).
//!
//! # The shared tables
//!
//! guard's `audit` and [`idempotency`](crate::idempotency) keep their rows in
//! tables of the shared migration set (`migrations/guard`, named for where
//! those tables began), which every resource server applies beside its own,
//! as one migrator:
//!
//! ```ignore
//! pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
//!     platform::db::with_guard_migrations(&sqlx::migrate!("../../migrations/order"))
//! });
//! let pool = config.database().connect(&MIGRATOR).await?; // a platform::db::Database
//! #[sqlx::test(migrator = "order::MIGRATOR")] // tests get both sets too
//! ```
//!
//! Both sets share the database's `_sqlx_migrations` table, so their versions
//! must differ: guard's are timestamps (`20261123120000_…`), the services'
//! small numbers (`0001_…`); a clash stops the process at start-up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateDatabase, Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// guard's migration set (`migrations/guard`): the `audit_log` and
/// `idempotency_keys` tables. Use it through [`with_guard_migrations`].
pub static GUARD_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/guard");

/// One migrator for a resource server's database: guard's migrations, then
/// `service`'s own. Run it like any migrator ([`connect_and_migrate`], or
/// `#[sqlx::test(migrator = "…")]`); running it again changes nothing.
///
/// Migrations applied before but known to neither set are tolerated
/// (`ignore_missing`): databases made while the services still carried copies
/// of guard's tables keep working (guard's migration creates its tables only
/// if they do not exist).
///
/// # Panics
///
/// When a version is in both sets: a mistake in the source tree, caught by
/// the first start-up or test, never by a request.
pub fn with_guard_migrations(service: &Migrator) -> Migrator {
    let mut migrations: Vec<Migration> = GUARD_MIGRATIONS.iter().cloned().collect();
    for migration in service.iter() {
        assert!(
            !GUARD_MIGRATIONS.version_exists(migration.version),
            "migration version {} is both guard's and the service's: renumber the service's",
            migration.version
        );
        migrations.push(migration.clone());
    }
    // The source resolves at once: no I/O, nothing to wait for.
    let mut migrator = futures::executor::block_on(Migrator::new(Resolved(migrations)))
        .unwrap_or_else(|e| unreachable!("an in-memory migration source cannot fail: {e}"));
    migrator.set_ignore_missing(true);
    migrator
}

/// Migrations already in memory, in the order they are to be applied.
#[derive(Debug)]
struct Resolved(Vec<Migration>);

impl MigrationSource<'static> for Resolved {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(std::future::ready(Ok(self.0)))
    }
}

/// What can go wrong while bringing a database up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create or reach the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A part's database settings (`<PART>_DATABASE_URL`,
/// `<PART>_DATABASE_MAX_CONNECTIONS`), read by the part's `Config`. Tests
/// that hand a part a pool of their own leave it at `default()` (none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
}

impl Database {
    /// [`connect_and_migrate`] with these settings.
    pub async fn connect(&self, migrator: &Migrator) -> Result<PgPool, DbError> {
        connect_and_migrate(&self.url, self.max_connections, migrator).await
    }
}

/// Creates the database named in `url` if it does not exist yet, connects a
/// pool of at most `max_connections`, and runs `migrator`.
///
/// The pool waits at most 5 s for a connection, so a database outage turns
/// into quick errors (and a red `/readyz`) rather than hanging requests.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    migrator: &Migrator,
) -> Result<PgPool, DbError> {
    if !sqlx::Postgres::database_exists(url).await? {
        // Two processes may race here; losing the race is fine.
        if let Err(e) = sqlx::Postgres::create_database(url).await
            && !sqlx::Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection when it goes back to the pool, so one
        // that failed in use is never handed out again; a second ping on the
        // way out doubled the round trips of every query (measured: a fifth
        // of the IdP's CPU per refresh grant beyond signing). A connection
        // that broke while idle (the server restarted) fails its next query
        // with a 503 and is dropped; tests/e2e's PostgreSQL crash test
        // covers that.
        .test_before_acquire(false)
        .connect(url)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// `true` when the database answers a trivial query; for `/readyz`.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query!("SELECT 1 AS one")
        .fetch_one(pool)
        .await
        .is_ok()
}

/// Runs `job` every `period` (the first run after one period), for as long as
/// the process runs; `job` returns how many rows it changed, logged as
/// `done` when not zero. A failed run is logged and retried next period.
pub async fn every<F, Fut>(period: Duration, done: &'static str, job: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match job().await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "{done}"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed, not {done}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_versions_clash_with_no_service_set() {
        let services = [
            sqlx::migrate!("../../migrations/order"),
            sqlx::migrate!("../../migrations/payment"),
            sqlx::migrate!("../../migrations/inventory"),
        ];
        for service in &services {
            let merged = with_guard_migrations(service);
            let versions: Vec<i64> = merged.iter().map(|m| m.version).collect();
            let guard: Vec<i64> = GUARD_MIGRATIONS.iter().map(|m| m.version).collect();
            let own: Vec<i64> = service.iter().map(|m| m.version).collect();
            // guard's tables first, then the service's, each in its own order.
            assert_eq!(versions, [guard, own].concat());
            assert!(merged.ignore_missing);
        }
    }

    #[test]
    #[should_panic(expected = "both guard's and the service's")]
    fn a_clash_is_refused() {
        with_guard_migrations(&GUARD_MIGRATIONS);
    }
}
