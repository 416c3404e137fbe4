//! The payment service over real HTTP, with a real database and a real
//! token issuer (guard's test issuer serves its JWKS over HTTP).

mod charges;
mod helpers;
mod refunds;
mod step_up;
