use sea_orm::entity::prelude::*;

/// Work that must leave the server because of a change, written in the change's transaction.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What the worker does with it, e.g. `email`, `admin_notify`.
    pub kind: String,
    pub payload: Json,
    /// The chat it is about, if any (erasing a chat deletes its pending jobs).
    pub chat_id: Option<Uuid>,
    /// Unique while set; cleared when a worker takes the job.
    pub dedupe_key: Option<String>,
    pub state: JobState,
    /// Not before this instant (also the lease of a taken job).
    pub run_at: DateTimeUtc,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum JobState {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "dead")]
    Dead,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
