//! The realm commands of the `idp` binary: users, clients, scopes and
//! resources. The work is done by the library ([`idp::admin`],
//! [`idp::catalog`], [`idp::realm`]); this module parses and prints, as text
//! or, with `--json`, as one JSON document.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use idp::Config;
use idp::admin::{self, ClientChanges};
use idp::catalog::{self, Catalog};
use idp::keys::Alg;
use idp::realm::{self, Client, NewClient};
use idp::state::AppState;

use crate::emit;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is the first line of standard input.
    Add {
        username: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// A role to grant (repeatable or comma-separated).
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Set a user's password (first line of standard input); ends the user's sessions.
    SetPassword { username: String },
    /// End all of a user's sessions and revoke every token issued to them so far.
    RevokeSessions { username: String },
    /// Show a user's roles, after granting --add and removing --remove.
    Roles {
        username: String,
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// List users.
    List,
    /// Disable a user: no sign-in; every session ended, every token revoked.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// Delete a user: as disable, then the user and their grants are removed (audited).
    Delete { username: String },
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register (or replace) a client. A confidential client's secret is generated and printed once.
    Add(ClientArgs),
    /// Change a registered client: each option given replaces that field.
    Update(UpdateArgs),
    /// List clients.
    List,
    /// Disable a client: it can no longer authenticate or sign anyone in; its tokens are revoked.
    Disable { id: String },
    /// Enable a disabled client again.
    Enable { id: String },
    /// Delete a client, revoking its tokens.
    Delete { id: String },
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret { id: String },
}

#[derive(Args)]
pub struct ClientArgs {
    /// The client_id.
    id: String,
    #[arg(long, default_value = "")]
    name: String,
    /// A public client (no secret; PKCE required), e.g. a native or single-page app.
    #[arg(long)]
    public: bool,
    /// Exact redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Exact post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, client_credentials (repeatable or comma-separated).
    #[arg(long = "grant", value_delimiter = ',', required = true)]
    grants: Vec<String>,
    /// Allowed scopes (repeatable, comma- or space-separated); each must exist (`idp scopes add`).
    #[arg(long = "scope", value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// Resources (the aud of its access tokens), e.g. order,payment,inventory; each must
    /// exist (`idp resources add`).
    #[arg(long = "resource", value_delimiter = ',', required = true)]
    resources: Vec<String>,
    /// The algorithm of its ID tokens (id_token_signed_response_alg): RS256 or
    /// IDP_SIGNING_ALG (the default).
    #[arg(long = "id-token-alg", value_parser = parse_alg)]
    id_token_alg: Option<Alg>,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// The client_id.
    id: String,
    #[arg(long)]
    name: Option<String>,
    /// Exact redirect URI (repeatable); replaces the registered ones.
    #[arg(long = "redirect-uri")]
    redirect_uris: Option<Vec<String>>,
    /// Exact post-logout redirect URI (repeatable); replaces the registered ones.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Grant types (repeatable or comma-separated); replaces the registered ones.
    #[arg(long = "grant", value_delimiter = ',')]
    grants: Option<Vec<String>>,
    /// Scopes (repeatable, comma- or space-separated); replaces the registered ones.
    #[arg(long = "scope", value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Resources (repeatable or comma-separated); replaces the registered ones.
    #[arg(long = "resource", value_delimiter = ',')]
    resources: Option<Vec<String>>,
    /// Scopes to add to the registered ones (repeatable or comma-separated).
    #[arg(long = "add-scope", value_delimiter = ',')]
    add_scopes: Vec<String>,
    /// Scopes to remove from the registered ones.
    #[arg(long = "remove-scope", value_delimiter = ',')]
    remove_scopes: Vec<String>,
    /// Resources to add to the registered ones.
    #[arg(long = "add-resource", value_delimiter = ',')]
    add_resources: Vec<String>,
    /// Resources to remove from the registered ones.
    #[arg(long = "remove-resource", value_delimiter = ',')]
    remove_resources: Vec<String>,
    /// The algorithm of its ID tokens (RS256 or IDP_SIGNING_ALG); `default` for IDP_SIGNING_ALG.
    #[arg(long = "id-token-alg")]
    id_token_alg: Option<String>,
}

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

pub fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse()
        .map_err(|()| format!("expected RS256, ES256 or EdDSA, got {s:?}"))
}

