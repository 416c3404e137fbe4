//! The gateway over real HTTP: a real IdP (`idp::spawn`), the real gateway
//! on an ephemeral port, real PostgreSQL (one database per test; the gateway
//! lives in its own schema), and real upstream servers that validate the
//! relayed token with guard the way the services do. A browser is a reqwest
//! client with a cookie jar that follows the sign-in flow through the IdP's
//! login form.

mod backchannel;
mod browser;
mod exchange;
mod helpers;
mod id_token;
mod idp_proxy;
mod lease;
mod proxy;
mod rbac;
mod refresh;
mod resilience;
mod services;
mod sessions;
mod slow_idp;
mod upstream;
