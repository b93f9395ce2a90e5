use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Stored lower-cased, so sign-in is case-insensitive.
    #[sea_orm(unique)]
    pub email: String,
    pub name: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// JWTs issued before this instant are refused.
    pub password_changed_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
