//! guard: the library every Baton service uses to validate and relay access
//! tokens — "authenticate once, validate everywhere" — and what is about the
//! caller's token in a resource server: the audit trail and the "what I
//! validated" hop record. The plumbing beyond tokens (middleware stack,
//! database start-up, telemetry, metrics, health, `ApiError`) is `platform`'s.
//!
//! # Using it in a service
//!
//! ```ignore
//! use guard::{Guard, GuardConfig, Principal, RelayClient, require_all, Requirement};
//!
//! #[derive(Clone, axum::extract::FromRef)]
//! struct AppState { guard: Guard, relay: guard::relay::Upstream, db: PgPool }
//!
//! let guard = Guard::try_new(GuardConfig::from_env("inventory")?)?; // never waits for the IdP
//! let api = Router::new()
//!     .route("/items/{sku}", put(update_item).route_layer(require_all([
//!         Requirement::role("admin"),
//!         Requirement::scope("inventory:write"),
//!     ])))
//!     .route("/items", get(list_items))
//!     .layer(guard.layer()); // lets the route guards find the Guard
//! let app = api
//!     .merge(platform::health::Readiness::new().database(db.clone()).jwks(&guard).router())
//!     .with_state(state);
//!
//! async fn list_items(caller: Principal, State(db): State<PgPool>) -> Result<Json<..>, AppError> {
//!     caller.require_scope("inventory:read")?; // AuthError answers 403 by itself
//!     ...
//! }
//! ```
//!
//! # What is checked (every rule on, options can only narrow)
//!
//! Size ≤ 8 KiB; `alg` from the allow-list
//! (never `none`, never HS*, must match the key); `typ` `at+jwt`; `kid` known
//! (unknown → one rate-limited JWKS refetch); no `crit`, `jku`, `x5u`, `jwk`,
//! `x5c`; signature; exact `iss`; `aud` contains this service; `exp`, `nbf`,
//! `iat` with leeway; `sub`, `jti`, `client_id` present; not revoked. A
//! DPoP-bound token (`cnf.jkt`) only as `Authorization: DPoP` with a valid
//! proof of its key for this very request ([`dpop`]); never as `Bearer`.
//!
//! # Configuration
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `GUARD_ISSUER` | `http://localhost:9000` | expected `iss`; discovery at `<issuer>/.well-known/openid-configuration` |
//! | `GUARD_ALGORITHMS` | `RS256,ES256,EdDSA` | accepted algorithms (asymmetric only) |
//! | `GUARD_LEEWAY_SECS` | `30` | clock skew on `exp`/`nbf`/`iat` (≤ 300) |
//! | `GUARD_JWKS_REFETCH_SECS` | `5` | minimum interval between refetches caused by unknown `kid`s |
//! | `GUARD_JWKS_URI` | from discovery | JWKS URL override |
//! | `GUARD_CACHE_CAPACITY` | `10000` | verified tokens kept in memory |
//! | `GUARD_REVOCATION_STREAM_URL` | `<issuer>/revocations/stream` | the IdP's revocation stream (SSE), see [`subscriber`]; `off` disables it |
//! | `GUARD_CLIENT_ID` | the audience | the client the stream is read as (scope `revocations:read`), and tokens exchanged as ([`exchange`]) |
//! | `GUARD_CLIENT_SECRET` | `<client id>-dev-secret` (warns) | its secret |
//! | `GUARD_REVOCATION_MAX_STALENESS_SECS` | `30` | unconfirmed this long, the stream counts as stale |
//! | `GUARD_REVOCATION_STALE_POLICY` | `serve` | `serve` or `refuse` tokens while stale, see [`StalePolicy`] |
//! | `GUARD_MAX_TOKEN_LIFETIME_SECS` | `3600` | longest `exp - iat` accepted; bounds how long revocations are kept |
//! | `GUARD_REVOCATION_CAPACITY` | `1000000` | revocations kept at once, see [`revocation`] |
//! | `GUARD_PUBLIC_URL` | `http://` + the request's `Host` | the URL callers reach this service at: DPoP proofs' `htu` is it + the path |
//! | `GUARD_DPOP_REPLAY_CAPACITY` | `100000` | DPoP proofs remembered against replay, see [`dpop::ReplayCache`] |
//!
//! # Modules
//!
//! * [`Guard`] — validation, JWKS cache, verified-token cache, revocation;
//!   [`Guard::for_audience`] — more audiences on the same caches and stream.
//! * [`id_token`] — [`IdTokenVerifier`]: OpenID Connect ID tokens for a
//!   client, verified with a guard's key cache (`typ` never `at+jwt`, exact
//!   `iss`, `aud`/`azp`, `exp`/`iat`, `nonce`, `at_hash`).
//! * [`dpop`] — DPoP proofs (RFC 9449): verification, replay cache, a client key.
//! * [`logout_token`] — [`LogoutTokenVerifier`]: back-channel logout tokens
//!   for a client (`typ` `logout+jwt`, `events`, no `nonce`, `sub`/`sid`).
//! * [`Principal`] — the caller (extractor); [`Requirement`] — what a caller
//!   must have; [`require_role`] & co. (module `require`) — route layers.
//! * [`authentication`] — [`AuthenticationRequirement`]: step-up (RFC 9470),
//!   how strongly (`acr`) and how recently (`auth_time`) the user signed in;
//!   `Principal::require_authentication`.
//! * [`AuthError`] — 400/401/403/503 with RFC 6750 `WWW-Authenticate` (and
//!   RFC 9470's `insufficient_user_authentication`).
//! * [`relay`] — [`RelayClient`]: calls other services with the caller's token
//!   and trace; [`RelayError`] maps their answers.
//! * [`exchange`] — [`Exchanger`]: per-hop tokens by RFC 8693 token exchange
//!   (`aud` = the next service alone, `act` = this service), cached per
//!   (subject, audience), single-flight; [`RelayMode`] — exchange or plain relay.
//! * [`monitoring`] — the guard's readiness checks (`jwks`, `revocations`)
//!   and gauges on platform's `Readiness` and `Exporter`; guard's own series.
//! * [`config::GuardArgs`] — the `GUARD_*` variables, a clap group each part flattens into its `Config`.
//!
//! For the resource servers (order, payment, inventory):
//!
//! * [`resource_server`] — platform's middleware stack with `GET /audit`,
//!   `/healthz` + `/readyz` (database, keys, revocations), and `GET /metrics`.
//! * [`audit`] — one audit row per state change, `GET /audit` for admins.
//! * [`hop`] — the identity a service validated, returned to its caller.
//! * [`AuthError`] converts into `platform::ApiError` and keeps its own answer.
//! * `testing` (feature `test-issuer`) — a real test issuer over HTTP with
//!   real keys, that mints valid and forged tokens.

