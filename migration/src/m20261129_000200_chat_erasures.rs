//! The audit trail of erased chats: who erased which chat and when, kept after the chat is
//! gone. No foreign key (the chat no longer exists) and no content (that is what was erased).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChatErasures::Table)
                    .col(pk_uuid(ChatErasures::Id))
                    .col(uuid(ChatErasures::ChatId))
                    .col(string_len(ChatErasures::ErasedBy, 16))
                    .col(uuid_null(ChatErasures::AdminId))
                    .col(integer(ChatErasures::MessageCount))
                    .col(integer(ChatErasures::FileCount))
                    .col(timestamp_with_time_zone(ChatErasures::ErasedAt))
                    .check((
                        "chat_erasures_erased_by_check",
                        Expr::col(ChatErasures::ErasedBy).is_in(["admin", "visitor", "retention"]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_erasures_erased_at")
                    .table(ChatErasures::Table)
                    .col(ChatErasures::ErasedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChatErasures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ChatErasures {
    Table,
    Id,
    ChatId,
    ErasedBy,
    AdminId,
    MessageCount,
    FileCount,
    ErasedAt,
}
