//! `idp users …`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use idp::admin;
use idp::realm;
use idp::state::AppState;

use super::emit;

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
    /// Remove a user's authenticator app and recovery codes (a lost phone):
    /// they sign in with the password alone until they set up a new one.
    ResetSecondFactor { username: String },
    /// Require a second factor of a user at every sign-in (`--off`: no longer); without an
    /// authenticator app, they set one up at their next sign-in.
    RequireSecondFactor {
        username: String,
        #[arg(long)]
        off: bool,
    },
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("password (input is visible; pipe it in to avoid that): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < idp::password::MIN_CHARS {
        bail!(
            "the password must have at least {} characters",
            idp::password::MIN_CHARS
        );
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
        UsersCommand::ResetSecondFactor { username } => {
            let u = user(&state, &username).await?;
            let removed = admin::reset_second_factor(&state.db, &u).await?;
            emit(
                json,
                &json!({"username": username, "second_factor_removed": removed}),
                || match removed {
                    true => format!(
                        "{username}: authenticator app, recovery codes and passkeys removed"
                    ),
                    false => format!("{username}: had no second factor; nothing changed"),
                },
            );
        }
        UsersCommand::RequireSecondFactor { username, off } => {
            let u = user(&state, &username).await?;
            idp::totp::require_for_user(&state.db, u.id, !off).await?;
            emit(
                json,
                &json!({"username": username, "second_factor_required": !off}),
                || match off {
                    false => format!("{username}: a second factor is required at sign-in"),
                    true => format!("{username}: a second factor is no longer required"),
                },
            );
        }
    }
    Ok(())
}
