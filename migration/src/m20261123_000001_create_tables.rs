//! The five tables of SPEC §3. Statuses are checked strings rather than Postgres enum types, so
//! adding a value later is a plain migration on both backends.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Admins::Table)
                    .col(pk_uuid(Admins::Id))
                    .col(string_len_uniq(Admins::Email, 320))
                    .col(string_len_null(Admins::Name, 200))
                    .col(string_len(Admins::PasswordHash, 200))
                    .col(timestamp_with_time_zone(Admins::PasswordChangedAt))
                    .col(timestamp_with_time_zone(Admins::CreatedAt))
                    .col(timestamp_with_time_zone_null(Admins::LastLoginAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .col(pk_uuid(Chats::Id))
                    .col(string_len_null(Chats::VisitorName, 200))
                    .col(string_len_null(Chats::VisitorEmail, 320))
                    .col(string_len_null(Chats::VisitorPhone, 50))
                    .col(string_len_uniq(Chats::ChatTokenHash, 64))
                    .col(string_len(Chats::Status, 16).default("open"))
                    .col(string_len_null(Chats::SourcePage, 2048))
                    .col(timestamp_with_time_zone_null(Chats::LastMessageAt))
                    .col(timestamp_with_time_zone_null(Chats::AdminLastReadAt))
                    .col(timestamp_with_time_zone_null(Chats::VisitorLastReadAt))
                    .col(timestamp_with_time_zone(Chats::CreatedAt))
                    .col(timestamp_with_time_zone(Chats::UpdatedAt))
                    .check((
                        "chats_status_check",
                        Expr::col(Chats::Status).is_in(["open", "pending", "closed"]),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatMessages::Table)
                    .col(pk_uuid(ChatMessages::Id))
                    .col(uuid(ChatMessages::ChatId))
                    .col(string_len(ChatMessages::SenderType, 16))
                    .col(string_len_null(ChatMessages::SenderLabel, 200))
                    .col(text_null(ChatMessages::Message))
                    .col(string_len_null(ChatMessages::ClientMessageId, 100))
                    .col(timestamp_with_time_zone(ChatMessages::CreatedAt))
                    .check((
                        "chat_messages_sender_type_check",
                        Expr::col(ChatMessages::SenderType).is_in(["visitor", "admin"]),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_messages_chat")
                            .from(ChatMessages::Table, ChatMessages::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatAttachments::Table)
                    .col(pk_uuid(ChatAttachments::Id))
                    .col(uuid(ChatAttachments::ChatMessageId))
                    .col(string_len(ChatAttachments::OriginalName, 255))
                    .col(string_len(ChatAttachments::MimeType, 100))
                    .col(big_integer(ChatAttachments::SizeBytes))
                    .col(string_len(ChatAttachments::Sha256, 64))
                    .col(string_len(ChatAttachments::StoragePath, 255))
                    .col(integer_null(ChatAttachments::Width))
                    .col(integer_null(ChatAttachments::Height))
                    .col(string_len_null(ChatAttachments::ThumbnailPath, 255))
                    .col(timestamp_with_time_zone_null(ChatAttachments::PurgedAt))
                    .col(timestamp_with_time_zone(ChatAttachments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_attachments_message")
                            .from(ChatAttachments::Table, ChatAttachments::ChatMessageId)
                            .to(ChatMessages::Table, ChatMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatEvents::Table)
                    .col(pk_uuid(ChatEvents::Id))
                    .col(uuid(ChatEvents::ChatId))
                    .col(string_len(ChatEvents::Kind, 32))
                    .col(string_len(ChatEvents::Actor, 64))
                    .col(json_null(ChatEvents::Data))
                    .col(timestamp_with_time_zone(ChatEvents::CreatedAt))
                    .check((
                        "chat_events_kind_check",
                        Expr::col(ChatEvents::Kind).is_in([
                            "started",
                            "status_changed",
                            "read",
                            "visitor_updated",
                        ]),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_events_chat")
                            .from(ChatEvents::Table, ChatEvents::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // The inbox is ordered by last activity: the last message, or the start of a chat that has
        // none yet. Expression indexes (same SQL on both backends) give that order an index path.
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX idx_chats_activity ON chats ((COALESCE(last_message_at, created_at)) DESC, id DESC)",
            "CREATE INDEX idx_chats_status_activity ON chats (status, (COALESCE(last_message_at, created_at)) DESC, id DESC)",
            "CREATE INDEX idx_chats_last_message_at ON chats (last_message_at DESC)",
            "CREATE INDEX idx_chat_messages_chat_created ON chat_messages (chat_id, created_at, id)",
            "CREATE UNIQUE INDEX idx_chat_messages_client_id ON chat_messages (chat_id, client_message_id)",
            "CREATE INDEX idx_chat_attachments_message ON chat_attachments (chat_message_id)",
            "CREATE INDEX idx_chat_attachments_created ON chat_attachments (created_at)",
            "CREATE INDEX idx_chat_events_chat_created ON chat_events (chat_id, created_at)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ChatEvents::Table.into_iden(),
            ChatAttachments::Table.into_iden(),
            ChatMessages::Table.into_iden(),
            Chats::Table.into_iden(),
            Admins::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Admins {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    PasswordChangedAt,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    VisitorName,
    VisitorEmail,
    VisitorPhone,
    ChatTokenHash,
    Status,
    SourcePage,
    LastMessageAt,
    AdminLastReadAt,
    VisitorLastReadAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    Id,
    ChatId,
    SenderType,
    SenderLabel,
    Message,
    ClientMessageId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChatAttachments {
    Table,
    Id,
    ChatMessageId,
    OriginalName,
    MimeType,
    SizeBytes,
    Sha256,
    StoragePath,
    Width,
    Height,
    ThumbnailPath,
    PurgedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChatEvents {
    Table,
    Id,
    ChatId,
    Kind,
    Actor,
    Data,
    CreatedAt,
}
