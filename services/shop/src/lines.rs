//! Lines of goods (`{"sku", "quantity"}`), as order takes them from its
//! callers and inventory reserves them: one set of rules for both, so an order
//! inventory would refuse is refused before anything is written.

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;
use crate::sku::Sku;

/// Lines per request, at most.
pub const MAX_LINES: usize = 50;

/// One line: `quantity` units of the item `sku`, each parsed by its own type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Why a list of lines is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("1 to {MAX_LINES} lines are needed")]
    Count,
    #[error("each sku may appear on one line only")]
    Repeated,
}

/// Checks the list of `lines` (each line is valid by its types) and puts
/// them in canonical form (sorted by sku), so the same goods are the same
/// request whatever the line order.
pub fn normalise(mut lines: Vec<Line>) -> Result<Vec<Line>, LineError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(LineError::Count);
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
            sku: Sku::try_from(sku.to_owned()).unwrap(),
            quantity: Quantity::try_from(quantity).unwrap(),
        }
    }

    #[test]
    fn lines_are_sorted_by_sku_and_bad_lists_are_refused() {
        let sorted = normalise(vec![line("tee", 1), line("mug", 2)]).unwrap();
        assert_eq!(sorted, [line("mug", 2), line("tee", 1)]);

        assert_eq!(normalise(vec![]), Err(LineError::Count));
        let at_most: Vec<_> = (0..MAX_LINES).map(|i| line(&format!("s{i}"), 1)).collect();
        assert_eq!(normalise(at_most.clone()).map(|l| l.len()), Ok(MAX_LINES));
        let too_many = (0..=MAX_LINES).map(|i| line(&format!("s{i}"), 1)).collect();
        assert_eq!(normalise(too_many), Err(LineError::Count));
        assert_eq!(
            normalise(vec![line("mug", 1), line("tee", 1), line("mug", 2)]),
            Err(LineError::Repeated)
        );
    }

    #[test]
    fn a_line_with_a_bad_sku_or_quantity_does_not_parse() {
        let parse = |json: &str| serde_json::from_str::<Line>(json).map_err(|e| e.to_string());
        assert_eq!(
            parse(r#"{"sku": "mug", "quantity": 3}"#),
            Ok(line("mug", 3))
        );
        let bad_sku = parse(r#"{"sku": "-bad", "quantity": 1}"#).unwrap_err();
        assert!(bad_sku.starts_with(r#"invalid sku "-bad""#), "{bad_sku}");
        for quantity in [0, -3, crate::quantity::MAX_QUANTITY + 1] {
            let json = format!(r#"{{"sku": "mug", "quantity": {quantity}}}"#);
            let refused = parse(&json).unwrap_err();
            assert!(
                refused.starts_with("quantity must be 1 to 1000"),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn refused_lines_answer_422_invalid_request_with_the_reason() {
        use axum::response::IntoResponse;
        let error: platform::ApiError<std::convert::Infallible> = LineError::Count.into();
        let description = error.to_string();
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), 422);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], description);
        assert_eq!(description, LineError::Count.to_string());
    }
}
