//! The IdP's integration tests: a real server on an ephemeral port, a real
//! database per test, real HTTP. Tokens are verified with the keys fetched
//! from `/jwks.json`, never with the signing key in memory.

mod helpers;

mod account;
mod admin;
mod authorize;
mod backchannel;
mod cli;
mod client_authentication;
mod cors;
mod discovery;
mod dpop;
mod exchange;
mod exchange_revocation;
mod flood;
mod housekeeping;
mod keys;
mod login;
mod logout;
mod passkeys;
mod realm;
mod refresh_tokens;
mod revocations;
mod revoke;
mod second_factor;
mod second_factor_required;
mod spec;
mod throttle;
mod token;
mod userinfo;
