//! Human passwords: argon2id with the OWASP parameters (19 MiB, 2 passes, 1
//! lane), computed on the bounded blocking pool. Unknown users are checked
//! against a dummy hash so that both answers take the same time.
//!
//! Each computation needs 19 MiB of working memory. Allocating it per call let
//! glibc keep the freed blocks in per-thread arenas (its mmap threshold rises
//! after the first large free), and the IdP grew to gigabytes under a login
//! burst. The blocks are therefore taken from a small pool and reused: memory
//! stays bounded by the number of concurrent hashes (the pool's permits).
//!
//! The pool is bounded ([`QUEUE_PER_THREAD`] waiting checks per thread) and
//! has two classes: a sign-in from keys without recent failures (a real user)
//! is checked before those of keys that keep failing, and beyond the bound a
//! check is refused at once ([`BlockingError::Busy`]) — see [`crate::blocking`].

use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::blocking::{Blocking, BlockingError, Priority};
use platform::crypto::{random, random_token};

/// Working memory for one argon2 computation, reused across calls.
type Memory = Vec<Block>;

fn owasp_params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(32)).expect("the OWASP argon2id parameters are valid")
}

/// Hashes a password into a PHC string (synchronous; call through [`Passwords`]).
fn hash_with(password: &str, memory: &mut Memory) -> Result<String, argon2::password_hash::Error> {
    let params = owasp_params();
    let salt = SaltString::encode_b64(&random::<16>())?;
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; 32];
    memory.resize(params.block_count(), Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, &mut memory[..])?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into()?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    }
    .to_string())
}

/// Checks `password` against a PHC string with the parameters it names
/// (so hashes made under older parameters still verify).
fn verify_with(password: &str, phc: &str, memory: &mut Memory) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::try_from(hash.algorithm), hash.salt, hash.hash)
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    memory.resize(params.block_count(), Block::default());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok()
        // Output's equality is constant-time.
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Hashes a password into a PHC string outside the async runtime (the CLI's path).
pub fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    hash_with(password, &mut Memory::new())
}

/// The shortest password a person may choose (NIST SP 800-63B §3.1.1.2).
pub const MIN_CHARS: usize = 8;

/// The longest password accepted anywhere: argon2 would take any length, a
/// request body should not.
pub const MAX_BYTES: usize = 1024;

/// Password checks that may wait per pool thread; one more is refused at
/// once. Small: a waiting check costs its caller ~20 ms per place ahead of it
/// divided by the threads, and beyond a few of those a person is better told
/// to try again than kept waiting.
pub const QUEUE_PER_THREAD: usize = 8;

/// The password pool: `threads` threads, [`QUEUE_PER_THREAD`] waiting checks each.
pub fn pool(threads: usize) -> Blocking {
    Blocking::bounded(threads, threads.max(1) * QUEUE_PER_THREAD)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error(transparent)]
    Pool(#[from] BlockingError),
    #[error("hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
}

#[derive(Clone)]
pub struct Passwords {
    pool: Blocking,
    dummy: Arc<str>,
    /// Idle working memories; at most one per concurrent computation.
    memories: Arc<Mutex<Vec<Memory>>>,
}

impl Passwords {
    /// Whether the queue is full now: a check of keys served behind would
    /// be refused.
    pub fn full(&self) -> bool {
        self.pool.full()
    }

    /// Whether `e` means "the queue is full: try again shortly".
    pub fn is_busy(e: &PasswordError) -> bool {
        matches!(e, PasswordError::Pool(BlockingError::Busy))
    }

    pub async fn new(pool: Blocking) -> Result<Self, PasswordError> {
        let dummy = pool
            .run(|| hash_blocking(&random_token(32)))
            .await?
            .map_err(PasswordError::Hash)?;
        Ok(Self {
            pool,
            dummy: dummy.into(),
            memories: Arc::default(),
        })
    }

    /// Runs `job` on the blocking pool with a reused working memory.
    async fn run<R: Send + 'static>(
        &self,
        priority: Priority,
        job: impl FnOnce(&mut Memory) -> R + Send + 'static,
    ) -> Result<R, BlockingError> {
        let memories = self.memories.clone();
        self.pool
            .run_as(priority, move || {
                let taken = memories.lock().ok().and_then(|mut idle| idle.pop());
                let mut memory = taken.unwrap_or_default();
                let result = job(&mut memory);
                if let Ok(mut idle) = memories.lock() {
                    idle.push(memory);
                }
                result
            })
            .await
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(Priority::High, move |memory| hash_with(&password, memory))
            .await?
            .map_err(PasswordError::Hash)
    }

    /// Checks `password` against `phc` in the `priority` queue; with `None`
    /// (no such user) it does the same work against the dummy hash and
    /// answers `false`.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
        priority: Priority,
    ) -> Result<bool, PasswordError> {
        let dummy = self.dummy.clone();
        Ok(self
            .run(priority, move |memory| match phc {
                Some(phc) => verify_with(&password, &phc, memory),
                None => {
                    let _ = verify_with(&password, &dummy, memory);
                    false
                }
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_salted() {
        let a = hash_blocking("correct horse").unwrap();
        let b = hash_blocking("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        let mut memory = Memory::new();
        assert!(verify_with("correct horse", &a, &mut memory));
        assert!(!verify_with("correct horsf", &a, &mut memory));
        assert!(!verify_with("x", "not a phc string", &mut memory));
    }

    #[test]
    fn hashes_from_the_argon2_crate_and_other_parameters_still_verify() {
        use argon2::password_hash::PasswordHasher;
        // A hash made by the crate's own API, with smaller parameters than ours.
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let salt = SaltString::encode_b64(&random::<16>()).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old password", &salt)
            .unwrap()
            .to_string();
        let mut memory = Memory::new();
        assert!(verify_with("old password", &phc, &mut memory));
        assert!(!verify_with("old passwore", &phc, &mut memory));
        // And ours verify with the crate's own verifier.
        use argon2::password_hash::PasswordVerifier;
        let ours = hash_with("new password", &mut memory).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"new password", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let p = Passwords::new(Blocking::new(1)).await.unwrap();
        assert!(
            !p.verify("anything".into(), None, Priority::High)
                .await
                .unwrap()
        );
        let h = p.hash("pw".into()).await.unwrap();
        assert!(p.verify("pw".into(), Some(h), Priority::Low).await.unwrap());
    }
}
