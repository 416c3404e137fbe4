//! Graceful shutdown: the signal (SIGTERM or Ctrl-C) and the background tasks
//! of a part ([`Tasks`]), which stop with its server.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Completes when the process receives SIGTERM or SIGINT; pass it to
/// `axum::serve(..).with_graceful_shutdown(..)`.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining connections");
}

/// The background tasks of a part (sweeps, expiry, the metrics listener …):
/// each runs until [`Tasks::stop`] cancels the one token they share, and
/// `stop` returns once every one of them has ended.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` in the background until it ends or the tasks are stopped;
    /// `name` says what it does (logged when it is stopped).
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            if token.run_until_cancelled(task).await.is_none() {
                tracing::debug!(task = name, "background task stopped");
            }
        });
    }

    /// The token the tasks stop on, for a task that stops itself gracefully.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Cancels every task and waits until all have ended.
    pub async fn stop(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn stop_ends_a_task_that_would_run_for_ever_and_waits_for_it() {
        let tasks = Tasks::new();
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = SetOnDrop(dropped.clone());
        tasks.spawn("for ever", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        tasks.stop().await;
        assert!(dropped.load(Ordering::SeqCst));
    }
}
