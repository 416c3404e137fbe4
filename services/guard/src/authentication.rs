//! Step-up authentication (RFC 9470): what a resource demands of *how* the
//! user signed in, beyond who they are and what they may do.
//!
//! A requirement names an authentication context class (`acr`) and, if it
//! matters how long ago, a `max_age`. A token meets it when its `acr` is at
//! least as strong (a second factor meets a password requirement, never the
//! other way; an `acr` this service does not know meets nothing) and, with a
//! `max_age`, its `auth_time` is that recent (a token without `auth_time`
//! does not meet it). Falling short answers `401` with
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication",
//! acr_values="…", max_age="…"` ([`AuthError::InsufficientAuthentication`]),
//! which tells the client what sign-in to ask the IdP for (`acr_values`,
//! `max_age` at `/authorize`) before trying again with the new token.
//!
//! [`AuthError::InsufficientAuthentication`]: crate::AuthError::InsufficientAuthentication

use std::time::Duration;

use crate::claims::{AccessClaims, acr};

/// How strongly a user must have authenticated, and how recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationRequirement {
    /// The weakest acceptable `acr` (one of [`acr`]'s values).
    pub acr: &'static str,
    /// How long ago the user may have authenticated (`auth_time`) at most.
    pub max_age: Option<Duration>,
}

impl AuthenticationRequirement {
    /// A second factor ([`acr::SECOND_FACTOR`]), shown within `max_age` if given.
    pub fn second_factor(max_age: Option<Duration>) -> Self {
        Self {
            acr: acr::SECOND_FACTOR,
            max_age,
        }
    }

    /// Whether `claims` meet this requirement at `now` (seconds since the
    /// epoch); the challenge to answer with when they do not.
    pub fn check(&self, claims: &AccessClaims, now: i64) -> Result<(), InsufficientAuthentication> {
        let shortfall = |reason| {
            Err(InsufficientAuthentication {
                acr_values: self.acr,
                max_age: self.max_age,
                reason,
            })
        };
        let strength = |value: Option<&str>| match value {
            Some(acr::SECOND_FACTOR) => 2,
            Some(acr::PASSWORD) => 1,
            _ => 0,
        };
        let needed = strength(Some(self.acr)).max(1);
        if strength(claims.acr.as_deref()) < needed {
            return shortfall(Shortfall::Acr);
        }
        if let Some(max_age) = self.max_age {
            let Some(auth_time) = claims.auth_time else {
                return shortfall(Shortfall::NoAuthTime);
            };
            let age = now.saturating_sub(auth_time);
            if age > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX) {
                return shortfall(Shortfall::TooLongAgo);
            }
        }
        Ok(())
    }
}

/// Why a token fell short of an [`AuthenticationRequirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// Its `acr` is weaker than required, unknown or absent.
    Acr,
    /// A `max_age` applies and the token has no `auth_time`.
    NoAuthTime,
    /// The user authenticated longer ago than `max_age`.
    TooLongAgo,
}

/// The RFC 9470 challenge: what sign-in would meet the requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientAuthentication {
    /// The `acr_values` to ask the IdP for.
    pub acr_values: &'static str,
    /// The `max_age` to ask the IdP for.
    pub max_age: Option<Duration>,
    /// What was wrong with the token.
    pub reason: Shortfall,
}

impl InsufficientAuthentication {
    /// What the person is told (`error_description`).
    pub fn description(&self) -> &'static str {
        match self.reason {
            Shortfall::Acr => "a stronger sign-in is required: a second factor",
            Shortfall::NoAuthTime | Shortfall::TooLongAgo => {
                "a recent sign-in is required: sign in again with a second factor"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(acr: Option<&str>, auth_time: Option<i64>) -> AccessClaims {
        let mut c: AccessClaims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": "payment", "client_id": "c", "scope": "",
            "exp": 2, "iat": 1, "nbf": 1, "jti": "j",
        }))
        .unwrap();
        c.acr = acr.map(str::to_owned);
        c.auth_time = auth_time;
        c
    }

    const FIVE_MINUTES: Option<Duration> = Some(Duration::from_secs(300));

    #[test]
    fn a_second_factor_meets_it_and_a_password_does_not() {
        let need = AuthenticationRequirement::second_factor(None);
        assert_eq!(
            need.check(&claims(Some(acr::SECOND_FACTOR), None), 0),
            Ok(())
        );
        for weaker in [
            Some(acr::PASSWORD),
            None,
            Some("urn:someone:else"),
            Some(""),
        ] {
            let refused = need.check(&claims(weaker, Some(0)), 0).unwrap_err();
            assert_eq!(refused.reason, Shortfall::Acr, "{weaker:?}");
            assert_eq!(refused.acr_values, acr::SECOND_FACTOR);
        }
    }

    #[test]
    fn a_password_requirement_is_met_by_either_and_by_nothing_unknown() {
        let need = AuthenticationRequirement {
            acr: acr::PASSWORD,
            max_age: None,
        };
        assert!(need.check(&claims(Some(acr::PASSWORD), None), 0).is_ok());
        assert!(
            need.check(&claims(Some(acr::SECOND_FACTOR), None), 0)
                .is_ok()
        );
        assert!(need.check(&claims(None, None), 0).is_err());
        assert!(need.check(&claims(Some("urn:other"), None), 0).is_err());
    }

    #[test]
    fn max_age_needs_a_recent_auth_time() {
        let need = AuthenticationRequirement::second_factor(FIVE_MINUTES);
        let mfa = |t| claims(Some(acr::SECOND_FACTOR), t);
        assert!(
            need.check(&mfa(Some(10_000)), 10_300).is_ok(),
            "exactly 300 s"
        );
        assert!(
            need.check(&mfa(Some(10_010)), 10_000).is_ok(),
            "a clock ahead"
        );
        let stale = need.check(&mfa(Some(10_000)), 10_301).unwrap_err();
        assert_eq!(stale.reason, Shortfall::TooLongAgo);
        assert_eq!(stale.max_age, FIVE_MINUTES);
        let none = need.check(&mfa(None), 10_000).unwrap_err();
        assert_eq!(none.reason, Shortfall::NoAuthTime);
        // The weaker acr is reported first: stepping up fixes both.
        let both = need.check(&claims(Some(acr::PASSWORD), Some(0)), 10_000);
        assert_eq!(both.unwrap_err().reason, Shortfall::Acr);
    }
}
