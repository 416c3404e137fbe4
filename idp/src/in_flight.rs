//! Sign-in attempts reserve their place on their throttle keys (account name,
//! address) *before* the password is hashed, so concurrency cannot exceed a
//! key's limit: 100 wrong passwords sent at once from one address used to all
//! pass the lock-out check before the first failure was counted.
//!
//! A key admits an attempt when it is not locked and its attempts in flight
//! stay within what is left of its budget: `limit − failures` in the window,
//! or one at a time once a lock-out has run out (its next failure locks again,
//! for twice as long). The reservation is one upsert per key, so concurrent
//! requests (on any replica) see each other's reservations.
//!
//! A [`Reservation`] ends as a failure ([`Reservation::failed`]: counted, and
//! locking past the limit), a success ([`Reservation::succeeded`]) or a
//! "try again" ([`Reservation::busy`]: the password was never checked).
//! Dropped without any of them — the request was cancelled — it is released
//! in the background. A reservation
//! left by a process that died stops counting after [`STALE_AFTER`].
//!
//! It also tells the password pool whom to serve first: keys with no failures
//! in their window (a real user) go ahead of keys that keep failing — and of
//! keys turned away "try again" [`BUSY_GRACE`] times since their last success,
//! or a flood of fresh addresses and names, refused before any failure could
//! be counted, would keep its place ahead of the person it crowds out — and of
//! keys with more than [`FRESH_IN_FLIGHT`] attempts in flight at once: a
//! person signs in once at a time, a burst from one address is not a person,
//! and its first attempts have no failures yet either.

use std::time::Duration;

use sqlx::PgPool;

use crate::blocking::Priority;
use crate::throttle::{self, AuthEvent, Policy};

/// A reservation older than this is a leftover of a process that died (the
/// request timeout is 30 s).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// "Try again" answers a key may get (since its last success) and still be
/// served ahead: a person retries a few times, a flood keeps coming.
pub const BUSY_GRACE: i32 = 3;
/// Attempts of one key in flight at once that still count as a person's
/// (a double submit), see the module documentation.
pub const FRESH_IN_FLIGHT: i32 = 2;

/// Whether a sign-in may go ahead.
pub enum Admission {
    Admitted(Reservation),
    /// A key is locked out, or its budget is taken by attempts in flight.
    Refused,
}

/// One attempt's place on its keys (see the module documentation).
pub struct Reservation {
    db: PgPool,
    keys: Vec<(String, Policy)>,
    fresh: bool,
    open: bool,
}

struct Reserved {
    failures: i32,
    in_flight: i32,
    busy: i32,
    locked: bool,
}

/// Reserves a place on every key, or on none.
pub async fn reserve(db: &PgPool, keys: &[(&str, Policy)]) -> sqlx::Result<Admission> {
    let mut reservation = Reservation {
        db: db.clone(),
        keys: Vec::with_capacity(keys.len()),
        fresh: true,
        open: true,
    };
    for (key, policy) in keys {
        let r = reserve_one(db, key, *policy).await?;
        reservation.keys.push(((*key).to_owned(), *policy));
        let budget = if r.failures < policy.limit {
            policy.limit - r.failures
        } else {
            1
        };
        if r.locked || r.in_flight > budget {
            release(db, &reservation.keys).await?;
            reservation.open = false;
            return Ok(Admission::Refused);
        }
        reservation.fresh &=
            r.failures == 0 && r.busy < BUSY_GRACE && r.in_flight <= FRESH_IN_FLIGHT;
    }
    Ok(Admission::Admitted(reservation))
}

