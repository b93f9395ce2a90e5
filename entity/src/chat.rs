use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_phone: Option<String>,
    /// SHA-256 (hex) of the visitor token; the token itself is never stored.
    #[sea_orm(unique)]
    pub chat_token_hash: String,
    pub status: ChatStatus,
    pub source_page: Option<String>,
    pub last_message_at: Option<DateTimeUtc>,
    pub admin_last_read_at: Option<DateTimeUtc>,
    pub visitor_last_read_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ChatStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "closed")]
    Closed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::chat_message::Entity")]
    ChatMessage,
    #[sea_orm(has_many = "super::chat_event::Entity")]
    ChatEvent,
}

impl Related<super::chat_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChatMessage.def()
    }
}

impl Related<super::chat_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChatEvent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
