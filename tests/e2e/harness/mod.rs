//! The end-to-end harness: the real stack ([`stack::Stack`]) and its users
//! ([`client`]).

pub mod client;
pub mod html;
pub mod stack;

pub use client::{
    Browser, User, authorize, call_with_token, cli_key, cli_proof, cli_refresh, cli_token,
    cli_tokens, gateway_tokens,
};
pub use stack::{Options, Stack};
