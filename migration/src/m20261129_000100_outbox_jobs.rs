//! The transactional outbox: work that must leave the server because of a change (an email now,
//! webhook deliveries next) is a row written in the same transaction as the change and drained
//! by a worker on each instance.
//!
//! `chat_id` is a plain column, not a foreign key: erasing a chat deletes its pending jobs
//! explicitly, and a job about a deletion (a webhook's `chat.deleted`) must outlive its chat.
//! `dedupe_key` is unique while set; the worker clears it when it takes a job, so a key
//! collapses a burst of changes into one pending job and the next burst gets a new one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxJobs::Table)
                    .col(pk_uuid(OutboxJobs::Id))
                    .col(string_len(OutboxJobs::Kind, 64))
                    .col(json(OutboxJobs::Payload))
                    .col(uuid_null(OutboxJobs::ChatId))
                    .col(string_len_null(OutboxJobs::DedupeKey, 200))
                    .col(string_len(OutboxJobs::State, 16).default("pending"))
                    .col(timestamp_with_time_zone(OutboxJobs::RunAt))
                    .col(integer(OutboxJobs::Attempts).default(0))
                    .col(text_null(OutboxJobs::LastError))
                    .col(timestamp_with_time_zone(OutboxJobs::CreatedAt))
                    .col(timestamp_with_time_zone(OutboxJobs::UpdatedAt))
                    .check((
                        "outbox_jobs_state_check",
                        Expr::col(OutboxJobs::State).is_in(["pending", "done", "dead"]),
                    ))
                    .to_owned(),
            )
            .await?;
        // The worker's claim: the due pending jobs, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_jobs_due")
                    .table(OutboxJobs::Table)
                    .col(OutboxJobs::State)
                    .col(OutboxJobs::RunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_jobs_dedupe")
                    .table(OutboxJobs::Table)
                    .col(OutboxJobs::DedupeKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_jobs_chat")
                    .table(OutboxJobs::Table)
                    .col(OutboxJobs::ChatId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OutboxJobs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OutboxJobs {
    Table,
    Id,
    Kind,
    Payload,
    ChatId,
    DedupeKey,
    State,
    RunAt,
    Attempts,
    LastError,
    CreatedAt,
    UpdatedAt,
}
