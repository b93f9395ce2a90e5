//! The chat logic over the database: start, send, read, list, status. No GraphQL in here; each
//! function takes the viewer and decides what it may do.

pub mod admins;
pub mod away;
pub mod chats;
pub mod cursor;
pub mod demo;
pub mod erasure;
pub mod files;
pub mod messages;
pub mod notifications;
pub mod retention;
pub mod sending;
pub mod transcript;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

/// Starts a transaction that reads and then writes. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a deferred transaction that has read cannot write once another writer
/// committed in between (SQLITE_BUSY_SNAPSHOT, not retried by the busy timeout), so two sends
/// at the same moment failed with INTERNAL. Postgres ignores the option.
pub(crate) async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}