async fn reserve_one(db: &PgPool, key: &str, policy: Policy) -> sqlx::Result<Reserved> {
    let row = sqlx::query!(
        r#"INSERT INTO auth_throttle AS t (key, failures, window_start, in_flight, in_flight_since)
         VALUES ($1, 0, now(), 1, now())
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                             THEN 0 ELSE t.failures END,
             busy = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                         THEN 0 ELSE t.busy END,
             window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                                 THEN now() ELSE t.window_start END,
             in_flight = CASE WHEN t.in_flight_since < now() - make_interval(secs => $3)
                              THEN 1 ELSE t.in_flight + 1 END,
             in_flight_since = now()
         RETURNING failures, in_flight, busy, COALESCE(locked_until > now(), false) AS "locked!""#,
        key,
        policy.window.as_secs_f64(),
        STALE_AFTER.as_secs_f64(),
    )
    .fetch_one(db)
    .await?;
    Ok(Reserved {
        failures: row.failures,
        in_flight: row.in_flight,
        busy: row.busy,
        locked: row.locked,
    })
}

impl Reservation {
    /// The queue the password check waits in: ahead when no key has failures.
    pub fn priority(&self) -> Priority {
        if self.fresh {
            Priority::High
        } else {
            Priority::Low
        }
    }

    /// The attempt failed: counted against every key (locking those past
    /// their limit), the audit line `e` written.
    pub async fn failed(mut self, e: AuthEvent<'_>) -> sqlx::Result<()> {
        self.open = false;
        for (key, policy) in &self.keys {
            let failures = sqlx::query_scalar!(
                "INSERT INTO auth_throttle AS t (key, failures, window_start)
                 VALUES ($1, 1, now())
                 ON CONFLICT (key) DO UPDATE SET
                     in_flight = GREATEST(t.in_flight - 1, 0),
                     failures = t.failures + 1,
                     locked_until = CASE WHEN t.failures + 1 >= $2
                         THEN now() + make_interval(secs => LEAST($3 * power(2, LEAST(t.failures + 1 - $2, 20)), $4))
                         ELSE t.locked_until END
                 RETURNING failures",
                key,
                policy.limit,
                policy.base.as_secs_f64(),
                policy.cap.as_secs_f64(),
            )
            .fetch_one(&self.db)
            .await?;
            if let Some(delay) = throttle::lock_for(failures, *policy) {
                metrics::counter!("idp_lockouts_total").increment(1);
                tracing::warn!(
                    key,
                    failures,
                    delay_secs = delay.as_secs(),
                    "too many sign-in failures; locked"
                );
            }
        }
        throttle::audit(&self.db, e).await
    }

    /// The attempt succeeded: gives the places back, and forgets the
    /// "try again" answers the keys had.
    pub async fn succeeded(mut self) -> sqlx::Result<()> {
        self.open = false;
        end(&self.db, &self.keys, Busy::Forget).await
    }

    /// The attempt was answered "try again" (the password queue was full):
    /// gives the places back and counts the refusal against the keys' place
    /// in the queue (see [`BUSY_GRACE`]), never towards a lock-out.
    pub async fn busy(mut self) -> sqlx::Result<()> {
        self.open = false;
        end(&self.db, &self.keys, Busy::Count).await
    }
}

async fn release(db: &PgPool, keys: &[(String, Policy)]) -> sqlx::Result<()> {
    end(db, keys, Busy::Keep).await
}

/// What giving a place back does to the keys' count of "try again" answers.
#[derive(Clone, Copy)]
enum Busy {
    Keep,
    Forget,
    Count,
}

/// Gives the places on `keys` back, updating their `busy` count.
async fn end(db: &PgPool, keys: &[(String, Policy)], busy: Busy) -> sqlx::Result<()> {
    let keys: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let (forget, count) = match busy {
        Busy::Keep => (false, 0),
        Busy::Forget => (true, 0),
        Busy::Count => (false, 1),
    };
    sqlx::query!(
        "UPDATE auth_throttle SET in_flight = GREATEST(in_flight - 1, 0),
                busy = CASE WHEN $2 THEN 0 ELSE busy + $3 END
         WHERE key = ANY($1)",
        &keys as &[&str],
        forget,
        count,
    )
    .execute(db)
    .await?;
    Ok(())
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.open || self.keys.is_empty() {
            return;
        }
        let (db, keys) = (self.db.clone(), std::mem::take(&mut self.keys));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = release(&db, &keys).await {
                    tracing::warn!(error = %e, "could not release a cancelled sign-in's reservation");
                }
            });
        }
    }
}
