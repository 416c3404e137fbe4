//! shop: the rules the shop's services (order, payment, inventory) share, so
//! that each rule is written once rather than copied into three services.

/// The `{sku, quantity}` lines order and inventory exchange.
pub mod lines;
/// Free-text checks (names, descriptions, reasons).
pub mod text;
