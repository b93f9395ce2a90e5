//! Admin messages showed their sender's email when the admin had no name: `senderLabel` is
//! public (the visitor reads it), so from now on it holds the admin's display name or nothing,
//! and the labels already stored that are an admin's email are cleared.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Plain SQL both databases read alike; emails are stored lower-cased, as the labels
        // took them.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE chat_messages SET sender_label = NULL \
                 WHERE sender_type = 'admin' AND sender_label IN (SELECT email FROM admins)",
            )
            .await?;
        Ok(())
    }

    /// Nothing to undo: the cleared labels were never meant to be there.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