/// An ID-token algorithm must be one the IdP keeps a key for.
fn check_alg(config: &Config, alg: Option<Alg>) -> anyhow::Result<Option<Alg>> {
    if let Some(a) = alg
        && !config.id_token_algs().contains(&a)
    {
        bail!(
            "the IdP signs ID tokens with IDP_SIGNING_ALG ({}) or RS256 only, not {a}",
            config.signing_alg
        );
    }
    Ok(alg)
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("password (input is visible; pipe it in to avoid that): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

async fn user(state: &AppState, username: &str) -> anyhow::Result<realm::User> {
    realm::user_by_username(&state.db, username)
        .await?
        .with_context(|| format!("no user {username:?}"))
}

/// `{"username": …, "sessions_ended": n}` or its text form.
fn sessions_ended(json: bool, username: &str, ended: usize, what: &str) {
    emit(
        json,
        &json!({"username": username, "sessions_ended": ended}),
        || format!("{username}: {what}; {ended} session(s) ended"),
    );
}

pub async fn users(state: AppState, cmd: UsersCommand, json: bool) -> anyhow::Result<()> {
    let ttl = state.config.access_token_ttl;
    match cmd {
        UsersCommand::Add {
            username,
            name,
            email,
            roles,
        } => {
            let password = read_password()?;
            let hash = state.passwords.hash(password).await?;
            let (id, created) =
                realm::insert_user(&state.db, &username, &hash, &name, email.as_deref()).await?;
            if !created {
                bail!("user {username:?} already exists (use `idp users set-password`)");
            }
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            realm::grant_roles(&state.db, id, &roles).await?;
            emit(json, &json!({"id": id, "username": username}), || {
                format!("user {username} created with id {id}")
            });
        }
        UsersCommand::SetPassword { username } => {
            let u = user(&state, &username).await?;
            let hash = state.passwords.hash(read_password()?).await?;
            realm::set_password(&state.db, u.id, &hash).await?;
            let ended =
                idp::sessions::end_all_for_user(&state.db, u.id, "password changed", ttl).await?;
            sessions_ended(json, &username, ended, "password changed");
        }
        UsersCommand::RevokeSessions { username } => {
            let u = user(&state, &username).await?;
            let reason = "revoked by an administrator";
            let ended = idp::sessions::end_all_for_user(&state.db, u.id, reason, ttl).await?;
            sessions_ended(json, &username, ended, "every token issued so far revoked");
        }
        UsersCommand::Roles {
            username,
            add,
            remove,
        } => {
            let u = user(&state, &username).await?;
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            realm::grant_roles(&state.db, u.id, &add).await?;
            realm::revoke_roles(&state.db, u.id, &remove).await?;
            let roles = realm::roles_of(&state.db, u.id).await?;
            emit(json, &json!({"username": username, "roles": roles}), || {
                format!("{username}: {}", roles.join(", "))
            });
        }
        UsersCommand::List => {
            let users = admin::users(&state.db).await?;
            emit(json, &users, || {
                let lines: Vec<String> = users
                    .iter()
                    .map(|u| {
                        let flag = if u.disabled { " (disabled)" } else { "" };
                        format!(
                            "{}  {:<16} {:<28} {}{flag}",
                            u.id,
                            u.username,
                            u.email.as_deref().unwrap_or_default(),
                            u.roles.join(",")
                        )
                    })
                    .collect();
                lines.join("\n")
            });
        }
        UsersCommand::Disable { username } => {
            let u = user(&state, &username).await?;
            let ended = admin::set_user_disabled(&state.db, &u, true, ttl).await?;
            sessions_ended(json, &username, ended, "disabled");
        }
        UsersCommand::Enable { username } => {
            let u = user(&state, &username).await?;
            admin::set_user_disabled(&state.db, &u, false, ttl).await?;
            sessions_ended(json, &username, 0, "enabled");
        }
        UsersCommand::Delete { username } => {
            let u = user(&state, &username).await?;
            let ended = admin::delete_user(&state.db, &u, ttl).await?;
            sessions_ended(json, &username, ended, "deleted");
        }
    }
    Ok(())
}

/// A client as the CLI shows it (never its secret hash).
#[derive(Serialize)]
struct ClientView<'a> {
    client_id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    disabled: bool,
    grant_types: &'a [String],
    scopes: &'a [String],
    resources: &'a [String],
    redirect_uris: &'a [String],
    post_logout_redirect_uris: &'a [String],
    id_token_signed_response_alg: Option<&'a str>,
}

impl<'a> ClientView<'a> {
    fn of(c: &'a Client) -> Self {
        Self {
            client_id: &c.id,
            name: &c.name,
            kind: if c.public { "public" } else { "confidential" },
            disabled: c.disabled,
            grant_types: &c.grant_types,
            scopes: &c.scopes,
            resources: &c.resources,
            redirect_uris: &c.redirect_uris,
            post_logout_redirect_uris: &c.post_logout_redirect_uris,
            id_token_signed_response_alg: c.id_token_signed_response_alg.as_deref(),
        }
    }

    fn text(&self) -> String {
        format!(
            "{}  {}{}\n  type: {}\n  grants: {}\n  scopes: {}\n  resources: {}\n  redirect URIs: {}\n  post-logout URIs: {}\n  ID-token algorithm: {}",
            self.client_id,
            self.name,
            if self.disabled { " (disabled)" } else { "" },
            self.kind,
            self.grant_types.join(", "),
            self.scopes.join(" "),
            self.resources.join(", "),
            self.redirect_uris.join(" "),
            self.post_logout_redirect_uris.join(" "),
            self.id_token_signed_response_alg.unwrap_or("default"),
        )
    }
}

/// Space- or comma-separated values given as one or more arguments.
fn split(v: Vec<String>) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect()
}

