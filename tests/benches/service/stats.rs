//! Latency samples, percentiles, and a closed-loop load driver bounded in time and count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every run stops at its deadline or after this many operations, whichever comes first.
pub const MAX_OPS_PER_RUN: u64 = 5_000_000;

/// What one side of a scenario measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    /// Operations (or MiB, for uploads) per second.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The first error seen, to show what went wrong.
    pub first_error: Option<String>,
    /// CPU the bench database's Postgres backends spent per operation, in ms (None where the
    /// side does not touch Postgres).
    pub postgres_cpu_ms_per_op: Option<f64>,
    /// CPU this bench process (the client: HTTP and JSON, or sqlx) spent per operation, in ms.
    /// The client shares the machine with the server and Postgres, so a side whose client works
    /// harder per operation has less CPU left for the rest.
    pub client_cpu_ms_per_op: Option<f64>,
}

/// Latencies in microseconds, as recorded by one or many workers.
#[derive(Default)]
pub struct Samples {
    pub micros: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Samples {
    pub fn record(&mut self, started: Instant, result: Result<(), String>) {
        self.micros.push(started.elapsed().as_micros() as u64);
        if let Err(error) = result {
            self.errors += 1;
            self.first_error.get_or_insert(error);
        }
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Summarises over `secs` of measuring; `work_per_op` scales throughput (1 for ops/s).
    pub fn summarise(mut self, secs: f64, work_per_op: f64) -> Measured {
        self.micros.sort_unstable();
        let ops = self.micros.len() as u64;
        Measured {
            ops,
            errors: self.errors,
            secs,
            throughput: if secs > 0.0 {
                ops as f64 * work_per_op / secs
            } else {
                0.0
            },
            p50_ms: percentile(&self.micros, 0.50),
            p95_ms: percentile(&self.micros, 0.95),
            p99_ms: percentile(&self.micros, 0.99),
            first_error: self.first_error,
            postgres_cpu_ms_per_op: None,
            client_cpu_ms_per_op: None,
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs `op(worker, n)` in `workers` concurrent loops: `warmup` unrecorded, then `measure`
/// recorded. Each loop ends at its deadline or when the run has done [`MAX_OPS_PER_RUN`].
pub async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    measure: Duration,
    work_per_op: f64,
    op: F,
) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + measure;
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let op = op.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut n = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline || done.fetch_add(1, Ordering::Relaxed) >= MAX_OPS_PER_RUN {
                    break;
                }
                let result = op(worker, n).await;
                n += 1;
                if now >= measure_from {
                    samples.record(now, result);
                }
            }
            samples
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        match task.await {
            Ok(samples) => all.merge(samples),
            Err(error) => {
                all.errors += 1;
                all.first_error
                    .get_or_insert(format!("worker died: {error}"));
            }
        }
    }
    // Operations in flight at the deadline finish after it: count the time they took too.
    let secs = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(0.001);
    all.summarise(secs, work_per_op)
}
