//! The order service over real HTTP, with inventory and payment running as
//! real servers beside it, real PostgreSQL, and a real token issuer (guard's
//! test issuer serves its JWKS over HTTP).

mod failures;
mod helpers;
mod orders;
