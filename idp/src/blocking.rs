//! A bounded pool for CPU-heavy work (argon2, RSA signing): at most N jobs run
//! on tokio's blocking threads at once, the rest wait their turn, so a burst of
//! logins cannot starve the async runtime or spawn hundreds of threads.

use std::sync::Arc;

use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Blocking(Arc<Semaphore>);

/// The job could not run or did not finish (runtime shutting down, or a panic in the job).
#[derive(Debug, thiserror::Error)]
#[error("blocking job failed: {0}")]
pub struct BlockingError(String);

impl Blocking {
    pub fn new(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits.max(1))))
    }

    pub async fn run<F, R>(&self, job: F) -> Result<R, BlockingError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BlockingError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| BlockingError(e.to_string()))
    }
}
