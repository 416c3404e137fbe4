//! A circuit breaker per upstream instance.
//!
//! * **closed**: calls go through; `failures` consecutive failures (no
//!   connection, or no answer within the route timeout) open the circuit;
//!   any answer, whatever its status, resets the count (a service's 5xx
//!   usually reports a dependency further down, not the service itself);
//! * **open**: calls fail fast (or go to the route's fallback) for `cooldown`;
//! * **half-open**: after the cool-down one probe call at a time is let
//!   through; its success closes the circuit, its failure opens it for another
//!   cool-down.
//!
//! Why not a crate: `failsafe` (1.3) has no way to read the state or the time
//! left in the cool-down (needed for `Retry-After` and `/circuits`), and
//! `tower-circuitbreaker` (0.2, months old) wraps a tower `Service`, while the
//! gateway picks one of several instances per call and needs a breaker for
//! each. The state machine is small and tested below.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `circuit = { failures = 5, cooldown_ms = 10000 }` in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit fails fast before a probe is let through.
    pub cooldown_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The state as shown on `/circuits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// One instance's breaker.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// Permission for one call. Report its outcome with [`Permit::success`] or
/// [`Permit::failure`]; dropped without either (the call was cancelled), it
/// counts as neither, and a half-open probe slot is freed.
#[must_use = "report the call's outcome"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            failures: config.failures.max(1),
            cooldown: Duration::from_millis(config.cooldown_ms),
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few words updated atomically under the lock; a
        // panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> State {
        State::Open {
            until: Instant::now() + self.cooldown,
        }
    }

    /// The cool-down of an open circuit.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// A permit for one call, or how long to wait before trying again.
    pub fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.state();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => return Err(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// The current phase, and for an open circuit the time left in its cool-down.
    pub fn phase(&self) -> (Phase, Option<Duration>) {
        match *self.state() {
            State::Closed { .. } => (Phase::Closed, None),
            State::Open { until } => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    (Phase::HalfOpen, None)
                } else {
                    (Phase::Open, Some(left))
                }
            }
            State::HalfOpen { .. } => (Phase::HalfOpen, None),
        }
    }

    /// Consecutive failures counted while closed.
    pub fn consecutive_failures(&self) -> u32 {
        match *self.state() {
            State::Closed { failures } => failures,
            _ => self.failures,
        }
    }
}

impl Permit<'_> {
    /// The call succeeded: the circuit closes (or stays closed) and the
    /// count restarts; `true` when this closed a half-open circuit.
    pub fn success(mut self) -> bool {
        self.reported = true;
        *self.breaker.state() = State::Closed { failures: 0 };
        self.probe
    }

    /// The call failed: one more consecutive failure; a failed probe, or the
    /// `failures`-th in a row, opens the circuit (then `true`).
    pub fn failure(mut self) -> bool {
        self.reported = true;
        let breaker = self.breaker;
        let mut state = breaker.state();
        let (next, opened) = match *state {
            State::Closed { failures } if failures + 1 < breaker.failures => (
                State::Closed {
                    failures: failures + 1,
                },
                false,
            ),
            State::Closed { .. } => (breaker.open(), true),
            State::HalfOpen { .. } if self.probe => (breaker.open(), true),
            // Another call reopened it meanwhile.
            other => (other, false),
        };
        *state = next;
        opened
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = self.breaker.state();
            if *state == (State::HalfOpen { probing: true }) {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown_ms: u64) -> Breaker {
        Breaker::new(CircuitConfig {
            failures: 3,
            cooldown_ms,
        })
    }

    #[test]
    fn opens_after_n_consecutive_failures_and_a_success_resets_the_count() {
        let b = breaker(60_000);
        b.acquire().unwrap().failure();
        b.acquire().unwrap().failure();
        b.acquire().unwrap().success();
        assert_eq!(b.consecutive_failures(), 0);
        for _ in 0..2 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.phase().0, Phase::Closed);
        b.acquire().unwrap().failure();
        let (phase, left) = b.phase();
        assert_eq!(phase, Phase::Open);
        assert!(left.unwrap() > Duration::from_secs(50));
        let wait = b.acquire().err().unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
    }

    #[test]
    fn after_the_cooldown_one_probe_at_a_time_decides() {
        let b = breaker(0);
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        // Cool-down over: one probe, the others still fail fast.
        let probe = b.acquire().unwrap();
        assert_eq!(b.phase().0, Phase::HalfOpen);
        assert!(b.acquire().is_err());
        probe.failure();
        // A failed probe reopens (for a zero cool-down: ready to probe again).
        let probe = b.acquire().unwrap();
        assert!(b.acquire().is_err());
        assert!(probe.success(), "the probe closes it");
        assert_eq!(b.phase().0, Phase::Closed);
        assert!(!b.acquire().unwrap().success());
        b.acquire().unwrap().success();
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cooldown() {
        let b = Breaker::new(CircuitConfig {
            failures: 1,
            cooldown_ms: 60_000,
        });
        b.acquire().unwrap().failure();
        // Pretend the cool-down passed.
        *b.state() = State::Open {
            until: Instant::now(),
        };
        b.acquire().unwrap().failure();
        assert_eq!(b.phase().0, Phase::Open);
        assert!(b.acquire().is_err());
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot_without_deciding() {
        let b = Breaker::new(CircuitConfig {
            failures: 1,
            cooldown_ms: 0,
        });
        b.acquire().unwrap().failure();
        drop(b.acquire().unwrap());
        assert_eq!(b.phase().0, Phase::HalfOpen);
        b.acquire().unwrap().success();
        assert_eq!(b.phase().0, Phase::Closed);
    }
}
