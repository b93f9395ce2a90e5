use sea_orm::entity::prelude::*;

/// The status and read history of a chat.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chat_id: Uuid,
    pub kind: EventKind,
    /// `visitor`, or `admin:<id>`.
    pub actor: String,
    pub data: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum EventKind {
    #[sea_orm(string_value = "started")]
    Started,
    #[sea_orm(string_value = "status_changed")]
    StatusChanged,
    #[sea_orm(string_value = "read")]
    Read,
    #[sea_orm(string_value = "visitor_updated")]
    VisitorUpdated,
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
}

impl Related<super::chat::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Chat.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
