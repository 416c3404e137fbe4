//! What the test issuer's server and its handlers share (the stream and
//! exchange endpoints live in their own modules and read it too).

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::keys::TestKey;

pub(super) struct Shared {
    pub(super) issuer: String,
    /// Published keys, in JWKS order.
    pub(super) published: Mutex<Vec<Arc<TestKey>>>,
    /// The key `token()` signs with by default.
    pub(super) current: Mutex<Arc<TestKey>>,
    pub(super) jwks_requests: AtomicUsize,
    pub(super) discovery_requests: AtomicUsize,
    pub(super) max_age: AtomicU64,
    /// Every published revocation event: (id, JSON data).
    pub(super) revocations: Mutex<Vec<(u64, String)>>,
    pub(super) live: broadcast::Sender<(u64, String)>,
    /// `true` while stopped: ends open event streams so shutdown completes.
    pub(super) stopping: watch::Sender<bool>,
    /// Tokens issued by exchange at `/token`.
    pub(super) exchanges: AtomicUsize,
    /// Longest life of an exchanged token, seconds (default 300).
    pub(super) exchange_ttl: AtomicU64,
}
