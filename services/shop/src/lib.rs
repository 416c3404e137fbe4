//! shop: the rules the shop's services (order, payment, inventory) share, so
//! that each rule is written once rather than copied into three services.

/// [`cents::Cents`]: an amount of money, never negative.
pub mod cents;
/// The `{sku, quantity}` lines order and inventory exchange.
pub mod lines;
/// [`quantity::Quantity`]: units on a line, 1 to 1000.
pub mod quantity;
/// [`sku::Sku`]: an item's stock-keeping unit.
pub mod sku;
/// [`status::Status`]: life-cycle states stored as words.
pub mod status;
/// Free-text checks (names, descriptions, reasons).
pub mod text;
