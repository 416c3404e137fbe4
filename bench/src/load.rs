//! The load generator: closed loops (N workers, each sends its next request
//! when the previous one answered) and open loops at a fixed rate. Every loop
//! is bounded in request count and in time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a loop measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Sample {
    fn new(ok_latencies: Vec<Duration>, failed: u64, elapsed: Duration) -> Sample {
        let mut latencies = ok_latencies;
        latencies.sort_unstable();
        Sample {
            ok: latencies.len() as u64,
            failed,
            elapsed,
            latencies,
        }
    }

    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies; zero when nothing succeeded.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// Two runs of the same loop as one (rates over their summed time).
    pub fn merge(mut self, other: Sample) -> Sample {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }
}

/// Runs `call(i)` from `concurrency` workers until `max_requests` were sent or
/// `max_time` passed. `call` answers whether the request succeeded.
pub async fn closed<F, Fut>(
    concurrency: usize,
    max_requests: u64,
    max_time: Duration,
    call: F,
) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + max_time;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (call, next, failed) = (call.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= max_requests || Instant::now() >= deadline {
                        return latencies;
                    }
                    let t = Instant::now();
                    if call(i).await {
                        latencies.push(t.elapsed());
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    Sample::new(all, failed.load(Ordering::Relaxed), start.elapsed())
}

/// Sends `call(i)` at `rate` per second for `duration` (open loop: a slow
/// answer does not delay the next request). Latency counts from the moment
/// the request was due, so a server that falls behind shows it (no
/// coordinated omission). At most `max_in_flight` requests are outstanding;
/// a request that would exceed it counts as failed.
pub async fn fixed_rate<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    call: F,
) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut failed = 0;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            failed += 1;
            continue;
        };
        let call = call.clone();
        tasks.spawn(async move {
            let ok = call(i).await;
            drop(permit);
            ok.then(|| due.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Some(latency)) => latencies.push(latency),
            _ => failed += 1,
        }
    }
    Sample::new(latencies, failed, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let s = Sample::new((1..=100).rev().map(ms).collect(), 0, Duration::from_secs(2));
        assert_eq!(s.p50(), ms(50));
        assert_eq!(s.p99(), ms(99));
        assert_eq!(s.quantile(1.0), ms(100));
        assert_eq!(s.rps(), 50.0);
        assert_eq!(Sample::default().p99(), Duration::ZERO);
        let both = s.clone().merge(s);
        assert_eq!((both.ok, both.rps(), both.p50()), (200, 50.0, ms(50)));
    }

    #[tokio::test]
    async fn a_closed_loop_stops_at_its_request_bound_and_counts_failures() {
        let s = closed(
            4,
            10,
            Duration::from_secs(60),
            |i| async move { i % 2 == 0 },
        )
        .await;
        assert_eq!((s.ok, s.failed), (5, 5));
    }

    #[tokio::test]
    async fn a_closed_loop_without_a_request_bound_ends_at_its_time_bound() {
        let s = closed(2, u64::MAX, Duration::from_millis(50), |_| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            true
        })
        .await;
        assert!(s.ok > 0 && s.failed == 0, "{s:?}");
    }

    #[tokio::test]
    async fn a_fixed_rate_loop_sends_rate_times_duration_requests() {
        let s = fixed_rate(100.0, Duration::from_millis(200), 10, |_| async { true }).await;
        assert_eq!((s.ok, s.failed), (20, 0));
    }
}
