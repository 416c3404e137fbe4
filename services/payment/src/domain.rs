//! Payment's own types, parsed once: the amount of a charge and the states of
//! a charge.

use serde::{Deserialize, Serialize};
use shop::status::Status;

/// The largest single charge accepted at all (ten million cents).
pub const MAX_AMOUNT_CENTS: i64 = 10_000_000;

/// What a charge may be for: 1 to [`MAX_AMOUNT_CENTS`] cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct ChargeAmount(i64);

/// An amount no charge may be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount_cents must be 1 to {MAX_AMOUNT_CENTS}")]
pub struct InvalidAmount;

impl ChargeAmount {
    pub fn cents(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for ChargeAmount {
    type Error = InvalidAmount;

    fn try_from(cents: i64) -> Result<Self, InvalidAmount> {
        if (1..=MAX_AMOUNT_CENTS).contains(&cents) {
            Ok(Self(cents))
        } else {
            Err(InvalidAmount)
        }
    }
}

impl From<ChargeAmount> for i64 {
    fn from(amount: ChargeAmount) -> Self {
        amount.0
    }
}

/// What became of a charge: `succeeded`, or `declined` by the processor's
/// rules (kept, with its reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargeStatus {
    Succeeded,
    Declined,
}

impl Status for ChargeStatus {
    const ALL: &'static [Self] = &[Self::Succeeded, Self::Declined];

    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_bounds_are_one_cent_and_the_maximum() {
        for good in [1, 2, MAX_AMOUNT_CENTS - 1, MAX_AMOUNT_CENTS] {
            assert_eq!(ChargeAmount::try_from(good).map(i64::from), Ok(good));
        }
        for bad in [i64::MIN, -1, 0, MAX_AMOUNT_CENTS + 1, i64::MAX] {
            assert_eq!(ChargeAmount::try_from(bad), Err(InvalidAmount), "{bad}");
        }
        assert_eq!(
            InvalidAmount.to_string(),
            "amount_cents must be 1 to 10000000"
        );
    }

    #[test]
    fn json_shows_the_status_word_the_database_stores() {
        for &status in ChargeStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(ChargeStatus::parse(status.as_str()).unwrap(), status);
        }
    }

    proptest! {
        #[test]
        fn amounts_in_bounds_round_trip_through_json(n in 1..=MAX_AMOUNT_CENTS) {
            let json = serde_json::to_string(&ChargeAmount::try_from(n).unwrap()).unwrap();
            prop_assert_eq!(serde_json::from_str::<ChargeAmount>(&json).unwrap().cents(), n);
        }

        #[test]
        fn amounts_out_of_bounds_are_refused_with_the_rule(
            n in prop_oneof![i64::MIN..1, (MAX_AMOUNT_CENTS + 1)..=i64::MAX],
        ) {
            let refused = serde_json::from_str::<ChargeAmount>(&n.to_string()).unwrap_err();
            prop_assert!(refused.to_string().starts_with("amount_cents must be 1 to 10000000"));
        }
    }
}
