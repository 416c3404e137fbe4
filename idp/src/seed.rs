//! `idp seed`: the demo realm, applied idempotently (run it twice, get the
//! same realm). Existing users keep their passwords; clients are updated to
//! the values below.

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::catalog::{self, SCOPES};
use crate::client_extras::ClientExtras;
use crate::password::{PasswordError, Passwords};
use crate::realm::{self, NewClient, RealmError};

/// `idp seed`'s variables (`IDP_SEED_*`): the demo realm's clients.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "idp seed")]
pub struct SeedArgs {
    /// The gateway client's base URL (redirect `<url>/auth/callback`, post-logout `<url>/`).
    #[arg(
        long = "idp-seed-gateway-url",
        env = "IDP_SEED_GATEWAY_URL",
        default_value = "http://localhost:8080"
    )]
    pub gateway_url: String,
    /// Where the IdP posts the gateway's logout tokens (in containers, the
    /// gateway's address inside the network) [default: <IDP_SEED_GATEWAY_URL>/backchannel-logout].
    #[arg(
        long = "idp-seed-gateway-backchannel-logout-uri",
        env = "IDP_SEED_GATEWAY_BACKCHANNEL_LOGOUT_URI"
    )]
    pub gateway_backchannel_logout_uri: Option<String>,
    /// The gateway client's secret.
    #[arg(long = "idp-seed-gateway-secret", env = "IDP_SEED_GATEWAY_SECRET",
          default_value = "gateway-dev-secret", value_parser = platform::config::secret)]
    pub gateway_secret: SecretString,
    /// The `reporter` client's secret (client credentials).
    #[arg(long = "idp-seed-reporter-secret", env = "IDP_SEED_REPORTER_SECRET",
          default_value = "reporter-dev-secret", value_parser = platform::config::secret)]
    pub reporter_secret: SecretString,
    /// The `order` client's secret (token exchange, revocation stream).
    #[arg(long = "idp-seed-order-secret", env = "IDP_SEED_ORDER_SECRET",
          default_value = "order-dev-secret", value_parser = platform::config::secret)]
    pub order_secret: SecretString,
    /// The `payment` client's secret (revocation stream).
    #[arg(long = "idp-seed-payment-secret", env = "IDP_SEED_PAYMENT_SECRET",
          default_value = "payment-dev-secret", value_parser = platform::config::secret)]
    pub payment_secret: SecretString,
    /// The `inventory` client's secret (revocation stream).
    #[arg(long = "idp-seed-inventory-secret", env = "IDP_SEED_INVENTORY_SECRET",
          default_value = "inventory-dev-secret", value_parser = platform::config::secret)]
    pub inventory_secret: SecretString,
    /// The public `cli` client's redirect URI.
    #[arg(
        long = "idp-seed-cli-redirect-uri",
        env = "IDP_SEED_CLI_REDIRECT_URI",
        default_value = "http://127.0.0.1:8976/callback"
    )]
    pub cli_redirect_uri: String,
}

/// The demo realm's settings ([`SeedArgs`], or [`Default`] in tests).
#[derive(Clone)]
pub struct SeedConfig {
    pub gateway_url: String,
    /// Where the IdP posts the gateway's logout tokens, when the IdP reaches
    /// the gateway at another address than browsers do (containers); `None`:
    /// under `gateway_url`.
    pub gateway_backchannel_logout_uri: Option<String>,
    pub gateway_secret: String,
    pub reporter_secret: String,
    pub order_secret: String,
    pub payment_secret: String,
    pub inventory_secret: String,
    pub cli_redirect_uri: String,
}

