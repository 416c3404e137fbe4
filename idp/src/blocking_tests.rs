//! Tests of [`super::Blocking`]: concurrency bound, results, panics, the
//! admission bound, priorities and cancellation. No timing: a job that must
//! stay busy waits on a channel the test controls.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
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
    assert!(matches!(failed, Err(BlockingError::Panicked)));
    assert_eq!(pool.run(|| 7).await.unwrap(), 7);
}

/// Occupies the pool's only thread until the returned sender is used (or
/// dropped); answers once the job has started.
async fn occupy(pool: &Blocking) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let (started, is_started) = oneshot::channel();
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        let _ = pool
            .run(move || {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .await;
    });
    is_started.await.unwrap();
    (release, task)
}

/// Waits until `pool` holds `n` queued jobs.
async fn until_queued(pool: &Blocking, n: usize) {
    while pool.queued() != n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn beyond_capacity_a_job_is_refused_at_once() {
    let pool = Blocking::bounded(1, 2);
    let (release, busy) = occupy(&pool).await;
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run_as(Priority::Low, move || i).await })
        })
        .collect();
    until_queued(&pool, 2).await;
    assert!(matches!(
        pool.run_as(Priority::Low, || 9).await,
        Err(BlockingError::Busy)
    ));
    release.send(()).unwrap();
    busy.await.unwrap();
    for (i, w) in waiting.into_iter().enumerate() {
        assert_eq!(w.await.unwrap().unwrap(), i, "queued jobs still run");
    }
}

#[tokio::test]
async fn high_jobs_run_first_and_take_the_place_of_low_ones() {
    let pool = Blocking::bounded(1, 2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (release, busy) = occupy(&pool).await;
    let spawn = |priority, name: &'static str| {
        let (pool, order) = (pool.clone(), order.clone());
        tokio::spawn(async move {
            pool.run_as(priority, move || order.lock().unwrap().push(name))
                .await
        })
    };
    let low_1 = spawn(Priority::Low, "low-1");
    until_queued(&pool, 1).await;
    let low_2 = spawn(Priority::Low, "low-2");
    until_queued(&pool, 2).await;
    // Full: a high job evicts the newest low job, which is told at once.
    let high = spawn(Priority::High, "high");
    assert!(matches!(low_2.await.unwrap(), Err(BlockingError::Busy)));
    release.send(()).unwrap();
    busy.await.unwrap();
    high.await.unwrap().unwrap();
    low_1.await.unwrap().unwrap();
    assert_eq!(*order.lock().unwrap(), ["high", "low-1"]);
}

#[tokio::test]
async fn a_job_whose_caller_has_gone_never_runs_and_frees_its_place() {
    let pool = Blocking::bounded(1, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let (release, busy) = occupy(&pool).await;
    let abandoned = {
        let (pool, ran) = (pool.clone(), ran.clone());
        tokio::spawn(async move {
            pool.run_as(Priority::Low, move || ran.fetch_add(1, Ordering::SeqCst))
                .await
        })
    };
    until_queued(&pool, 1).await;
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    // The queue is full of an abandoned job: a newcomer takes its place
    // (queued by its first poll, not refused).
    let mut next = Box::pin(pool.run_as(Priority::Low, || "next"));
    assert!(futures::poll!(&mut next).is_pending());
    assert_eq!(pool.queued(), 1);
    release.send(()).unwrap();
    busy.await.unwrap();
    assert_eq!(next.await.unwrap(), "next");
    assert_eq!(pool.run(|| ()).await.ok(), Some(()));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job never ran");
}
