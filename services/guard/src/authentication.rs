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

/// An RFC 9470 challenge as a client reads it from a resource's
/// `WWW-Authenticate` answer: the sign-in to ask the IdP for before trying
/// again (what the gateway turns into a step-up sign-in for a browser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpChallenge {
    /// Space-separated `acr` values, as the resource sent them.
    pub acr_values: String,
    pub max_age: Option<u32>,
}

impl StepUpChallenge {
    /// The challenge in a `WWW-Authenticate` value, if it is a `Bearer` (or
    /// `DPoP`) challenge with `error="insufficient_user_authentication"` and
    /// plain `acr_values`; `None` for anything else. Hand-written: the auth
    /// parameters of one challenge (RFC 9110 §11.2) are a short grammar, and
    /// no maintained crate reads them.
    pub fn from_www_authenticate(value: &str) -> Option<Self> {
        let (scheme, params) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("dpop") {
            return None;
        }
        let params = auth_params(params)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if get("error") != Some("insufficient_user_authentication") {
            return None;
        }
        Self::new(get("acr_values")?, get("max_age"))
    }

    /// A challenge of `acr_values` (at most 256 characters of `[A-Za-z0-9:._-]`
    /// and spaces) and `max_age` (seconds, if given); `None` when either is
    /// not that.
    pub fn new(acr_values: &str, max_age: Option<&str>) -> Option<Self> {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | ' ');
        if acr_values.trim().is_empty() || acr_values.len() > 256 || !acr_values.chars().all(plain)
        {
            return None;
        }
        let max_age = match max_age {
            None => None,
            Some(v) => Some(v.parse().ok()?),
        };
        Some(Self {
            acr_values: acr_values.to_owned(),
            max_age,
        })
    }
}

/// `name=value` or `name="quoted \" value"` pairs separated by commas;
/// `None` when the text is not that.
fn auth_params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || name.contains([' ', ',', '"']) {
            return None;
        }
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((name.to_owned(), value));
        let tail = tail.trim_start();
        rest = match tail.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if tail.is_empty() => tail,
            None => return None,
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_challenge_is_read_from_what_guard_answers() {
        let header = "Bearer realm=\"baton\", error=\"insufficient_user_authentication\", \
             error_description=\"a stronger sign-in, \\\"please\\\"\", \
             acr_values=\"urn:baton:acr:mfa\", max_age=\"300\"";
        assert_eq!(
            StepUpChallenge::from_www_authenticate(header),
            Some(StepUpChallenge {
                acr_values: acr::SECOND_FACTOR.to_owned(),
                max_age: Some(300),
            })
        );
        let no_age = "DPoP error=insufficient_user_authentication, acr_values=\"a b\"";
        assert_eq!(
            StepUpChallenge::from_www_authenticate(no_age)
                .unwrap()
                .max_age,
            None
        );
        for other in [
            "Bearer realm=\"baton\", error=\"invalid_token\"",
            "Basic realm=\"x\"",
            "Bearer error=\"insufficient_user_authentication\"",
            "Bearer error=\"insufficient_user_authentication\", acr_values=\"<script>\"",
            "Bearer error=\"insufficient_user_authentication\", acr_values=\"a\", max_age=\"-1\"",
            "Bearer error=\"insufficient_user_authentication, acr_values=\"a\"",
            "",
        ] {
            assert_eq!(
                StepUpChallenge::from_www_authenticate(other),
                None,
                "{other}"
            );
        }
    }

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