impl From<SeedArgs> for SeedConfig {
    fn from(args: SeedArgs) -> Self {
        let secret = |s: SecretString| s.expose_secret().to_owned();
        Self {
            gateway_url: args.gateway_url.trim_end_matches('/').to_owned(),
            gateway_backchannel_logout_uri: args.gateway_backchannel_logout_uri,
            gateway_secret: secret(args.gateway_secret),
            reporter_secret: secret(args.reporter_secret),
            order_secret: secret(args.order_secret),
            payment_secret: secret(args.payment_secret),
            inventory_secret: secret(args.inventory_secret),
            cli_redirect_uri: args.cli_redirect_uri,
        }
    }
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            gateway_url: "http://localhost:8080".into(),
            gateway_backchannel_logout_uri: None,
            gateway_secret: "gateway-dev-secret".into(),
            reporter_secret: "reporter-dev-secret".into(),
            order_secret: "order-dev-secret".into(),
            payment_secret: "payment-dev-secret".into(),
            inventory_secret: "inventory-dev-secret".into(),
            cli_redirect_uri: "http://127.0.0.1:8976/callback".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Realm(#[from] RealmError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// The demo users: username, password, display name, email, roles.
pub const DEMO_USERS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "alice",
        "alice-password",
        "Alice Adams",
        "alice@example.com",
        &["customer"],
    ),
    (
        "carol",
        "carol-password",
        "Carol Clark",
        "carol@example.com",
        &["customer", "support"],
    ),
    (
        "bob",
        "bob-password",
        "Bob Brown",
        "bob@example.com",
        &["admin"],
    ),
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The demo clients.
pub fn demo_clients(seed: &SeedConfig) -> Vec<NewClient> {
    let all_scopes: Vec<String> = SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect();
    let resources = strings(&["order", "payment", "inventory"]);
    // API clients call the shop through the gateway, which exchanges their
    // tokens per route (RFC 8693): the IdP lets a client exchange only tokens
    // that name it in `aud`.
    let through_gateway = strings(&["gateway", "order", "payment", "inventory"]);
    vec![
        NewClient {
            id: "gateway".into(),
            name: "Baton Shop".into(),
            secret: Some(seed.gateway_secret.clone()),
            redirect_uris: vec![format!("{}/auth/callback", seed.gateway_url)],
            post_logout_redirect_uris: vec![format!("{}/", seed.gateway_url)],
            // Token exchange: the gateway relays to each route a token for
            // that route's service alone (its session's token, or an API
            // client's token that names the gateway, as the subject).
            grant_types: strings(&["authorization_code", "refresh_token", realm::TOKEN_EXCHANGE]),
            scopes: all_scopes,
            resources,
        },
        NewClient {
            id: "cli".into(),
            name: "Baton CLI".into(),
            secret: None,
            redirect_uris: vec![seed.cli_redirect_uri.clone()],
            post_logout_redirect_uris: vec![],
            grant_types: strings(&["authorization_code", "refresh_token"]),
            scopes: strings(&[
                "openid",
                "profile",
                "email",
                "offline_access",
                "orders:read",
                "orders:write",
                "payments:read",
                "inventory:read",
            ]),
            resources: through_gateway.clone(),
        },
        NewClient {
            id: "reporter".into(),
            name: "Baton reporting job".into(),
            secret: Some(seed.reporter_secret.clone()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: strings(&["client_credentials"]),
            scopes: strings(&["orders:read", "payments:read", "inventory:read"]),
            resources: through_gateway,
        },
        // The order service, for RFC 8693 token exchange: it may trade a token
        // sent to it for one narrowed to payment or inventory, naming itself in `act`.
        NewClient {
            id: "order".into(),
            name: "Baton order service".into(),
            secret: Some(seed.order_secret.clone()),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: strings(&[realm::TOKEN_EXCHANGE]),
            scopes: strings(&[
                "orders:read",
                "orders:write",
                "payments:read",
                "payments:write",
                "inventory:read",
                "inventory:write",
                realm::REVOCATIONS_READ,
            ]),
            resources: strings(&["payment", "inventory"]),
        },
        // Payment and inventory only read the revocation stream (guard's
        // subscriber authenticates as them); they obtain no tokens.
        resource_server("payment", "Baton payment service", &seed.payment_secret),
        resource_server(
            "inventory",
            "Baton inventory service",
            &seed.inventory_secret,
        ),
    ]
}

fn resource_server(id: &str, name: &str, secret: &str) -> NewClient {
    NewClient {
        id: id.into(),
        name: name.into(),
        secret: Some(secret.to_owned()),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![],
        scopes: strings(&[realm::REVOCATIONS_READ]),
        resources: strings(&[id]),
    }
}

pub async fn apply(
    pool: &PgPool,
    passwords: &Passwords,
    seed: &SeedConfig,
) -> Result<(), SeedError> {
    catalog::ensure_defaults(pool).await?;
    realm::ensure_roles(pool, &["customer", "support", "admin"]).await?;
    for (username, password, name, email, roles) in DEMO_USERS {
        let id = match realm::user_by_username(pool, username).await? {
            Some(u) => u.id,
            None => {
                let hash = passwords.hash((*password).to_owned()).await?;
                realm::insert_user(pool, username, &hash, name, Some(email))
                    .await?
                    .0
            }
        };
        realm::grant_roles(pool, id, roles).await?;
    }
    for client in demo_clients(seed) {
        crate::admin::upsert_client(pool, &client).await?;
    }
    // The gateway ends its sessions when the IdP says a person signed out.
    let gateway = ClientExtras {
        backchannel_logout_uri: Some(
            seed.gateway_backchannel_logout_uri
                .clone()
                .unwrap_or_else(|| format!("{}/backchannel-logout", seed.gateway_url)),
        ),
        backchannel_logout_session_required: true,
        allowed_origins: vec![],
    };
    gateway.save(pool, "gateway", false).await?;
    Ok(())
}
