//! Inventory's own types: the states of a reservation. Skus, quantities and
//! money are the shop's ([`shop::sku::Sku`], [`shop::quantity::Quantity`],
//! [`shop::cents::Cents`]).

use serde::{Deserialize, Serialize};
use shop::status::Status;

/// Where a reservation is in its life: `held` (stock off the shelf),
/// `committed` (sold to a paid order) or `released` (stock given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    Held,
    Committed,
    Released,
}

impl Status for ReservationStatus {
    const ALL: &'static [Self] = &[Self::Held, Self::Committed, Self::Released];

    fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Committed => "committed",
            Self::Released => "released",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shows_the_word_the_database_stores() {
        for &status in ReservationStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(ReservationStatus::parse(status.as_str()).unwrap(), status);
        }
    }
}
