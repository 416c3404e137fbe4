//! [`Sku`]: an item's stock-keeping unit, parsed once at the edge so that a
//! value of the type is a valid sku everywhere after.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Characters in a sku, at most.
pub const MAX_SKU_LEN: usize = 64;

/// 1 to 64 characters: a letter or digit, then letters, digits, `.`, `_` or
/// `-` (the same rule as inventory's `items.sku` check constraint, which is
/// why decoding one from the database trusts it).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(try_from = "String", into = "String")]
#[sqlx(transparent)]
pub struct Sku(String);

/// A string that is not a sku; says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sku {0:?}")]
pub struct InvalidSku(pub String);

impl Sku {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = InvalidSku;

    fn try_from(sku: String) -> Result<Self, InvalidSku> {
        let mut chars = sku.chars();
        let valid = sku.len() <= MAX_SKU_LEN
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(sku))
        } else {
            Err(InvalidSku(sku))
        }
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> Self {
        sku.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refused skus answer like any field out of bounds: 422 `invalid_request`.
impl<E> From<InvalidSku> for platform::ApiError<E> {
    fn from(e: InvalidSku) -> Self {
        Self::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sku(s: &str) -> Result<Sku, InvalidSku> {
        Sku::try_from(s.to_owned())
    }

    #[test]
    fn skus_follow_the_items_table_rule() {
        for good in ["baton-mug", "A", "x.y_z-1", &"a".repeat(MAX_SKU_LEN)] {
            assert_eq!(sku(good).map(String::from).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "-mug",
            ".mug",
            "mug!",
            "mü",
            "a b",
            &"a".repeat(MAX_SKU_LEN + 1),
        ] {
            assert_eq!(sku(bad), Err(InvalidSku(bad.into())), "{bad}");
        }
        assert_eq!(
            sku("-mug").unwrap_err().to_string(),
            r#"invalid sku "-mug""#
        );
    }

    #[test]
    fn json_skus_are_parsed_and_written_back_as_strings() {
        let parsed: Sku = serde_json::from_str(r#""baton-mug""#).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), r#""baton-mug""#);
        let refused = serde_json::from_str::<Sku>(r#""mug!""#).unwrap_err();
        assert!(
            refused.to_string().starts_with(r#"invalid sku "mug!""#),
            "{refused}"
        );
    }

    proptest! {
        #[test]
        fn valid_skus_round_trip(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
            let parsed = sku(&s).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
            let json = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::from_str::<Sku>(&json).unwrap(), parsed);
        }

        #[test]
        fn skus_with_a_bad_first_character_are_refused(
            first in "[^A-Za-z0-9]",
            rest in "[A-Za-z0-9]{0,10}",
        ) {
            let s = format!("{first}{rest}");
            prop_assert_eq!(sku(&s), Err(InvalidSku(s.clone())));
        }

        #[test]
        fn skus_longer_than_64_are_refused(s in "[a-z0-9]{65,100}") {
            prop_assert_eq!(sku(&s).unwrap_err().to_string(), format!("invalid sku {s:?}"));
        }
    }
}
