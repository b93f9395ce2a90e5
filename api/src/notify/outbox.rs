//! The transactional outbox: a job row written in the same transaction as the change that
//! causes it, and a worker on each instance that takes due jobs and runs them by `kind`.
//!
//! Taking a job is one `UPDATE … RETURNING` that moves its `run_at` a lease ahead, counts the
//! attempt and clears its dedupe key; on Postgres its inner `SELECT` takes the rows `FOR UPDATE
//! SKIP LOCKED`, so instances sharing a database never take the same job, and a job whose
//! instance died (mid-send, or SIGKILLed) is simply due again when its lease runs out.
//! Delivery is therefore at least once; "exactly once" holds unless an instance dies between
//! the receiver's accept and the row's `done`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, TransactionTrait,
};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::clock::now;
use entity::outbox_job::{self, JobState};
use entity::webhook_delivery;

/// A job to write with a change.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub chat_id: Option<Uuid>,
    /// While a job with this key is waiting, another with the same key is not written.
    pub dedupe_key: Option<String>,
    pub run_at: DateTime<Utc>,
}

impl NewJob {
    pub fn now(kind: &'static str, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            chat_id: None,
            dedupe_key: None,
            run_at: now(),
        }
    }
}

/// Writes a job as part of `db`'s transaction: one `INSERT … ON CONFLICT (dedupe_key) DO
/// NOTHING`. Returns whether a row was written (false: a job with that key is waiting).
pub async fn enqueue(db: &impl ConnectionTrait, job: NewJob) -> Result<bool, DbErr> {
    let at = now();
    let written = outbox_job::Entity::insert(outbox_job::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(job.kind.to_owned()),
        payload: Set(job.payload),
        chat_id: Set(job.chat_id),
        dedupe_key: Set(job.dedupe_key),
        state: Set(JobState::Pending),
        run_at: Set(job.run_at),
        attempts: Set(0),
        last_error: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .on_conflict(
        OnConflict::column(outbox_job::Column::DedupeKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(written > 0)
}

/// Deletes a chat's jobs, for erasure: nothing may go out about a chat that is gone, and
/// finished emails hold its text until they are pruned. Call it in the erasing transaction,
/// before writing any job about the erasure itself (a webhook's `chat.deleted`).
pub async fn delete_for_chat(db: &impl ConnectionTrait, chat_id: Uuid) -> Result<u64, DbErr> {
    Ok(outbox_job::Entity::delete_many()
        .filter(outbox_job::Column::ChatId.eq(chat_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Jobs waiting to run (including taken ones whose lease is running).
pub async fn depth(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    outbox_job::Entity::find()
        .filter(outbox_job::Column::State.eq(JobState::Pending))
        .count(db)
        .await
}

/// What running a job asks for next.
#[derive(Debug, Default)]
pub struct Done {
    /// Jobs written in the same transaction that marks this one done (a notification becoming
    /// one email per recipient, each retried on its own).
    pub follow_ups: Vec<NewJob>,
    /// A webhook attempt's entry in its endpoint's delivery log, written in the same
    /// transaction: the log never shows an attempt whose job is still waiting, nor misses one
    /// whose job is done.
    pub delivery_log: Option<webhook_delivery::ActiveModel>,
}

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub poll: Duration,
    /// A taken job is due again after this, if its instance did not finish it.
    pub lease: Duration,
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Jobs running at once. A job is taken only when a slot is free, so a slow one (an SMTP
    /// server that takes its time) holds up its own slot, not the jobs behind it.
    pub concurrency: usize,
    /// Finished jobs are deleted after this.
    pub keep_done: Duration,
}

impl WorkerConfig {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            poll: settings.outbox_poll,
            lease: Duration::from_secs(300),
            retry_base: settings.outbox_retry_base,
            max_attempts: settings.outbox_max_attempts,
            concurrency: 16,
            keep_done: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The wait before attempt `attempts + 1`: `retry_base · 2^(attempts-1)`, times a random
/// factor in [0.5, 1.5) so jobs that failed together (a mail server's outage) do not all come
/// back at the same instant. With the default 120 s and 10 attempts (9 waits) the last attempt
/// comes about 17 hours after the first (8.5 to 25.5 with the jitter): about a day.
pub fn backoff(retry_base: Duration, attempts: u32) -> Duration {
    let exponent = std::cmp::min(attempts.saturating_sub(1), 20);
    let base = retry_base.saturating_mul(1u32 << exponent);
    let factor: f64 = rand::rng().random_range(0.5..1.5);
    base.mul_f64(factor)
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Takes up to `limit` due jobs of the given kinds (kinds this version does not know stay for
/// an instance that does).
async fn claim(
    db: &DatabaseConnection,
    kinds: &[&'static str],
    config: &WorkerConfig,
    limit: u64,
) -> Result<Vec<outbox_job::Model>, DbErr> {
    let at = now();
    let due = Query::select()
        .column(outbox_job::Column::Id)
        .from(outbox_job::Entity)
        .and_where(outbox_job::Column::State.eq(JobState::Pending))
        .and_where(outbox_job::Column::RunAt.lte(at))
        .and_where(outbox_job::Column::Kind.is_in(kinds.iter().copied()))
        .order_by(outbox_job::Column::RunAt, sea_orm::Order::Asc)
        .limit(limit)
        // SQLite's builder leaves the lock out; its single writer needs none.
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    outbox_job::Entity::update_many()
        .col_expr(
            outbox_job::Column::RunAt,
            Expr::value(at + to_chrono(config.lease)),
        )
        .col_expr(
            outbox_job::Column::Attempts,
            Expr::col(outbox_job::Column::Attempts).add(1),
        )
        .col_expr(
            outbox_job::Column::DedupeKey,
            Expr::value(Option::<String>::None),
        )
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(at))
        .filter(outbox_job::Column::Id.in_subquery(due))
        .exec_with_returning(db)
        .await
}

/// Marks jobs done, with what running them asked for, in one transaction: under load the
/// worker finishes dozens of jobs in one commit instead of a commit (and a log insert) each.
async fn finish(db: &DatabaseConnection, jobs: &[Finished]) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    for follow_up in jobs.iter().flat_map(|job| &job.done.follow_ups) {
        enqueue(&txn, follow_up.clone()).await?;
    }
    let logs: Vec<webhook_delivery::ActiveModel> = jobs
        .iter()
        .filter_map(|job| job.done.delivery_log.clone())
        .collect();
    if !logs.is_empty() {
        webhook_delivery::Entity::insert_many(logs)
            .exec_without_returning(&txn)
            .await?;
    }
    outbox_job::Entity::update_many()
        .col_expr(outbox_job::Column::State, Expr::value(JobState::Done))
        .col_expr(
            outbox_job::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(now()))
        .filter(outbox_job::Column::Id.is_in(jobs.iter().map(|job| job.id)))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// A job that ran, waiting for its row to say so.
#[derive(Debug)]
struct Finished {
    id: Uuid,
    kind: String,
    done: Done,
}

/// The most finished jobs one transaction records.
const FINISH_BATCH: usize = 64;

/// Records the jobs that ran, in batches of whatever finished while the previous batch was
/// being written. A batch that cannot be written is tried again job by job, so one bad row
/// does not hold back its neighbours; a job that still cannot be recorded runs again when its
/// lease is up (at least once).
async fn record_finished(db: DatabaseConnection, mut finished: mpsc::Receiver<Finished>) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while finished.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        match finish(&db, &batch).await {
            Ok(()) => batch.iter().for_each(count_sent),
            Err(error) if batch.len() == 1 => {
                tracing::warn!(job = %batch[0].id, %error, "outbox: cannot record a job's outcome");
            }
            Err(error) => {
                tracing::warn!(jobs = batch.len(), %error, "outbox: cannot record a batch of outcomes; trying one by one");
                for job in &batch {
                    match finish(&db, std::slice::from_ref(job)).await {
                        Ok(()) => count_sent(job),
                        Err(error) => {
                            tracing::warn!(job = %job.id, %error, "outbox: cannot record a job's outcome")
                        }
                    }
                }
            }
        }
        batch.clear();
    }
}

fn count_sent(job: &Finished) {
    metrics::counter!("outbox_jobs_sent_total", "kind" => job.kind.clone()).increment(1);
}

/// Records a failed attempt: due again after the backoff, or dead after the last attempt.
async fn fail(
    db: &DatabaseConnection,
    job: &outbox_job::Model,
    error: &str,
    config: &WorkerConfig,
) -> Result<JobState, DbErr> {
    let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
    let dead = attempts >= config.max_attempts;
    let at = now();
    let mut update = outbox_job::Entity::update_many()
        .col_expr(
            outbox_job::Column::LastError,
            Expr::value(truncate(error, 2000)),
        )
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(at))
        .filter(outbox_job::Column::Id.eq(job.id));
    update = if dead {
        update.col_expr(outbox_job::Column::State, Expr::value(JobState::Dead))
    } else {
        update.col_expr(
            outbox_job::Column::RunAt,
            Expr::value(at + to_chrono(backoff(config.retry_base, attempts))),
        )
    };
    update.exec(db).await?;
    Ok(if dead {
        JobState::Dead
    } else {
        JobState::Pending
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Deletes finished jobs older than `keep_done`. Dead jobs stay for an operator to look at.
async fn prune(db: &DatabaseConnection, keep_done: Duration) -> Result<u64, DbErr> {
    Ok(outbox_job::Entity::delete_many()
        .filter(outbox_job::Column::State.eq(JobState::Done))
        .filter(outbox_job::Column::UpdatedAt.lt(now() - to_chrono(keep_done)))
        .exec(db)
        .await?
        .rows_affected)
}

/// Runs jobs by kind. `Err` is a failed attempt, retried later; its text is kept on the row.
pub trait Handler: Send + Sync + 'static {
    fn kinds(&self) -> &[&'static str];
    fn run(&self, job: &outbox_job::Model) -> impl Future<Output = anyhow::Result<Done>> + Send;
}

/// How long a woken worker waits for more commits before it takes jobs.
const GATHER: Duration = Duration::from_millis(10);

/// Drains the outbox until the task is aborted. `db` should be a handle whose statements are
/// not counted as requests'.
pub async fn run_worker<H: Handler>(
    db: DatabaseConnection,
    handler: H,
    config: WorkerConfig,
    wake: Option<Arc<tokio::sync::Notify>>,
) {
    let kinds: Vec<&'static str> = {
        let mut seen = HashSet::new();
        handler
            .kinds()
            .iter()
            .copied()
            .filter(|kind| seen.insert(*kind))
            .collect()
    };
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    // A job's slot is held until its outcome is queued here: when recording stalls (the
    // database is gone), the worker stops taking jobs instead of piling up outcomes.
    let (finished, to_record) = mpsc::channel(FINISH_BATCH);
    tokio::spawn(record_finished(db.clone(), to_record));
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
        let free = slots.available_permits();
        if free == 0 {
            // Every slot busy: wait for one to come free (or the next look, whichever first).
            let _ = tokio::time::timeout(config.poll, slots.clone().acquire_owned()).await;
            continue;
        }
        let jobs = match claim(&db, &kinds, &config, free as u64).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "outbox: cannot take jobs");
                tokio::time::sleep(config.poll).await;
                continue;
            }
        };
        let full = jobs.len() >= free;
        for job in jobs {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (db, handler, config) = (db.clone(), handler.clone(), config.clone());
            let finished = finished.clone();
            tokio::spawn(async move {
                run_one(&db, handler.as_ref(), &config, job, &finished).await;
                drop(slot);
            });
        }
        // A full take may have left more due jobs behind: look again at once. Otherwise wait
        // for the next look, or for a commit on this instance that wrote jobs (`wake`).
        if !full {
            match &wake {
                Some(wake) => {
                    if tokio::time::timeout(config.poll, wake.notified())
                        .await
                        .is_ok()
                    {
                        // Let the commits of the next moment join this one's jobs: a busy
                        // instance then takes them in batches, not one claim per message
                        // (with a webhook endpoint and 8 senders, a claim per message was
                        // most of the database's work per message sent).
                        tokio::time::sleep(GATHER).await;
                    }
                }
                None => tokio::time::sleep(config.poll).await,
            }
        }
    }
}

async fn run_one<H: Handler>(
    db: &DatabaseConnection,
    handler: &H,
    config: &WorkerConfig,
    job: outbox_job::Model,
    finished: &mpsc::Sender<Finished>,
) {
    let kind = job.kind.clone();
    let error = match handler.run(&job).await {
        Ok(done) => {
            let done = Finished {
                id: job.id,
                kind,
                done,
            };
            // Closed only when the worker is gone: the lease runs out and the job runs again.
            let _ = finished.send(done).await;
            return;
        }
        Err(error) => format!("{error:#}"),
    };
    metrics::counter!("outbox_jobs_failed_total", "kind" => kind.clone()).increment(1);
    match fail(db, &job, &error, config).await {
        Ok(JobState::Dead) => {
            metrics::counter!("outbox_jobs_dead_total", "kind" => kind.clone()).increment(1);
            tracing::error!(job = %job.id, %kind, attempts = job.attempts, %error, "outbox: job is dead after its last attempt");
        }
        Ok(_) => {
            tracing::warn!(job = %job.id, %kind, attempts = job.attempts, %error, "outbox: attempt failed, will retry");
        }
        // The lease runs out and the job is taken again: at least once, not lost.
        Err(db_error) => {
            tracing::warn!(job = %job.id, error = %db_error, "outbox: cannot record a job's outcome");
        }
    }
}

async fn count_waiting(db: &DatabaseConnection) {
    match depth(db).await {
        Ok(depth) => metrics::gauge!("outbox_queue_depth").set(depth as f64),
        Err(error) => tracing::warn!(%error, "outbox: cannot count waiting jobs"),
    }
}

async fn prune_finished(db: &DatabaseConnection, config: &WorkerConfig) {
    match prune(db, config.keep_done).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "outbox: deleted finished jobs"),
        Err(error) => tracing::warn!(%error, "outbox: cannot prune finished jobs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_spans_about_a_day() {
        let base = Duration::from_secs(120);
        for attempts in 1..=9 {
            let wait = backoff(base, attempts);
            let nominal = 120.0 * f64::from(1u32 << (attempts - 1));
            let seconds = wait.as_secs_f64();
            assert!(
                seconds >= nominal * 0.5 && seconds < nominal * 1.5,
                "attempt {attempts}: {seconds}"
            );
        }
        let nominal_total: f64 = (1..10).map(|a| 120.0 * f64::from(1u32 << (a - 1))).sum();
        assert!((12.0 * 3600.0..30.0 * 3600.0).contains(&nominal_total));
        // A huge attempt count neither overflows nor panics.
        let _ = backoff(base, u32::MAX);
    }
}
