use sea_orm::entity::prelude::*;

/// An admin's choice of emails; no row means `All`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admin_notification_prefs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub admin_id: Uuid,
    pub email: EmailPreference,
    pub updated_at: DateTimeUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum EmailPreference {
    #[sea_orm(string_value = "all")]
    All,
    #[sea_orm(string_value = "new_chats")]
    NewChats,
    #[sea_orm(string_value = "never")]
    Never,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
