//! Pending orders expire. An order is `pending` only while `POST /orders`
//! runs (a few seconds: three relay calls); one still pending after
//! `ORDER_PENDING_TTL_SECS` was left by a crash mid-order. [`sweep`] marks such
//! orders `failed`, audited as `order.expire` by the order service itself.
//!
//! Their stock comes back on its own: inventory expires held reservations
//! (`INVENTORY_RESERVATION_TTL_SECS`). The order is kept rather than deleted:
//! a retry with its `Idempotency-Key` is refused (409 `order_failed`) instead of
//! placing it again, and should the crash have come after the charge, the
//! failed order and payment's charge reference `order:<id>` let an operator
//! refund it (the service has no token of its own to do so).

use std::time::Duration;

use guard::audit::Initiator;
use sqlx::PgPool;

use crate::{SERVICE, store};

/// Default `ORDER_PENDING_TTL_SECS`: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// The shortest TTL accepted (an order in flight must never look stale).
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Marks the orders pending for longer than `ttl` failed; returns how many.
pub async fn fail_stale(pool: &PgPool, ttl: Duration) -> Result<u64, sqlx::Error> {
    store::fail_pending_older_than(pool, &Initiator::service(SERVICE), ttl).await
}

/// Fails stale pending orders every quarter of `ttl` (at most every minute),
/// for as long as the process runs.
pub async fn sweep(pool: PgPool, ttl: Duration) {
    let period = (ttl / 4).min(Duration::from_secs(60));
    platform::db::every(period, "stale pending orders failed", move || {
        let pool = pool.clone();
        async move { fail_stale(&pool, ttl).await }
    })
    .await
}
