//! guard's migration set beside a service's in one database (one
//! `_sqlx_migrations` table): fresh databases, restarts, and databases made
//! while the services carried their own copies of guard's tables.

use std::path::PathBuf;

use platform::db::with_guard_migrations;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The tables guard's audit and idempotency modules write.
async fn guard_tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name IN ('audit_log', 'idempotency_keys')
         ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn applied_versions(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A service's migration directory written out: the files given, as
/// `(name, sql)`.
fn migration_dir(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guard-migrations-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    dir
}

const ITEMS: &str = "CREATE TABLE items (sku TEXT PRIMARY KEY);";

#[sqlx::test(migrations = false)]
async fn a_fresh_database_gets_both_sets_and_a_restart_changes_nothing(pool: PgPool) {
    let dir = migration_dir(&[("0001_items.sql", ITEMS)]);
    let service = Migrator::new(dir.as_path()).await.unwrap();
    let migrator = with_guard_migrations(&service);

    migrator.run(&pool).await.unwrap();
    assert_eq!(guard_tables(&pool).await, ["audit_log", "idempotency_keys"]);
    let versions = applied_versions(&pool).await;
    // guard's two (tables, audit actors) and the service's one.
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(versions.contains(&1));

    // A restart (or a second replica) runs the same migrations again.
    migrator.run(&pool).await.unwrap();
    with_guard_migrations(&service).run(&pool).await.unwrap();
    assert_eq!(applied_versions(&pool).await, versions);
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn a_database_with_the_former_copies_of_the_tables_keeps_working(pool: PgPool) {
    // Before guard owned them, each service created the tables in a migration
    // of its own (inventory's 0003_audit_and_idempotency, say).
    let former =
        include_str!("../../../../migrations/guard/20261123120000_audit_and_idempotency.sql")
            .replace(" IF NOT EXISTS", "");
    let old = migration_dir(&[
        ("0001_items.sql", ITEMS),
        ("0003_audit_and_idempotency.sql", &former),
    ]);
    Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (action, resource, sub, client_id, caller, jti, trace_id)
         VALUES ('item.update', 'sku-1', 'alice', 'gateway', 'gateway', 'j', 't')",
    )
    .execute(&pool)
    .await
    .unwrap();

    // Today's layout: the service's own set without the copy, and guard's.
    let new = migration_dir(&[
        ("0001_items.sql", ITEMS),
        ("0004_more.sql", "ALTER TABLE items ADD COLUMN stock INT;"),
    ]);
    let migrator = with_guard_migrations(&Migrator::new(new.as_path()).await.unwrap());
    migrator.run(&pool).await.unwrap();
    migrator.run(&pool).await.unwrap();
    assert_eq!(guard_tables(&pool).await, ["audit_log", "idempotency_keys"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the audit trail is kept");
    let stock: Option<i32> = sqlx::query_scalar("SELECT stock FROM items LIMIT 1")
        .fetch_optional(&pool)
        .await
        .unwrap()
        .flatten();
    assert_eq!(stock, None, "the service's new migration ran");
    let _ = std::fs::remove_dir_all(old);
    let _ = std::fs::remove_dir_all(new);
}
