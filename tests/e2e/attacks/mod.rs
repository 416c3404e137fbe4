//! The attack suite over the real processes: forged tokens against every
//! validator, OAuth attacks, brute force and denial of service against the IdP.

mod brute_force;
mod denial;
mod oauth;
mod properties;
mod tokens;
