use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chat_message_id: Uuid,
    /// The uploader's file name, kept only as data (sanitised), never used as a path.
    pub original_name: String,
    /// The type sniffed from the content, not the one the client declared.
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_path: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_path: Option<String>,
    /// Set when retention removed the stored file; the row stays so the thread can say so.
    pub purged_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::chat_message::Entity",
        from = "Column::ChatMessageId",
        to = "super::chat_message::Column::Id",
        on_delete = "Cascade"
    )]
    ChatMessage,
}

impl Related<super::chat_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ChatMessage.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
