use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chat_id: Uuid,
    pub sender_type: SenderType,
    pub sender_label: Option<String>,
    /// NULL for an attachment-only message.
    #[sea_orm(column_type = "Text", nullable)]
    pub message: Option<String>,
    /// The client's idempotency key, unique per chat.
    pub client_message_id: Option<String>,
    pub created_at: DateTimeUtc,
}

/// Which side of a chat wrote a message, and which side a viewer speaks for (`api`'s `Side`):
/// the one "visitor or admin" of the whole code. Stored as `visitor`/`admin`; in event-bus
/// notices as `Visitor`/`Admin`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum SenderType {
    #[sea_orm(string_value = "visitor")]
    Visitor,
    #[sea_orm(string_value = "admin")]
    Admin,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::chat::Entity",
        from = "Column::ChatId",
        to = "super::chat::Column::Id",
        on_delete = "Cascade"
    )]
    Chat,
    #[sea_orm(has_many = "super::chat_attachment::Entity")]
    ChatAttachment,
}

impl Related<super::chat::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Chat.def()
    }
}

impl Related<super::chat_attachment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChatAttachment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
