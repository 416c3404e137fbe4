//! Short-lived, bounded in-memory caches of what every token request and
//! login looks up: client records, and "this throttle key was not locked".
//!
//! Without them each `POST /token` costs a PostgreSQL round trip (the client
//! and its lock-out) before any signing starts. Rules:
//!
//! - **Clients** (found or not) are kept at most [`CLIENT_TTL`]. Clients are
//!   changed by the CLI (`idp clients …`, another process), so a change applies
//!   within the TTL on every replica — a rotated secret or a removed redirect
//!   URI keeps working that long. Unknown ids are cached too: a repeated probe
//!   of an unknown id costs no database lookup.
//! - **Lock-outs**: only the verdict *not locked* is cached, per throttle key,
//!   at most [`UNLOCKED_TTL`]; a locked key is always read from the database.
//!   Every failure counted by this process drops its keys at once (and a
//!   lookup that raced with a failure is not cached), so guesses against this
//!   process always see the current lock-out; a lock-out set by another
//!   replica applies here within the TTL.
//! - **Served behind**: an address whose last sign-in was queued behind
//!   (failures, or repeated "try again"), at most [`BEHIND_TTL`]. While the
//!   password queue is full, its next attempt is told "try again" without a
//!   database round trip: a flood of such attempts must not crowd the
//!   connection pool a real user's sign-in needs.
//! - The maps hold at most [`CAPACITY`] entries: when full, expired entries
//!   are dropped, and if none were, the map is emptied (a flood of distinct
//!   ids costs database lookups, never memory).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::realm::Client;

/// How long a client record (or its absence) is trusted.
pub const CLIENT_TTL: Duration = Duration::from_secs(5);
/// How long "not locked" is trusted for a throttle key.
pub const UNLOCKED_TTL: Duration = Duration::from_secs(2);
/// How long an address is remembered as served behind.
pub const BEHIND_TTL: Duration = Duration::from_secs(5);
/// Entries per map.
pub const CAPACITY: usize = 4096;

struct Bounded<V> {
    map: HashMap<Box<str>, (Instant, V)>,
}

