//! The attack suite over the real processes: forged tokens against every
//! validator, OAuth attacks and brute force against the IdP.

mod brute_force;
mod oauth;
mod properties;
mod tokens;
