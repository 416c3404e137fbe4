//! The realm's catalog as data: the scopes clients may be granted and the
//! resources (access-token audiences) their tokens may reach, one table each.
//! `idp scopes …` and `idp resources …` change them at run time; a client's
//! registration may name only rows of these tables, and a row stays while a
//! client names it.
//!
//! The two tables have the same shape and the same statements, so those take
//! the table's name at run time ([`Catalog::table`], one of two constants)
//! and stay `sqlx::query`, checked by this module's tests rather than at
//! compile time; the statement that reads both tables is compile-checked.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

use crate::realm::{REVOCATIONS_READ, RealmError, USER_SCOPES};

/// The default scopes, inserted by the migration and refreshed by `idp seed`.
pub const SCOPES: &[(&str, &str)] = &[
    ("openid", "Sign you in"),
    ("profile", "Your name and username"),
    ("email", "Your email address"),
    ("offline_access", "Stay signed in"),
    ("orders:read", "See orders"),
    ("orders:write", "Place orders"),
    ("payments:read", "See payments"),
    ("payments:write", "Make payments"),
    ("payments:refund", "Refund payments"),
    ("inventory:read", "See inventory"),
    ("inventory:write", "Change inventory"),
    (
        REVOCATIONS_READ,
        "Subscribe to the revocation stream (resource servers)",
    ),
];

/// The demo services, inserted by `idp seed`.
pub const RESOURCES: &[(&str, &str)] = &[
    ("order", "The order service"),
    ("payment", "The payment service"),
    ("inventory", "The inventory service"),
    (
        "gateway",
        "The API gateway: it may exchange API clients' tokens that name it",
    ),
];

/// Which of the two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    Scopes,
    Resources,
}

impl Catalog {
    /// The table, and the `clients` column that names its rows.
    fn table(self) -> &'static str {
        match self {
            Catalog::Scopes => "scopes",
            Catalog::Resources => "resources",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Catalog::Scopes => "scope",
            Catalog::Resources => "resource",
        }
    }

    /// Rows the IdP's own code relies on (the protocol scopes).
    fn is_builtin(self, name: &str) -> bool {
        self == Catalog::Scopes && (USER_SCOPES.contains(&name) || name == REVOCATIONS_READ)
    }
}

/// One row, with the clients that name it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub name: String,
    pub description: String,
    pub clients: Vec<String>,
}

/// Inserts the default scopes and resources (descriptions refreshed).
pub async fn ensure_defaults(db: &PgPool) -> sqlx::Result<()> {
    for (catalog, rows) in [(Catalog::Scopes, SCOPES), (Catalog::Resources, RESOURCES)] {
        let (names, descriptions): (Vec<&str>, Vec<&str>) = rows.iter().copied().unzip();
        sqlx::query(&format!(
            "INSERT INTO {} (name, description) SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description",
            catalog.table()
        ))
        .bind(&names)
        .bind(&descriptions)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Every row, by name.
pub async fn list(db: impl PgExecutor<'_>, catalog: Catalog) -> sqlx::Result<Vec<Entry>> {
    let t = catalog.table();
    sqlx::query_as(&format!(
        "SELECT name, description,
                ARRAY(SELECT id FROM clients WHERE t.name = ANY(clients.{t}) ORDER BY id) AS clients
         FROM {t} t ORDER BY name"
    ))
    .fetch_all(db)
    .await
}

/// The names only, by name (discovery's `scopes_supported`).
pub async fn names(db: impl PgExecutor<'_>, catalog: Catalog) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(&format!(
        "SELECT name FROM {} ORDER BY name",
        catalog.table()
    ))
    .fetch_all(db)
    .await
}

/// Adds a row, or sets the description of an existing one; answers whether
/// it was new.
pub async fn add(
    db: impl PgExecutor<'_>,
    catalog: Catalog,
    name: &str,
    description: &str,
) -> Result<bool, RealmError> {
    if !valid_name(name) {
        return Err(RealmError::Invalid(format!(
            "{} names are 1 to 64 of A-Z a-z 0-9 : . _ - (got {name:?})",
            catalog.noun()
        )));
    }
    let created: bool = sqlx::query_scalar(&format!(
        "INSERT INTO {} (name, description) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description
         RETURNING xmax = 0",
        catalog.table()
    ))
    .bind(name)
    .bind(description)
    .fetch_one(db)
    .await?;
    Ok(created)
}

/// Removes a row no client names. Refused for the protocol scopes and while
/// a client names it (change those clients first: `idp clients update`).
pub async fn remove(db: &PgPool, catalog: Catalog, name: &str) -> Result<(), RealmError> {
    let noun = catalog.noun();
    if catalog.is_builtin(name) {
        return Err(RealmError::Invalid(format!(
            "{name} is a protocol {noun} the IdP relies on; it cannot be removed"
        )));
    }
    let t = catalog.table();
    let mut tx = db.begin().await?;
    // Locks the row: a client registered meanwhile waits, then sees it gone.
    let found: Option<String> =
        sqlx::query_scalar(&format!("SELECT name FROM {t} WHERE name = $1 FOR UPDATE"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    if found.is_none() {
        return Err(RealmError::NotFound(format!("no {noun} {name:?}")));
    }
    let users: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM clients WHERE $1 = ANY({t}) ORDER BY id FOR UPDATE"
    ))
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    if !users.is_empty() {
        return Err(RealmError::Invalid(format!(
            "{noun} {name} is still registered for client(s) {}: remove it from them first (`idp clients update`)",
            users.join(", ")
        )));
    }
    sqlx::query(&format!("DELETE FROM {t} WHERE name = $1"))
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
}

/// Refuses scopes and resources that are not rows of their tables.
pub async fn check(
    db: impl PgExecutor<'_>,
    scopes: &[String],
    resources: &[String],
) -> Result<(), RealmError> {
    let unknown = sqlx::query_scalar!(
        r#"SELECT 'scope ' || s AS "unknown!" FROM unnest($1::text[]) s
           WHERE s NOT IN (SELECT name FROM scopes)
           UNION ALL
           SELECT 'resource ' || r FROM unnest($2::text[]) r
           WHERE r NOT IN (SELECT name FROM resources)"#,
        scopes,
        resources,
    )
    .fetch_all(db)
    .await?;
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RealmError::Invalid(format!(
            "unknown {} (add it first: `idp scopes add` / `idp resources add`)",
            unknown.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table_constraint() {
        assert!(valid_name("reports:write"));
        assert!(valid_name("a.b_c-d"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(Catalog::Scopes.is_builtin("openid"));
        assert!(!Catalog::Resources.is_builtin("openid"));
        assert!(!Catalog::Scopes.is_builtin("orders:read"));
    }
}
