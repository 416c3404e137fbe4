//! How a sign-in was made: the methods (RFC 8176 `amr`) a session, its codes
//! and refresh tokens carry into every token, and the `acr` they reach
//! ([`guard::claims::acr`]).

/// The password alone.
pub const PASSWORD: &[&str] = &["pwd"];
/// The password and a code of an authenticator app (or a recovery code).
pub const PASSWORD_AND_CODE: &[&str] = &["pwd", "otp", "mfa"];
/// A passkey alone: a key held on a device (`hwk`), unlocked by a PIN or a
/// biometric (user verification, required of every passkey ceremony), so two
/// factors.
pub const PASSKEY: &[&str] = &["hwk", "mfa"];
/// The password, then a passkey as the second factor.
pub const PASSWORD_AND_PASSKEY: &[&str] = &["pwd", "hwk", "mfa"];

/// The `acr` a sign-in with methods `amr` reached.
pub fn acr_of(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == "mfa") {
        guard::claims::acr::SECOND_FACTOR
    } else {
        guard::claims::acr::PASSWORD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_follows_the_methods() {
        let owned = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(acr_of(&owned(PASSWORD)), guard::claims::acr::PASSWORD);
        for mfa in [PASSWORD_AND_CODE, PASSKEY, PASSWORD_AND_PASSKEY] {
            assert_eq!(acr_of(&owned(mfa)), guard::claims::acr::SECOND_FACTOR);
        }
    }
}
