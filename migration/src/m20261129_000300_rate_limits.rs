//! Rate limits shared by every instance on one Postgres database (see api/src/limits.rs).
//!
//! One row per limited key holds its GCRA "theoretical arrival time" in microseconds since the
//! epoch, by the database's clock so that instances with skewed clocks agree. UNLOGGED: the
//! rows are written on every limited request and are worthless after a crash (Postgres empties
//! an unlogged table on crash recovery, which at worst forgives a few requests), so they skip
//! the WAL. SQLite runs one instance and keeps its limits in memory: nothing to create there.

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
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNLOGGED TABLE IF NOT EXISTS rate_limits (
                    key text PRIMARY KEY,
                    tat bigint NOT NULL,
                    allowed boolean NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS rate_limits")
            .await?;
        Ok(())
    }
}
