//! A second way to drain the outbox, for jobs whose run time varies a lot (webhooks: one
//! receiver may take the whole 10 s timeout): up to `concurrency` jobs run at once, and a free
//! slot takes the next due job straight away instead of waiting for a batch to finish, so one
//! slow receiver never holds up the others. Claiming, recording and pruning are the outbox's.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;

use super::{Handler, WorkerConfig, claim, count_waiting, prune_finished, run_one};

/// Runs jobs of `handler`'s kinds until the task is aborted. `wake` starts a claim before the
/// next poll (after a commit that wrote jobs on this instance).
pub async fn run_pipelined<H: Handler>(
    db: DatabaseConnection,
    handler: H,
    config: WorkerConfig,
    wake: Arc<tokio::sync::Notify>,
    concurrency: usize,
) {
    let handler = Arc::new(handler);
    let kinds: Vec<&'static str> = handler.kinds().to_vec();
    let config = Arc::new(config);
    let mut running = JoinSet::new();
    let mut last_count: Option<tokio::time::Instant> = None;
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if last_count.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            last_count = Some(tokio::time::Instant::now());
            count_waiting(&db).await;
        }
        if last_prune.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(tokio::time::Instant::now());
            prune_finished(&db, &config).await;
        }
        while running.try_join_next().is_some() {}
        let free = concurrency.saturating_sub(running.len());
        let mut full_batch = false;
        if free > 0 {
            let mut batch = (*config).clone();
            batch.batch = free as u64;
            match claim(&db, &kinds, &batch).await {
                Ok(jobs) => {
                    full_batch = jobs.len() == free;
                    for job in jobs {
                        let (db, handler, config) = (db.clone(), handler.clone(), config.clone());
                        running.spawn(async move { run_one(&db, &*handler, &config, job).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "outbox: cannot take jobs"),
            }
        }
        if full_batch && running.len() < concurrency {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(config.poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}
