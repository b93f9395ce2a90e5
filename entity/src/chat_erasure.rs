use sea_orm::entity::prelude::*;

/// One erased chat: who erased it and when. Kept after the chat is gone; holds no content.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_erasures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The erased chat's id (no foreign key: the chat no longer exists).
    pub chat_id: Uuid,
    pub erased_by: ErasedBy,
    /// The admin, when `erased_by` is `admin`.
    pub admin_id: Option<Uuid>,
    pub message_count: i32,
    pub file_count: i32,
    pub erased_at: DateTimeUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ErasedBy {
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "visitor")]
    Visitor,
    /// `CHATDESK_CHAT_RETENTION_DAYS`.
    #[sea_orm(string_value = "retention")]
    Retention,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