/// `{"client_id": …, "refresh_tokens_revoked": n}` or its text form.
fn tokens_revoked(json: bool, id: &str, revoked: u64, what: &str) {
    emit(
        json,
        &json!({"client_id": id, "refresh_tokens_revoked": revoked}),
        || format!("client {id} {what}; {revoked} refresh token(s) revoked"),
    );
}

pub async fn clients(
    config: &Config,
    pool: &PgPool,
    cmd: ClientsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let ttl = config.access_token_ttl;
    match cmd {
        ClientsCommand::Add(a) => {
            let alg = check_alg(config, a.id_token_alg)?;
            let secret = (!a.public).then(idp::crypto::random_token);
            let client = NewClient {
                id: a.id.clone(),
                name: a.name,
                secret: secret.clone(),
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                grant_types: split(a.grants),
                scopes: split(a.scopes),
                resources: split(a.resources),
            };
            realm::upsert_client(pool, &client).await?;
            let changes = ClientChanges {
                id_token_alg: Some(alg),
                ..ClientChanges::default()
            };
            admin::update_client(pool, &a.id, changes).await?;
            emit(
                json,
                &json!({"client_id": a.id, "client_secret": secret}),
                || {
                    let mut out = format!("client {} registered", a.id);
                    if let Some(secret) = &secret {
                        out.push_str(&format!(
                            "\nclient_secret (shown once, store it now): {secret}"
                        ));
                    }
                    out
                },
            );
        }
        ClientsCommand::Update(a) => {
            let id_token_alg = match a.id_token_alg.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(s) => Some(check_alg(
                    config,
                    Some(parse_alg(s).map_err(anyhow::Error::msg)?),
                )?),
            };
            let changes = ClientChanges {
                name: a.name,
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                grant_types: a.grants.map(split),
                scopes: a.scopes.map(split),
                resources: a.resources.map(split),
                add_scopes: split(a.add_scopes),
                remove_scopes: split(a.remove_scopes),
                add_resources: split(a.add_resources),
                remove_resources: split(a.remove_resources),
                id_token_alg,
            };
            let c = admin::update_client(pool, &a.id, changes).await?;
            let view = ClientView::of(&c);
            emit(json, &view, || view.text());
        }
        ClientsCommand::List => {
            let clients = realm::clients(pool).await?;
            let views: Vec<ClientView<'_>> = clients.iter().map(ClientView::of).collect();
            emit(json, &views, || {
                views
                    .iter()
                    .map(ClientView::text)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ClientsCommand::Disable { id } => {
            let revoked = admin::set_client_disabled(pool, &id, true, ttl).await?;
            tokens_revoked(json, &id, revoked, "disabled");
        }
        ClientsCommand::Enable { id } => {
            admin::set_client_disabled(pool, &id, false, ttl).await?;
            tokens_revoked(json, &id, 0, "enabled");
        }
        ClientsCommand::Delete { id } => {
            let revoked = admin::delete_client(pool, &id, ttl).await?;
            tokens_revoked(json, &id, revoked, "deleted");
        }
        ClientsCommand::RotateSecret { id } => {
            let secret = admin::rotate_secret(pool, &id).await?;
            emit(
                json,
                &json!({"client_id": id, "client_secret": secret}),
                || format!("client {id}: new client_secret (shown once, store it now): {secret}"),
            );
        }
    }
    Ok(())
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
