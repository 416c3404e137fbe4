//! Feature `bench-insecure-no-auth`: **token validation switched off**, for
//! the auth-off baseline of `make bench` (the chain's cost of relay and
//! validation is measured against it) and nothing else.
//!
//! With it, [`Guard`](crate::Guard) reads the claims of any bearer token
//! without checking its signature, issuer, audience, expiry or revocation, and
//! without the verified-token cache. It cannot be turned on by accident: the
//! feature alone does not compile; the build must also set
//! `BATON_BENCH_INSECURE_NO_AUTH=1`, which only `make bench` does, into its own
//! target directory. Every process built with it says so loudly at its first request.

use std::sync::{Arc, Once};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::claims::AccessClaims;
use crate::error::{AuthError, TokenError};
use crate::principal::{Principal, Verified};
use platform::trace::TraceContext;

const _: () = assert!(
    option_env!("BATON_BENCH_INSECURE_NO_AUTH").is_some(),
    "guard's feature bench-insecure-no-auth switches token validation OFF; it is for `make bench` only, \
     which builds it with BATON_BENCH_INSECURE_NO_AUTH=1 into a separate target directory"
);

/// The caller named by `token`'s claims, unverified.
pub(crate) fn principal(token: &str, trace: TraceContext) -> Result<Principal, AuthError> {
    static WARN: Once = Once::new();
    WARN.call_once(|| {
        tracing::error!(
            "TOKEN VALIDATION IS OFF (bench-insecure-no-auth build): never deploy this binary"
        );
    });
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let mut claims: AccessClaims =
        serde_json::from_slice(&json).map_err(|_| TokenError::InvalidClaims)?;
    // No DPoP binding either: the token passes as if unbound (relayed as configured).
    claims.cnf = None;
    Ok(Principal::new(
        Arc::new(Verified {
            claims,
            token: Arc::from(token),
            kid: Box::from(""),
        }),
        None,
        trace,
    ))
}
