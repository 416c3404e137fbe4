//! A real issuer for tests (feature `test-issuer`): serves a discovery
//! document and a JWKS over HTTP on `127.0.0.1:0`, holds real RSA (RS256),
//! EC P-256 (ES256) and Ed25519 (EdDSA) keys, and mints valid tokens — and
//! forged ones, for the negative tests.
//!
//! ```ignore
//! let issuer = TestIssuer::start().await;
//! let guard = Guard::new(issuer.config("order"));
//! let token = issuer.token().sub("alice").roles(&["customer"]).scope("orders:write").sign();
//! let forged = issuer.token().header("alg", "none").sign_unsigned();
//! ```
//!
//! Until the real IdP is wired into a crate's tests, services can use it in
//! their `[dev-dependencies]`: `guard = { workspace = true, features = ["test-issuer"] }`.
//!
//! Around it, the services' shared test kit: [`TestClient`] for requests,
//! [`schema_pool`] for a service's own schema of the test database, the demo
//! users' tokens ([`TestIssuer::alice`] …), [`expect`] for status-checked JSON,
//! and the `TEST_LOG` switch ([`log`]) that every kit entry point honours.

mod client;
mod database;
mod exchange;
mod issuer;
mod keys;
pub mod log;
mod shared;
mod stream;
mod token;
mod users;

use serde_json::Value;

pub use client::TestClient;
pub use database::schema_pool;
pub use issuer::TestIssuer;
pub use keys::{KeyKind, TestKey};
pub use stream::{STREAM_CLIENT_ID, STREAM_CLIENT_SECRET};
pub use token::TokenBuilder;
pub use users::{ALICE, BOB, CAROL};

use crate::claims::unix_now;

/// Seconds since the epoch, as in `exp`/`iat`/`nbf`.
pub fn now() -> i64 {
    unix_now()
}

/// Asserts that `response` has `status` (showing the body when not) and
/// returns its JSON body (`Null` when it has none).
pub async fn expect(response: reqwest::Response, status: http::StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}
