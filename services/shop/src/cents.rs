//! [`Cents`]: an amount of money in cents, never negative, parsed once at
//! the edge. Each service's own limits (a charge's maximum, a refund's
//! remainder) are its rules on top of this type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative amount in cents. Decoding one from the database trusts it
/// (every money column has a `>= 0` check constraint).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(try_from = "i64", into = "i64")]
#[sqlx(transparent)]
pub struct Cents(i64);

/// A negative amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount in cents cannot be negative")]
pub struct NegativeCents;

impl Cents {
    pub const ZERO: Self = Self(0);

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Cents {
    type Error = NegativeCents;

    fn try_from(cents: i64) -> Result<Self, NegativeCents> {
        if cents >= 0 {
            Ok(Self(cents))
        } else {
            Err(NegativeCents)
        }
    }
}

impl From<Cents> for i64 {
    fn from(cents: Cents) -> Self {
        cents.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn zero_is_money_and_minus_one_is_not() {
        assert_eq!(Cents::try_from(0), Ok(Cents::ZERO));
        assert_eq!(Cents::try_from(i64::MAX).map(i64::from), Ok(i64::MAX));
        assert_eq!(Cents::try_from(-1), Err(NegativeCents));
        assert_eq!(Cents::try_from(i64::MIN), Err(NegativeCents));
    }

    proptest! {
        #[test]
        fn amounts_round_trip_through_json(n in 0..=i64::MAX) {
            let json = serde_json::to_string(&Cents::try_from(n).unwrap()).unwrap();
            prop_assert_eq!(serde_json::from_str::<Cents>(&json).unwrap().get(), n);
        }

        #[test]
        fn negative_amounts_are_refused(n in i64::MIN..0) {
            let refused = serde_json::from_str::<Cents>(&n.to_string()).unwrap_err();
            prop_assert!(refused.to_string().starts_with("an amount in cents cannot be negative"));
        }
    }
}
