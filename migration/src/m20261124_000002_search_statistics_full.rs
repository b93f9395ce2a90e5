//! The full histogram (10,000 entries) on message text (Postgres): 1,000 was not enough.
//!
//! `m20261124_000001` raised the histogram to 1,000 entries so that the search's plan follows
//! the term's frequency. It did, for one sample: the next ANALYZE drew a sample where a term in
//! 270 of 1M messages fell on one entry, was taken for 1,000 rows, and its search walked every
//! chat again (570 ms instead of 15 ms). With 10,000 entries ANALYZE samples 3M rows (the whole
//! table up to that size), a one-entry estimate means 0.01%, and the plans held for every term
//! of the benchmark. The price is planning: Postgres tests the pattern against each entry, about
//! 15 ms per search on this machine, which leaves searches well inside their 50 ms.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE chat_messages ALTER COLUMN message SET STATISTICS 10000",
        )
        .await?;
        db.execute_unprepared("ANALYZE chat_messages").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE chat_messages ALTER COLUMN message SET STATISTICS 1000",
            )
            .await?;
        Ok(())
    }
}
