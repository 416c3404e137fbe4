//! A bounded pool for CPU-heavy work (argon2, RSA signing): N dedicated
//! threads take jobs from one queue, so at most N jobs run at once, the rest
//! wait their turn, and a burst of logins can neither starve the async runtime
//! nor spawn hundreds of threads.
//!
//! The threads take the next queued job as soon as they finish one, without
//! waking anybody: a pool built on a semaphore and `spawn_blocking` hands each
//! job over through two thread wake-ups (the waiting task, then a blocking
//! thread), which on this 2-core VM left the CPUs a quarter idle and halved the
//! rate of RS256 signatures (`make bench`, figure 1). Only the job's result
//! goes back through a wake-up, to the task that awaits it.
//!
//! Under a flood (wrong passwords from many addresses) the queue must neither
//! grow without bound nor make real users wait behind attackers, so:
//!
//! - **Bounded admission**: a pool built with [`Blocking::bounded`] holds at
//!   most `capacity` waiting jobs; one more is refused at once
//!   ([`BlockingError::Busy`]) rather than queued.
//! - **Two classes**: [`Priority::High`] jobs always run before
//!   [`Priority::Low`] ones, and a high job arriving at a full queue takes the
//!   place of the newest low job (whose caller is told `Busy`).
//! - **Cancellation**: a job whose caller has gone (its future dropped: the
//!   client disconnected or the request timed out) is skipped, never run, and
//!   gives up its place in the queue.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Served first (real users, token signing).
    High,
    /// Served when no high job waits (keys that keep failing).
    Low,
}

/// A queued job: `run(true)` runs it, `run(false)` tells its caller it was
/// refused; `gone()` says whether its caller stopped waiting.
struct Job {
    run: Box<dyn FnOnce(bool) + Send>,
    gone: Box<dyn Fn() -> bool + Send>,
}

impl Job {
    /// Runs the job (`true`) or refuses it (`false`).
    fn finish(self, run: bool) {
        let Job { run: f, gone } = self;
        // The watcher shares the result channel: gone first, so that the job
        // owns it alone.
        drop(gone);
        f(run);
    }
}

#[derive(Default)]
struct Queue {
    high: VecDeque<Job>,
    low: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn len(&self) -> usize {
        self.high.len() + self.low.len()
    }

    fn next(&mut self) -> Option<Job> {
        self.high.pop_front().or_else(|| self.low.pop_front())
    }

    /// Forgets the jobs whose callers have gone.
    fn drop_abandoned(&mut self) {
        self.high.retain(|j| !(j.gone)());
        self.low.retain(|j| !(j.gone)());
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the queue when the last handle goes, so the threads end.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// A handle to the pool; clones share it. The threads end when the last
/// handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Blocking {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

/// Why a job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    /// The queue is full: try again shortly.
    #[error("the pool is busy")]
    Busy,
    #[error("the pool has stopped")]
    Stopped,
    #[error("the job panicked")]
    Panicked,
}

impl Blocking {
    /// Starts `threads` (at least one) threads named `idp-blocking-<i>`, with
    /// no bound on the queue (for work whose rate is bounded elsewhere).
    pub fn new(threads: usize) -> Self {
        Self::bounded(threads, usize::MAX)
    }

    /// As [`new`](Self::new), holding at most `capacity` waiting jobs.
    pub fn bounded(threads: usize, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            // A thread that cannot start leaves the others to do the work; with
            // none at all, jobs wait until their callers give up.
            let _ = std::thread::Builder::new()
                .name(format!("idp-blocking-{i}"))
                .spawn(move || work(&shared));
        }
        Self {
            _closer: Arc::new(Closer(shared.clone())),
            shared,
        }
    }

    /// Runs `job` on the pool with high priority and answers its result.
    pub async fn run<F, R>(&self, job: F) -> Result<R, BlockingError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.run_as(Priority::High, job).await
    }

    /// Runs `job` on the pool in the `priority` queue and answers its result;
    /// [`BlockingError::Busy`] at once when the queue is full (or later, when
    /// a high job took this low job's place). Dropping the future before the
    /// job started withdraws it.
    pub async fn run_as<F, R>(&self, priority: Priority, job: F) -> Result<R, BlockingError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let watch = Arc::new(done);
        let gone = {
            let watch = watch.clone();
            Box::new(move || watch.is_closed())
        };
        let job = Job {
            run: Box::new(move |run| {
                let Ok(done) = Arc::try_unwrap(watch) else {
                    return;
                };
                if !run {
                    let _ = done.send(Err(BlockingError::Busy));
                } else if !done.is_closed() {
                    let outcome =
                        catch_unwind(AssertUnwindSafe(job)).map_err(|_| BlockingError::Panicked);
                    // Nobody waiting any more (the request was cancelled): fine.
                    let _ = done.send(outcome);
                }
            }),
            gone,
        };
        self.push(priority, job)?;
        result.await.unwrap_or(Err(BlockingError::Stopped))
    }

    fn push(&self, priority: Priority, job: Job) -> Result<(), BlockingError> {
        let mut queue = self.shared.lock();
        if queue.closed {
            return Err(BlockingError::Stopped);
        }
        if queue.len() >= self.shared.capacity {
            queue.drop_abandoned();
        }
        let mut evicted = None;
        if queue.len() >= self.shared.capacity {
            match priority {
                Priority::High if !queue.low.is_empty() => evicted = queue.low.pop_back(),
                _ => return Err(BlockingError::Busy),
            }
        }
        match priority {
            Priority::High => queue.high.push_back(job),
            Priority::Low => queue.low.push_back(job),
        }
        drop(queue);
        self.shared.ready.notify_one();
        if let Some(evicted) = evicted {
            evicted.finish(false);
        }
        Ok(())
    }

    /// Whether the queue is full now (a low job would be refused).
    pub fn full(&self) -> bool {
        self.shared.lock().len() >= self.shared.capacity
    }

    /// Jobs waiting now (for tests and metrics).
    pub fn queued(&self) -> usize {
        self.shared.lock().len()
    }
}

/// One pool thread: takes jobs, high before low, until the pool is closed
/// and drained.
fn work(shared: &Shared) {
    loop {
        let job = {
            // The lock is held only while taking a job, never while running it.
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.next() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        job.finish(true);
    }
}

#[cfg(test)]
#[path = "blocking_tests.rs"]
mod tests;
