//! `idp clients …`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use idp::Config;
use idp::admin::{self, ClientChanges};
use idp::client_extras::ClientExtras;
use idp::keys::Alg;
use idp::realm::{self, Client, NewClient};

use idp::config::parse_alg;

use super::emit;

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
    /// Require a second factor of everyone signing in to this client (`--off`: no longer);
    /// someone without an authenticator app sets one up at that sign-in.
    RequireSecondFactor {
        id: String,
        #[arg(long)]
        off: bool,
    },
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
    /// Where the IdP posts a logout token when a session of this client ends
    /// (OpenID Connect Back-Channel Logout).
    #[arg(long = "backchannel-logout-uri")]
    backchannel_logout_uri: Option<String>,
    /// The client requires `sid` in logout tokens (they always carry it).
    #[arg(long = "backchannel-logout-session-required")]
    backchannel_logout_session_required: bool,
    /// Browser origin allowed to call the token, userinfo, revoke, discovery and JWKS
    /// endpoints, e.g. https://app.example (repeatable or comma-separated; none by default).
    #[arg(long = "allowed-origin", value_delimiter = ',')]
    allowed_origins: Vec<String>,
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
/// Space- or comma-separated values given as one or more arguments.
fn split(v: Vec<String>) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect()
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
    #[serde(flatten)]
    extras: &'a ClientExtras,
}

impl<'a> ClientView<'a> {
    fn of(c: &'a Client, extras: &'a ClientExtras) -> Self {
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
            extras,
        }
    }

    fn text(&self) -> String {
        format!(
            "{}  {}{}\n  type: {}\n  grants: {}\n  scopes: {}\n  resources: {}\n  redirect URIs: {}\n  post-logout URIs: {}\n  ID-token algorithm: {}\n  back-channel logout URI: {}\n  allowed origins: {}",
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
            self.extras.backchannel_logout_uri.as_deref().unwrap_or("-"),
            self.extras.allowed_origins.join(" "),
        )
    }
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
            let extras = ClientExtras {
                backchannel_logout_uri: a.backchannel_logout_uri,
                backchannel_logout_session_required: a.backchannel_logout_session_required,
                allowed_origins: a.allowed_origins,
            };
            extras.validate(a.public)?;
            let secret = (!a.public).then(|| platform::crypto::random_token(32));
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
            idp::admin::upsert_client(pool, &client).await?;
            let changes = ClientChanges {
                id_token_alg: Some(alg),
                ..ClientChanges::default()
            };
            admin::update_client(pool, &a.id, changes).await?;
            extras.save(pool, &a.id, a.public).await?;
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
            let extras = ClientExtras::of(pool, &c.id).await?;
            let view = ClientView::of(&c, &extras);
            emit(json, &view, || view.text());
        }
        ClientsCommand::List => {
            let clients = realm::clients(pool).await?;
            let mut extras = Vec::with_capacity(clients.len());
            for c in &clients {
                extras.push(ClientExtras::of(pool, &c.id).await?);
            }
            let views: Vec<ClientView<'_>> = clients
                .iter()
                .zip(&extras)
                .map(|(c, e)| ClientView::of(c, e))
                .collect();
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
        ClientsCommand::RequireSecondFactor { id, off } => {
            if !idp::totp::require_for_client(pool, &id, !off).await? {
                anyhow::bail!("no client {id:?}");
            }
            emit(
                json,
                &json!({"client_id": id, "second_factor_required": !off}),
                || match off {
                    false => format!("client {id}: a second factor is required at sign-in"),
                    true => format!("client {id}: a second factor is no longer required"),
                },
            );
        }
    }
    Ok(())
}
