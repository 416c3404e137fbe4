//! Order's own types: the states of an order. Skus, quantities and money are
//! the shop's ([`shop::sku::Sku`], [`shop::quantity::Quantity`]).

use serde::{Deserialize, Serialize};
use shop::status::Status;

/// Where an order is in its life: `pending` (being placed), `paid`, or
/// `failed` (left unfinished by a crash; see `expiry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Paid,
    Failed,
}

impl Status for OrderStatus {
    const ALL: &'static [Self] = &[Self::Pending, Self::Paid, Self::Failed];

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shows_the_word_the_database_stores() {
        for &status in OrderStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(OrderStatus::parse(status.as_str()).unwrap(), status);
        }
    }
}
