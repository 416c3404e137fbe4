//! Database start-up shared by every part: create the database when it is
//! missing, connect with a bounded pool, and apply the part's migrations; and
//! [`every`], for periodic housekeeping (expired keys, stale reservations).

use std::future::Future;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// What can go wrong while bringing a database up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create or reach the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
        .connect(url)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// `true` when the database answers a trivial query; for `/readyz`.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
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
