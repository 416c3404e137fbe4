//! guard's integration tests: real HTTP (a real test issuer serving discovery
//! and JWKS, real axum servers, reqwest), real keys, real PostgreSQL, no mocks.

mod audiences;
mod db;
mod dpop;
mod exchange;
mod extractor;
mod health;
mod helpers;
mod id_token;
mod jwks;
mod relay;
mod revocations;
mod server;
mod validation;
