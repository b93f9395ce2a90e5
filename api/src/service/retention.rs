//! Retention and the orphan sweep. Retention removes old attachments' files and keeps the rows
//! (`purged_at`), so threads can say "file expired"; the sweep removes stored objects that no
//! row names (left by a crash between the file write and the row). Chat retention erases whole
//! chats inactive for longer than `CHATDESK_CHAT_RETENTION_DAYS`, through the erasure service.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    Statement, TransactionTrait,
};

use crate::clock::now;
use crate::error::Result;
use crate::realtime::EventBus;
use crate::service::erasure;
use crate::storage::Storage;
use crate::webhooks::Hooks;
use entity::chat_attachment;

/// Objects younger than this are never swept: their row may still be on its way.
pub const ORPHAN_AGE: Duration = Duration::hours(1);

/// Arbitrary but fixed: the Postgres advisory lock that lets one instance at a time run the
/// jobs (public so tests can hold it).
pub const JOBS_LOCK: i64 = 0x00c4_a7de_5c00_0001;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub purged_attachments: usize,
    pub removed_orphans: usize,
    /// Whole chats erased by chat retention.
    pub erased_chats: usize,
    /// Another instance held the lock; nothing was done.
    pub skipped: bool,
}

/// Runs retention (when `retention_days > 0`) and the orphan sweep once. On Postgres only one
/// instance runs them at a time (a transaction-scoped advisory lock).
pub async fn run_once(
    db: &DatabaseConnection,
    storage: &dyn Storage,
    retention_days: u32,
) -> Result<Report> {
    let quiet = EventBus::in_process();
    run_jobs(db, storage, &quiet, &Hooks::off(), retention_days, 0).await
}

/// [`run_once`], plus chat retention when `chat_retention_days > 0`: chats inactive for longer
/// are erased (each in its own transaction, files after rows, announced on `bus` so that every
/// instance forgets their visitor tokens, and to webhooks). Under the same
/// once-across-instances lock.
pub async fn run_jobs(
    db: &DatabaseConnection,
    storage: &dyn Storage,
    bus: &EventBus,
    hooks: &Hooks,
    retention_days: u32,
    chat_retention_days: u32,
) -> Result<Report> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        let locked = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [JOBS_LOCK.into()],
            ))
            .await?
            .and_then(|row| row.try_get::<bool>("", "locked").ok())
            .unwrap_or(false);
        if !locked {
            return Ok(Report {
                skipped: true,
                ..Report::default()
            });
        }
    }
    let mut report = Report::default();
    if chat_retention_days > 0 {
        // Through `db`, not `txn`: each erasure commits before its files go, while `txn` only
        // holds the lock (on SQLite it has touched nothing yet, so it blocks no writer).
        report.erased_chats = erasure::erase_inactive(
            db,
            storage,
            bus,
            hooks,
            now() - Duration::days(chat_retention_days.into()),
        )
        .await?;
    }
    if retention_days > 0 {
        report.purged_attachments =
            purge_older_than(&txn, storage, now() - Duration::days(retention_days.into())).await?;
    }
    report.removed_orphans = sweep_orphans(&txn, storage).await?;
    txn.commit().await?;
    Ok(report)
}

async fn purge_older_than(
    db: &impl ConnectionTrait,
    storage: &dyn Storage,
    cutoff: chrono::DateTime<Utc>,
) -> Result<usize> {
    let mut purged = 0;
    loop {
        let batch = chat_attachment::Entity::find()
            .filter(chat_attachment::Column::CreatedAt.lt(cutoff))
            .filter(chat_attachment::Column::PurgedAt.is_null())
            .limit(500)
            .all(db)
            .await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        for attachment in batch {
            // Files first: a row marked purged must never point at a file still kept.
            storage.delete(&attachment.storage_path).await?;
            if let Some(thumbnail) = &attachment.thumbnail_path {
                storage.delete(thumbnail).await?;
            }
            let mut active = attachment.into_active_model();
            active.purged_at = Set(Some(now()));
            active.update(db).await?;
            purged += 1;
        }
    }
}

async fn sweep_orphans(db: &impl ConnectionTrait, storage: &dyn Storage) -> Result<usize> {
    let keys = storage
        .list_older_than("chat", Utc::now() - ORPHAN_AGE)
        .await?;
    let mut removed = 0;
    for chunk in keys.chunks(500) {
        let named: Vec<(String, Option<String>)> = chat_attachment::Entity::find()
            .select_only()
            .column(chat_attachment::Column::StoragePath)
            .column(chat_attachment::Column::ThumbnailPath)
            .filter(
                Condition::any()
                    .add(chat_attachment::Column::StoragePath.is_in(chunk.iter().cloned()))
                    .add(chat_attachment::Column::ThumbnailPath.is_in(chunk.iter().cloned())),
            )
            .into_tuple()
            .all(db)
            .await?;
        let named: HashSet<String> = named
            .into_iter()
            .flat_map(|(path, thumbnail)| std::iter::once(path).chain(thumbnail))
            .collect();
        for key in chunk.iter().filter(|key| !named.contains(*key)) {
            storage.delete(key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
