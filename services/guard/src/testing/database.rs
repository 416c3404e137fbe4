//! Fresh databases for tests: each test gets its own database from
//! `#[sqlx::test]`; a part that stands in for several services gives each one
//! its own schema of that database, migrated with the service's migrations.
//!
//! The one query here stays `sqlx::query` (not compile-checked `query!`): it
//! is DDL whose schema name is only known at run time.

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// A pool of at most `max_connections` on `schema` (created if missing) of the
/// database `database` is connected to, with `migrator` applied: the
/// service's own database in a test that runs several services.
pub async fn schema_pool(
    database: &PgPool,
    schema: &str,
    migrator: &Migrator,
    max_connections: u32,
) -> PgPool {
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(database)
        .await
        .expect("create the schema");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(
            database
                .connect_options()
                .as_ref()
                .clone()
                .options([("search_path", schema)]),
        )
        .await
        .expect("connect to the schema");
    migrator.run(&pool).await.expect("migrate the schema");
    pool
}