impl<V: Clone> Bounded<V> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<V> {
        match self.map.get(key) {
            Some((until, v)) if *until > now => Some(v.clone()),
            _ => None,
        }
    }

    fn insert(&mut self, key: &str, value: V, until: Instant, now: Instant) {
        if self.map.len() >= CAPACITY && !self.map.contains_key(key) {
            self.map.retain(|_, (t, _)| *t > now);
            if self.map.len() >= CAPACITY {
                self.map.clear();
            }
        }
        self.map.insert(key.into(), (until, value));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The caches of one IdP state (one database).
pub struct AuthCache {
    client_ttl: Duration,
    unlocked_ttl: Duration,
    clients: Mutex<Bounded<Option<Arc<Client>>>>,
    unlocked: Mutex<Bounded<()>>,
    behind: Mutex<Bounded<()>>,
    /// Bumped by every failure: a lock-out read before it is not cached.
    failures: AtomicU64,
}

impl Default for AuthCache {
    fn default() -> Self {
        Self::new(CLIENT_TTL, UNLOCKED_TTL)
    }
}

impl AuthCache {
    pub fn new(client_ttl: Duration, unlocked_ttl: Duration) -> Self {
        Self {
            client_ttl,
            unlocked_ttl,
            clients: Mutex::new(Bounded::new()),
            unlocked: Mutex::new(Bounded::new()),
            behind: Mutex::new(Bounded::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// `Some(found)` when the lookup of `id` is cached (`found` is `None` for
    /// an unknown id), `None` when the database must be asked.
    fn client(&self, id: &str) -> Option<Option<Arc<Client>>> {
        lock(&self.clients).get(id, Instant::now())
    }

    fn put_client(&self, id: &str, client: Option<Arc<Client>>) {
        let now = Instant::now();
        lock(&self.clients).insert(id, client, now + self.client_ttl, now);
    }

    /// The client `id`, from the cache or else the database (then cached).
    pub async fn client_or_load(&self, db: &PgPool, id: &str) -> sqlx::Result<Option<Arc<Client>>> {
        if let Some(found) = self.client(id) {
            return Ok(found);
        }
        let found = crate::realm::client(db, id).await?.map(Arc::new);
        self.put_client(id, found.clone());
        Ok(found)
    }

    /// Read before asking the database about lock-outs; pass it to
    /// [`mark_unlocked`](Self::mark_unlocked).
    pub fn failure_count(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// Whether every key is known not to be locked.
    pub fn all_unlocked(&self, keys: &[&str]) -> bool {
        let now = Instant::now();
        let map = lock(&self.unlocked);
        keys.iter().all(|k| map.get(k, now).is_some())
    }

    /// Remembers that the database found none of `keys` locked, unless a
    /// failure was counted since `failures_before` (the answer may be stale).
    pub fn mark_unlocked(&self, keys: &[&str], failures_before: u64) {
        let now = Instant::now();
        let mut map = lock(&self.unlocked);
        if self.failures.load(Ordering::Acquire) != failures_before {
            return;
        }
        for k in keys {
            map.insert(k, (), now + self.unlocked_ttl, now);
        }
    }

    /// `key`'s last sign-in was served behind (see the module documentation).
    pub fn mark_behind(&self, key: &str) {
        let now = Instant::now();
        lock(&self.behind).insert(key, (), now + BEHIND_TTL, now);
    }

    /// Whether `key` was recently served behind.
    pub fn is_behind(&self, key: &str) -> bool {
        lock(&self.behind).get(key, Instant::now()).is_some()
    }

    /// A failure is being counted for `key`: forget that it was unlocked.
    pub fn failed(&self, key: &str) {
        let mut map = lock(&self.unlocked);
        self.failures.fetch_add(1, Ordering::AcqRel);
        map.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> Arc<Client> {
        Arc::new(Client {
            id: id.into(),
            public: true,
            ..Client::default()
        })
    }

    #[test]
    fn clients_are_cached_found_or_not_until_expired() {
        let c = AuthCache::default();
        assert!(c.client("a").is_none());
        c.put_client("a", Some(client("a")));
        c.put_client("nobody", None);
        assert_eq!(
            c.client("a").flatten().map(|c| c.id.clone()),
            Some("a".into())
        );
        assert!(matches!(c.client("nobody"), Some(None)));

        let expired = AuthCache::new(Duration::ZERO, Duration::ZERO);
        expired.put_client("a", Some(client("a")));
        assert!(expired.client("a").is_none());
        expired.mark_unlocked(&["k"], expired.failure_count());
        assert!(!expired.all_unlocked(&["k"]));
    }

    #[test]
    fn a_failure_drops_the_unlocked_verdict_and_a_racing_lookup_is_not_kept() {
        let c = AuthCache::default();
        assert!(!c.all_unlocked(&["client:a", "addr:x"]));
        c.mark_unlocked(&["client:a", "addr:x"], c.failure_count());
        assert!(c.all_unlocked(&["client:a", "addr:x"]));
        assert!(!c.all_unlocked(&["client:a", "addr:y"]));
        c.failed("addr:x");
        assert!(!c.all_unlocked(&["client:a", "addr:x"]));
        assert!(c.all_unlocked(&["client:a"]));

        // Read before a failure, stored after it: ignored.
        let before = c.failure_count();
        c.failed("client:b");
        c.mark_unlocked(&["addr:x"], before);
        assert!(!c.all_unlocked(&["addr:x"]));
    }

    #[test]
    fn a_lookup_between_a_failure_and_its_lock_out_is_not_kept() {
        // Request B fails (throttle::failed: keys dropped, database
        // written, keys dropped again); request C looks the lock-out up in
        // between, before B's lock is written, and sees none.
        let c = AuthCache::default();
        c.failed("addr:x"); // B, before writing
        let before = c.failure_count(); // C reads the count…
        // …and the database: not locked yet. B writes the lock-out, then:
        c.failed("addr:x"); // B, after writing
        c.mark_unlocked(&["addr:x"], before); // C
        assert!(!c.all_unlocked(&["addr:x"]));

        // C stores its verdict before B's second drop: the drop removes it.
        let c = AuthCache::default();
        c.failed("addr:x");
        let before = c.failure_count();
        c.mark_unlocked(&["addr:x"], before);
        c.failed("addr:x");
        assert!(!c.all_unlocked(&["addr:x"]));
    }

    #[test]
    fn addresses_served_behind_are_remembered_briefly() {
        let c = AuthCache::default();
        assert!(!c.is_behind("addr:x"));
        c.mark_behind("addr:x");
        assert!(c.is_behind("addr:x") && !c.is_behind("addr:y"));
    }

    #[test]
    fn the_maps_stay_bounded() {
        let c = AuthCache::default();
        for i in 0..(CAPACITY * 2 + 3) {
            c.put_client(&format!("id-{i}"), None);
            c.mark_unlocked(&[&format!("key-{i}")], c.failure_count());
        }
        assert!(lock(&c.clients).map.len() <= CAPACITY);
        assert!(lock(&c.unlocked).map.len() <= CAPACITY);
    }
}
