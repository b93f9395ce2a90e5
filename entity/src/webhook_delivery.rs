use sea_orm::entity::prelude::*;

/// One attempt to deliver an event to an endpoint (the last 100 per endpoint are kept).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The chat the event is about, if any.
    pub chat_id: Option<Uuid>,
    /// The `webhook-id` header: the same for every attempt of one event.
    pub message_id: String,
    pub event_type: String,
    pub attempt: i32,
    pub success: bool,
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_excerpt: Option<String>,
    /// The event as sent.
    pub payload: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
