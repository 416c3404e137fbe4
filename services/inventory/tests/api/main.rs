//! The inventory service over real HTTP, with a real database and a real
//! token issuer (guard's test issuer serves its JWKS over HTTP).

mod audit;
mod helpers;
mod items;
mod reservations;
