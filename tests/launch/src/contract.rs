//! What the launchers agree on: the order the parts start in and the
//! variables that tell each part where it is and where the others are. The
//! end-to-end suite and the bench start the stack through this;
//! `deploy/local/run.sh` (`make up`) follows the same order with the same
//! variables (it leaves them to the environment and the defaults).

/// The parts, in start order: the IdP first (every other part fetches its
/// keys from it), then each service before the services that call it.
pub const PARTS: [&str; 5] = ["idp", "inventory", "payment", "order", "gateway"];

/// Where the parts are: origins without a trailing slash.
#[derive(Clone, Debug)]
pub struct Origins {
    /// The IdP's issuer.
    pub idp: String,
    pub inventory: String,
    pub payment: String,
    pub order: String,
    pub gateway: String,
}

/// The variables `part` (a binary: `idp`, `inventory`, `payment`, `order`,
/// `gateway`) starts with: its metrics on an ephemeral loopback port (it
/// logs `metrics listening` with the address), its database, the issuer it
/// trusts, and the parts it calls. The listener is passed, not named
/// (`handoff`), so no `<PART>_BIND`.
pub fn env(part: &str, origins: &Origins, database_url: &str) -> Vec<(String, String)> {
    let upper = part.to_ascii_uppercase();
    let mut env = vec![
        (format!("{upper}_METRICS_BIND"), "127.0.0.1:0".to_owned()),
        (format!("{upper}_DATABASE_URL"), database_url.to_owned()),
        ("GUARD_ISSUER".to_owned(), origins.idp.clone()),
    ];
    let mut set = |key: &str, value: &str| env.push((key.to_owned(), value.to_owned()));
    match part {
        "idp" => set("IDP_ISSUER", &origins.idp),
        "order" => {
            set("ORDER_INVENTORY_URL", &origins.inventory);
            set("ORDER_PAYMENT_URL", &origins.payment);
        }
        "gateway" => {
            set("GATEWAY_PUBLIC_URL", &origins.gateway);
            set("GATEWAY_ISSUER", &origins.idp);
            set("GATEWAY_ORDER_URL", &origins.order);
            set("GATEWAY_PAYMENT_URL", &origins.payment);
            set("GATEWAY_INVENTORY_URL", &origins.inventory);
        }
        _ => {}
    }
    env
}

/// The variables of `idp seed` for the demo realm: the IdP's database,
/// issuer and key-encryption key, and the gateway's origin and client secret
/// (its redirect URIs).
pub fn seed_env(
    origins: &Origins,
    database_url: &str,
    key_encryption_key: &str,
    gateway_secret: &str,
) -> Vec<(String, String)> {
    [
        ("IDP_DATABASE_URL", database_url),
        ("IDP_KEY_ENCRYPTION_KEY", key_encryption_key),
        ("IDP_ISSUER", origins.idp.as_str()),
        ("IDP_SEED_GATEWAY_URL", origins.gateway.as_str()),
        ("IDP_SEED_GATEWAY_SECRET", gateway_secret),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