pub mod audit;
pub mod authentication;
mod cache;
pub mod claims;
pub mod client_auth;
pub mod config;
pub mod derivation;
pub mod dpop;
mod error;
pub mod exchange;
mod extract;
pub mod hop;
pub mod id_token;
#[cfg(feature = "bench-insecure-no-auth")]
mod insecure;
mod jwks;
pub mod logout_token;
pub mod monitoring;
mod principal;
pub mod relay;
pub mod require;
pub mod requirements;
pub mod resource_server;
pub mod revocation;
pub mod subscriber;
#[cfg(feature = "test-issuer")]
pub mod testing;
mod validate;
mod validator;

pub use authentication::{AuthenticationRequirement, StepUpChallenge};
pub use claims::unix_now;
pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, Actor};
pub use config::{ClientCredentials, GuardArgs, GuardConfig, StalePolicy};
pub use derivation::Derivation;
pub use error::{AuthError, TokenError, bearer_challenge, dpop_challenge};
pub use exchange::{ExchangeError, Exchanger, RelayMode, Subject};
pub use id_token::{IdTokenClaims, IdTokenError, IdTokenVerifier};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JwksState, JwksStatus};
pub use logout_token::{LogoutClaims, LogoutTokenError, LogoutTokenVerifier};
pub use principal::Principal;
pub use relay::{RelayClient, RelayContext, RelayError, Upstream};
pub use require::{
    require, require_all, require_any, require_any_role, require_any_scope, require_role,
    require_scope,
};
pub use requirements::Requirement;
pub use revocation::{DenylistStatus, Revocation};
pub use subscriber::RevocationStatus;
pub use validate::{BuildError, Guard, Incoming};
