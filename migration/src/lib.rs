//! One migration per schema change; a released migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_tables;
mod m20261123_000002_search_indexes;
mod m20261124_000001_search_statistics;
mod m20261124_000002_search_statistics_full;
mod m20261129_000100_outbox_jobs;
mod m20261129_000101_notification_preferences;
mod m20261129_000102_site_settings;
mod m20261129_000200_chat_erasures;
mod m20261129_000300_rate_limits;
mod m20261129_000500_webhooks;
mod m20261129_000600_admin_labels_without_email;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tables::Migration),
            Box::new(m20261123_000002_search_indexes::Migration),
            Box::new(m20261124_000001_search_statistics::Migration),
            Box::new(m20261124_000002_search_statistics_full::Migration),
            Box::new(m20261129_000100_outbox_jobs::Migration),
            Box::new(m20261129_000101_notification_preferences::Migration),
            Box::new(m20261129_000102_site_settings::Migration),
            Box::new(m20261129_000200_chat_erasures::Migration),
            Box::new(m20261129_000300_rate_limits::Migration),
            Box::new(m20261129_000500_webhooks::Migration),
            Box::new(m20261129_000600_admin_labels_without_email::Migration),
        ]
    }
}
