//! Baton's OpenID Connect provider.
//!
//! The library holds everything; `main.rs` is the CLI. Tests (here and in
//! other crates) start a real IdP on an ephemeral port with [`spawn`], which
//! goes through the same [`Application`] as `idp serve`.

/// A person's own account: their sessions and a new password (`/account`).
pub mod account;
/// Administrative changes to users and clients (the `idp users …` and `idp clients …` commands).
pub mod admin;
/// How a sign-in was made: `amr` methods and the `acr` they reach.
pub mod amr;
/// OpenID Connect Back-Channel Logout, the provider's side.
pub mod backchannel;
/// A bounded pool for CPU-heavy work (argon2, RSA signing).
pub mod blocking;
/// Short-lived in-memory caches of what every token request reads.
pub mod cache;
/// The realm's catalog: the scopes and resources clients may be granted.
pub mod catalog;
/// What a client registers beyond its core record.
pub mod client_extras;
/// The IdP's settings ([`Config`]), from the environment.
pub mod config;
/// Small cryptographic helpers: random tokens, hashes, sealing, the master key.
pub mod crypto;
/// DPoP (RFC 9449) proofs at the IdP.
pub mod dpop;
/// What can go wrong in a request, and its OAuth answer.
pub mod error;
/// The login flow between `/authorize` and `POST /login`, sealed in the browser.
pub mod flow;
/// Authorization codes and refresh tokens.
pub mod grants;
/// Deleting what can no longer matter, so the grant tables stay bounded.
pub mod housekeeping;
/// The HTTP interface.
pub mod http;
/// Sign-in attempts in flight, reserved on their throttle keys.
pub mod in_flight;
/// Signing keys: generation, sealed storage, rotation, publication.
pub mod keys;
/// The key-encryption key that seals the signing keys at rest.
pub mod master_key;
/// Passkeys (WebAuthn): the relying party, ceremonies and stored credentials.
pub mod passkeys;
/// Human passwords: argon2id hashing.
pub mod password;
/// The realm in PostgreSQL: users, roles, scopes and clients.
pub mod realm;
/// Revocations of access tokens and the revocation stream.
pub mod revocations;
/// The demo realm (`idp seed`).
pub mod seed;
/// SSO sessions.
pub mod sessions;
/// Start-up: [`Application`] for `idp serve`, [`spawn`] for tests.
pub mod startup;
/// What the handlers share.
pub mod state;
/// Brute-force defence: failure counters and lockouts.
pub mod throttle;
/// Building, signing and checking the IdP's JWTs.
pub mod tokens;
/// The TOTP second factor and recovery codes: codes, sealing, replay, rows.
pub mod totp;

pub use config::Config;
pub use master_key::master_key;
pub use startup::{Application, MIGRATOR, Spawned, StartError, build_state, spawn};
