//! [`Quantity`]: units of one item on a line, 1 to [`MAX_QUANTITY`], parsed
//! once at the edge.

use serde::{Deserialize, Serialize};

/// Units per line, at most.
pub const MAX_QUANTITY: i32 = 1000;

/// 1 to [`MAX_QUANTITY`] units. Decoding one from the database trusts it
/// (the reservation and order lines were written from parsed values).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(try_from = "i32", into = "i32")]
#[sqlx(transparent)]
pub struct Quantity(i32);

/// A number of units out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quantity must be 1 to {MAX_QUANTITY}")]
pub struct InvalidQuantity;

impl Quantity {
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i32> for Quantity {
    type Error = InvalidQuantity;

    fn try_from(quantity: i32) -> Result<Self, InvalidQuantity> {
        if (1..=MAX_QUANTITY).contains(&quantity) {
            Ok(Self(quantity))
        } else {
            Err(InvalidQuantity)
        }
    }
}

impl From<Quantity> for i32 {
    fn from(quantity: Quantity) -> Self {
        quantity.0
    }
}

impl From<Quantity> for i64 {
    fn from(quantity: Quantity) -> Self {
        quantity.0.into()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_bounds_are_one_and_max_quantity() {
        for good in [1, 2, MAX_QUANTITY - 1, MAX_QUANTITY] {
            assert_eq!(Quantity::try_from(good).map(i32::from), Ok(good));
        }
        for bad in [i32::MIN, -1, 0, MAX_QUANTITY + 1, i32::MAX] {
            assert_eq!(Quantity::try_from(bad), Err(InvalidQuantity), "{bad}");
        }
        assert_eq!(InvalidQuantity.to_string(), "quantity must be 1 to 1000");
    }

    proptest! {
        #[test]
        fn quantities_in_bounds_round_trip_through_json(n in 1..=MAX_QUANTITY) {
            let json = serde_json::to_string(&Quantity::try_from(n).unwrap()).unwrap();
            prop_assert_eq!(&json, &n.to_string());
            prop_assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap().get(), n);
        }

        #[test]
        fn quantities_out_of_bounds_are_refused_with_the_rule(
            n in prop_oneof![i32::MIN..1, (MAX_QUANTITY + 1)..=i32::MAX],
        ) {
            prop_assert_eq!(Quantity::try_from(n), Err(InvalidQuantity));
            let refused = serde_json::from_str::<Quantity>(&n.to_string()).unwrap_err();
            prop_assert!(refused.to_string().starts_with("quantity must be 1 to 1000"));
        }
    }
}
