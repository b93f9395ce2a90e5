//! Who wants which emails: each admin's choice, chats whose visitor unsubscribed, and the
//! one-time codes of the resume links sent to visitors.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A separate table rather than a column on `admins`: an admin without a row has the
        // default (every message), and the admins table stays as the sign-in code knows it.
        manager
            .create_table(
                Table::create()
                    .table(AdminNotificationPrefs::Table)
                    .col(pk_uuid(AdminNotificationPrefs::AdminId))
                    .col(string_len(AdminNotificationPrefs::Email, 16))
                    .col(timestamp_with_time_zone(AdminNotificationPrefs::UpdatedAt))
                    .check((
                        "admin_notification_prefs_email_check",
                        Expr::col(AdminNotificationPrefs::Email).is_in([
                            "all",
                            "new_chats",
                            "never",
                        ]),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_admin_notification_prefs_admin")
                            .from(
                                AdminNotificationPrefs::Table,
                                AdminNotificationPrefs::AdminId,
                            )
                            .to(Admins::Table, Admins::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChatEmailOptouts::Table)
                    .col(pk_uuid(ChatEmailOptouts::ChatId))
                    .col(timestamp_with_time_zone(ChatEmailOptouts::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_email_optouts_chat")
                            .from(ChatEmailOptouts::Table, ChatEmailOptouts::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Only the SHA-256 of a code is kept, as for visitor tokens.
        manager
            .create_table(
                Table::create()
                    .table(ChatResumeCodes::Table)
                    .col(string_len(ChatResumeCodes::CodeHash, 64).primary_key())
                    .col(uuid(ChatResumeCodes::ChatId))
                    .col(timestamp_with_time_zone(ChatResumeCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ChatResumeCodes::UsedAt))
                    .col(timestamp_with_time_zone(ChatResumeCodes::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_resume_codes_chat")
                            .from(ChatResumeCodes::Table, ChatResumeCodes::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_resume_codes_chat")
                    .table(ChatResumeCodes::Table)
                    .col(ChatResumeCodes::ChatId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ChatResumeCodes::Table.into_iden(),
            ChatEmailOptouts::Table.into_iden(),
            AdminNotificationPrefs::Table.into_iden(),
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
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AdminNotificationPrefs {
    Table,
    AdminId,
    Email,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChatEmailOptouts {
    Table,
    ChatId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChatResumeCodes {
    Table,
    CodeHash,
    ChatId,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}
