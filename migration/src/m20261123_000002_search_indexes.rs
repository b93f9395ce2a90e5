//! Index-backed substring search over message text and visitor details.
//!
//! Postgres: `pg_trgm` GIN indexes, which serve `ILIKE '%term%'` for terms of three characters
//! or more. SQLite: FTS5 tables with the trigram tokenizer, which serve `LIKE '%term%'` the
//! same way; triggers keep them in step with their tables, and they hold the chat id so a hit
//! leads straight to its chat.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX idx_chat_messages_message_trgm ON chat_messages USING gin (message gin_trgm_ops)",
    "CREATE INDEX idx_chats_visitor_trgm ON chats USING gin ((COALESCE(visitor_name, '') || ' ' || COALESCE(visitor_email, '') || ' ' || COALESCE(visitor_phone, '')) gin_trgm_ops)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS idx_chats_visitor_trgm",
    "DROP INDEX IF EXISTS idx_chat_messages_message_trgm",
];

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE chat_messages_fts USING fts5(message, chat_id UNINDEXED, tokenize = 'trigram')",
    "CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON chat_messages WHEN new.message IS NOT NULL BEGIN
        INSERT INTO chat_messages_fts (rowid, message, chat_id) VALUES (new.rowid, new.message, new.chat_id);
     END",
    "CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN
        DELETE FROM chat_messages_fts WHERE rowid = old.rowid;
     END",
    "CREATE VIRTUAL TABLE chats_fts USING fts5(visitor, chat_id UNINDEXED, tokenize = 'trigram')",
    "CREATE TRIGGER chats_fts_insert AFTER INSERT ON chats BEGIN
        INSERT INTO chats_fts (rowid, visitor, chat_id) VALUES (new.rowid,
            COALESCE(new.visitor_name, '') || ' ' || COALESCE(new.visitor_email, '') || ' ' || COALESCE(new.visitor_phone, ''),
            new.id);
     END",
    "CREATE TRIGGER chats_fts_update AFTER UPDATE OF visitor_name, visitor_email, visitor_phone ON chats BEGIN
        UPDATE chats_fts SET visitor =
            COALESCE(new.visitor_name, '') || ' ' || COALESCE(new.visitor_email, '') || ' ' || COALESCE(new.visitor_phone, '')
        WHERE rowid = new.rowid;
     END",
    "CREATE TRIGGER chats_fts_delete AFTER DELETE ON chats BEGIN
        DELETE FROM chats_fts WHERE rowid = old.rowid;
     END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS chats_fts_delete",
    "DROP TRIGGER IF EXISTS chats_fts_update",
    "DROP TRIGGER IF EXISTS chats_fts_insert",
    "DROP TABLE IF EXISTS chats_fts",
    "DROP TRIGGER IF EXISTS chat_messages_fts_delete",
    "DROP TRIGGER IF EXISTS chat_messages_fts_insert",
    "DROP TABLE IF EXISTS chat_messages_fts",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            DbBackend::Sqlite => run(manager, SQLITE_UP).await,
            other => Err(DbErr::Migration(format!("unsupported database: {other:?}"))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            DbBackend::Sqlite => run(manager, SQLITE_DOWN).await,
            other => Err(DbErr::Migration(format!("unsupported database: {other:?}"))),
        }
    }
}
