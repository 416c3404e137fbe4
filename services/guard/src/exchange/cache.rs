//! The exchanged tokens an [`Exchanger`](super::Exchanger) keeps: one per
//! (subject key, audience, scope), each with its own single-flight lock.
//!
//! Hand-written rather than a cache crate (moka, used for verified tokens)
//! because it needs three things at once that those do not give together:
//! a hit costs one short lock and no allocation (the map is keyed by the
//! subject, looked up by `&str`, with its few (audience, scope) entries in a
//! vector); the bound is exact (moka enforces its capacity eventually, after
//! pending maintenance); and an entry whose exchange is under way is never
//! dropped, so its waiters still share its answer.
//!
//! **Bound**: never more than `capacity` entries. When a new key finds the
//! cache full of tokens that are still fresh or being exchanged, its
//! exchange is made without being kept (it still succeeds; only the
//! sharing is lost for that key).
//!
//! **Sweep**: amortized on insert. Entries whose token is due and that no
//! request is using are dropped whenever the cache has doubled since the
//! last sweep (or reached [`SWEEP_FLOOR`] entries, or `capacity`), so it never
//! holds more than twice the entries alive at the last sweep (or the floor)
//! and a sweep's cost is spread over the inserts that made it necessary.
//! An expired subject's entries thus go with later traffic, not only when
//! the cache is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The cache is swept when it reaches this many entries even if it was
/// smaller than half of that after the last sweep.
pub const SWEEP_FLOOR: usize = 64;

/// One exchange at a time per key: held while asking the IdP.
pub(super) type Flight = Arc<tokio::sync::Mutex<()>>;

/// What a token is kept under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'a> {
    pub subject: &'a str,
    pub audience: &'a str,
    pub scope: &'a str,
}

/// An exchanged token and when to exchange again (unix seconds).
pub(super) struct Cached {
    pub token: Arc<str>,
    pub renew_at: i64,
}

/// A lookup's answer: the token, or the lock to take before exchanging.
pub(super) enum Lookup {
    Fresh(Arc<str>),
    Miss(Flight),
}

struct Entry {
    audience: Box<str>,
    scope: Box<str>,
    token: Option<Cached>,
    flight: Flight,
}

impl Entry {
    fn is(&self, key: &Key<'_>) -> bool {
        *self.audience == *key.audience && *self.scope == *key.scope
    }

    fn fresh(&self, now: i64) -> Option<&Arc<str>> {
        self.token
            .as_ref()
            .filter(|c| c.renew_at > now)
            .map(|c| &c.token)
    }

    /// Worth keeping: a fresh token, or an exchange under way or awaited
    /// (someone besides the cache holds its lock).
    fn live(&self, now: i64) -> bool {
        self.fresh(now).is_some() || Arc::strong_count(&self.flight) > 1
    }
}

struct State {
    subjects: HashMap<Box<str>, Vec<Entry>>,
    len: usize,
    sweep_at: usize,
}

pub(super) struct Cache {
    capacity: usize,
    state: Mutex<State>,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(State {
                subjects: HashMap::new(),
                len: 0,
                sweep_at: SWEEP_FLOOR.min(capacity),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.state().len
    }

    /// The fresh token of `key`, or its flight lock (a new entry if there is
    /// room, else a lock of its own that nobody shares).
    pub fn lookup(&self, key: &Key<'_>, now: i64) -> Lookup {
        let mut state = self.state();
        if let Some(entry) = state
            .subjects
            .get(key.subject)
            .and_then(|entries| entries.iter().find(|e| e.is(key)))
        {
            return match entry.fresh(now) {
                Some(token) => Lookup::Fresh(token.clone()),
                None => Lookup::Miss(entry.flight.clone()),
            };
        }
        if state.len >= state.sweep_at {
            state.sweep(now);
            state.sweep_at = (state.len * 2).max(SWEEP_FLOOR).min(self.capacity);
        }
        let flight = Flight::default();
        if state.len >= self.capacity {
            return Lookup::Miss(flight);
        }
        let entry = Entry {
            audience: key.audience.into(),
            scope: key.scope.into(),
            token: None,
            flight: flight.clone(),
        };
        match state.subjects.get_mut(key.subject) {
            Some(entries) => entries.push(entry),
            None => {
                state.subjects.insert(key.subject.into(), vec![entry]);
            }
        }
        state.len += 1;
        Lookup::Miss(flight)
    }

    /// `key`'s token if it is fresh (another request exchanged it while this
    /// one waited for the flight lock).
    pub fn fresh(&self, key: &Key<'_>, now: i64) -> Option<Arc<str>> {
        let state = self.state();
        let entries = state.subjects.get(key.subject)?;
        entries.iter().find(|e| e.is(key))?.fresh(now).cloned()
    }

    /// Keeps `token` for `key`, if `key` has an entry (it was given one).
    pub fn store(&self, key: &Key<'_>, token: Cached) {
        let mut state = self.state();
        if let Some(entry) = state
            .subjects
            .get_mut(key.subject)
            .and_then(|entries| entries.iter_mut().find(|e| e.is(key)))
        {
            entry.token = Some(token);
        }
    }
}

impl State {
    /// Drops the entries that are neither fresh nor in use.
    fn sweep(&mut self, now: i64) {
        let mut len = 0;
        self.subjects.retain(|_, entries| {
            entries.retain(|e| e.live(now));
            len += entries.len();
            !entries.is_empty()
        });
        self.len = len;
    }
}
