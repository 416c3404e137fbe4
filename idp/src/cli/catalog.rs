//! `idp scopes …` and `idp resources …`.

use clap::Subcommand;
use serde_json::json;
use sqlx::PgPool;

use idp::catalog::{self, Catalog};

use super::emit;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Add one (or change the description of an existing one).
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List them, with the clients registered with each.
    List,
    /// Remove one that no client is registered with.
    Remove { name: String },
}

pub async fn catalog(
    pool: &PgPool,
    kind: Catalog,
    cmd: CatalogCommand,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        CatalogCommand::Add { name, description } => {
            let created = catalog::add(pool, kind, &name, &description).await?;
            emit(json, &json!({"name": name, "created": created}), || {
                let what = if created { "added" } else { "updated" };
                format!("{name} {what}")
            });
        }
        CatalogCommand::List => {
            let entries = catalog::list(pool, kind).await?;
            emit(json, &entries, || {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{:<24} {:<44} {}",
                            e.name,
                            e.description,
                            e.clients.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        CatalogCommand::Remove { name } => {
            catalog::remove(pool, kind, &name).await?;
            emit(json, &json!({"name": name, "removed": true}), || {
                format!("{name} removed")
            });
        }
    }
    Ok(())
}
