//! Held reservations expire. A reservation is normally committed (its order
//! was paid) or released (its order failed) within seconds; one still `held`
//! after `INVENTORY_RESERVATION_TTL_SECS` was left behind — the order service
//! crashed mid-order, or its release never arrived — and would hold its stock
//! forever. [`sweep`] gives such stock back periodically, audited as
//! `reservation.expire` by the inventory service itself.
//!
//! Expired and released are the same state: the owner releasing it later gets
//! the usual idempotent answer, committing it is refused (409
//! `reservation_released`), so a very late order cannot sell stock it no
//! longer holds. The TTL must therefore exceed the longest order (three relay
//! calls); its minimum is a minute.

use std::time::Duration;

use guard::audit::Initiator;
use sqlx::PgPool;

use crate::SERVICE;
use crate::http::reservations::give_back;
use crate::store;

/// Default `INVENTORY_RESERVATION_TTL_SECS`: 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// The shortest TTL accepted.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Releases every reservation held for longer than `ttl`, one transaction each
/// (a reservation being committed or released right now is skipped, not
/// waited for); returns how many.
pub async fn release_expired(pool: &PgPool, ttl: Duration) -> Result<u64, sqlx::Error> {
    let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let who = Initiator::service(SERVICE);
    let mut released = 0;
    loop {
        let mut tx = pool.begin().await?;
        let Some(id) = store::lock_expired(&mut tx, seconds).await? else {
            return Ok(released);
        };
        give_back(&mut tx, &who, id, "reservation.expire").await?;
        tx.commit().await?;
        released += 1;
    }
}

/// Releases expired reservations every quarter of `ttl` (at most every
/// minute), for as long as the process runs.
pub async fn sweep(pool: PgPool, ttl: Duration) {
    let period = (ttl / 4).min(Duration::from_secs(60));
    platform::db::every(period, "expired reservations released", move || {
        let pool = pool.clone();
        async move { release_expired(&pool, ttl).await }
    })
    .await
}
