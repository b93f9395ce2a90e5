use sea_orm::entity::prelude::*;

/// A one-time code from a resume link in a visitor's email.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_resume_codes")]
pub struct Model {
    /// SHA-256 (hex) of the code; the code itself is only in the email.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    pub chat_id: Uuid,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
