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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle to the pool; clones share it. The threads end when the last
/// handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Blocking {
    queue: Sender<Job>,
}

/// The job could not run or did not finish (the pool is gone, or the job panicked).
#[derive(Debug, thiserror::Error)]
#[error("blocking job failed: {0}")]
pub struct BlockingError(String);

impl Blocking {
    /// Starts `threads` (at least one) threads named `idp-blocking-<i>`.
    pub fn new(threads: usize) -> Self {
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads.max(1) {
            let jobs = jobs.clone();
            // A thread that cannot start leaves the others to do the work; with
            // none at all, every job answers BlockingError.
            let _ = std::thread::Builder::new()
                .name(format!("idp-blocking-{i}"))
                .spawn(move || work(&jobs));
        }
        Self { queue }
    }

    /// Runs `job` on the pool and answers its result.
    pub async fn run<F, R>(&self, job: F) -> Result<R, BlockingError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Box::new(move || {
                // Nobody waiting any more (the request was cancelled): fine.
                let _ = done.send(catch_unwind(AssertUnwindSafe(job)));
            }))
            .map_err(|_| BlockingError("the pool has stopped".into()))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(BlockingError("the job panicked".into())),
            Err(_) => Err(BlockingError("the pool has stopped".into())),
        }
    }
}

/// One pool thread: takes jobs until every handle is gone.
fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job, never while running it.
        let job = match jobs.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_at_most_n_at_once_and_answer_their_results() {
        let pool = Blocking::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..16u64).map(|i| {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
                .await
            }
        });
        let results = futures::future::join_all(jobs).await;
        let results: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, (0..16).map(|i| i * 2).collect::<Vec<_>>());
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "never more than two at once"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_keeps_working() {
        let pool = Blocking::new(1);
        let failed = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(failed.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
