//! Lines of goods (`{"sku", "quantity"}`), as order takes them from its
//! callers and inventory reserves them: one set of rules for both, so an order
//! inventory would refuse is refused before anything is written.

use serde::{Deserialize, Serialize};

/// Lines per request, at most.
pub const MAX_LINES: usize = 50;
/// Units per line, at most.
pub const MAX_QUANTITY: i32 = 1000;

/// One line: `quantity` units of the item `sku`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: String,
    pub quantity: i32,
}

/// Why a list of lines is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("1 to {MAX_LINES} lines are needed")]
    Count,
    #[error("invalid sku {0:?}")]
    Sku(String),
    #[error("quantity must be 1 to {MAX_QUANTITY}")]
    Quantity,
    #[error("each sku may appear on one line only")]
    Repeated,
}

/// A sku is 1 to 64 characters: a letter or digit, then letters, digits, `.`,
/// `_` or `-` (the same rule as inventory's `items.sku` check constraint).
pub fn is_sku(sku: &str) -> bool {
    let mut chars = sku.chars();
    sku.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks `lines` and puts them in canonical form (sorted by sku), so the same
/// goods are the same request whatever the line order.
pub fn normalise(mut lines: Vec<Line>) -> Result<Vec<Line>, LineError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(LineError::Count);
    }
    for line in &lines {
        if !is_sku(&line.sku) {
            return Err(LineError::Sku(line.sku.clone()));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(LineError::Quantity);
        }
    }
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    if lines.windows(2).any(|w| w[0].sku == w[1].sku) {
        return Err(LineError::Repeated);
    }
    Ok(lines)
}

/// Refused lines answer like any field out of bounds: 422 `invalid_request`.
impl<E> From<LineError> for platform::ApiError<E> {
    fn from(e: LineError) -> Self {
        Self::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32) -> Line {
        Line {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn skus_follow_the_items_table_rule() {
        for good in ["baton-mug", "A", "x.y_z-1", &"a".repeat(64)] {
            assert!(is_sku(good), "{good}");
        }
        for bad in ["", "-mug", ".mug", "mug!", "mü", "a b", &"a".repeat(65)] {
            assert!(!is_sku(bad), "{bad}");
        }
    }

    #[test]
    fn lines_are_sorted_by_sku_and_bad_lists_are_refused() {
        let sorted = normalise(vec![line("tee", 1), line("mug", 2)]).unwrap();
        assert_eq!(sorted, [line("mug", 2), line("tee", 1)]);

        assert_eq!(normalise(vec![]), Err(LineError::Count));
        let too_many = (0..=MAX_LINES).map(|i| line(&format!("s{i}"), 1)).collect();
        assert_eq!(normalise(too_many), Err(LineError::Count));
        assert_eq!(
            normalise(vec![line("-bad", 1)]),
            Err(LineError::Sku("-bad".into()))
        );
        for quantity in [0, -3, MAX_QUANTITY + 1] {
            assert_eq!(
                normalise(vec![line("mug", quantity)]),
                Err(LineError::Quantity)
            );
        }
        assert_eq!(
            normalise(vec![line("mug", 1), line("tee", 1), line("mug", 2)]),
            Err(LineError::Repeated)
        );
    }

    #[tokio::test]
    async fn refused_lines_answer_422_invalid_request_with_the_reason() {
        use axum::response::IntoResponse;
        let error: platform::ApiError<std::convert::Infallible> = LineError::Quantity.into();
        let description = error.to_string();
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), 422);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], description);
        assert_eq!(description, LineError::Quantity.to_string());
    }
}
