//! Messages: send (idempotent by `clientMessageId`), page through a thread, and the batched
//! look-ups behind the chat list (last message per chat, attachments per message).

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::chats;
use super::cursor::Cursor;
use crate::auth::viewer::{Side, Viewer};
use crate::clock::now;
use crate::error::{Error, Result};
use crate::realtime::{EventBus, Notice, NoticeKind};
use entity::chat::{self, ChatStatus};
use entity::chat_attachment;
use entity::chat_event::EventKind;
use entity::chat_message::{self, SenderType};

/// A file already written to storage, waiting for its row.
#[derive(Clone, Debug)]
pub struct NewAttachment {
    pub id: Uuid,
    pub original_name: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_path: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_path: Option<String>,
}

pub struct NewMessage {
    pub body: Option<String>,
    pub client_message_id: Option<String>,
    pub attachments: Vec<NewAttachment>,
}

pub struct Sent {
    pub message: chat_message::Model,
    pub chat: chat::Model,
    /// False when a retry returned the message stored the first time.
    pub created: bool,
}

/// The message a retried send already stored, if any.
pub async fn find_by_client_id(
    db: &impl ConnectionTrait,
    chat_id: Uuid,
    client_message_id: &str,
) -> Result<Option<chat_message::Model>> {
    Ok(chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .filter(chat_message::Column::ClientMessageId.eq(client_message_id))
        .one(db)
        .await?)
}

/// Stores a message and its attachment rows in one transaction and moves the chat along: a
/// visitor writing to a closed chat reopens it, and the sender's side has read up to here.
pub async fn send(
    db: &DatabaseConnection,
    bus: &EventBus,
    viewer: &Viewer,
    chat_id: Uuid,
    new: NewMessage,
) -> Result<Sent> {
    let side = viewer.require_chat(chat_id)?;
    if new.body.is_none() && new.attachments.is_empty() {
        return Err(Error::bad_input(
            "a message needs a body or at least one attachment",
        ));
    }
    let txn = super::begin_write(db).await?;
    let chat = chats::get_for_update(&txn, viewer, chat_id).await?;
    if let Some(client_id) = new.client_message_id.as_deref()
        && let Some(message) = find_by_client_id(&txn, chat_id, client_id).await?
    {
        return Ok(Sent {
            message,
            chat,
            created: false,
        });
    }

    let at = now().max(chat.last_message_at.unwrap_or_default());
    let (sender_type, sender_label) = match viewer {
        Viewer::Admin(admin) => (
            SenderType::Admin,
            Some(admin.name.clone().unwrap_or_else(|| admin.email.clone())),
        ),
        _ => (SenderType::Visitor, chat.visitor_name.clone()),
    };
    let message = chat_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        chat_id: Set(chat_id),
        sender_type: Set(sender_type),
        sender_label: Set(sender_label),
        message: Set(new.body),
        client_message_id: Set(new.client_message_id),
        created_at: Set(at),
    }
    .insert(&txn)
    .await?;

    if !new.attachments.is_empty() {
        let rows = new
            .attachments
            .into_iter()
            .map(|file| chat_attachment::ActiveModel {
                id: Set(file.id),
                chat_message_id: Set(message.id),
                original_name: Set(file.original_name),
                mime_type: Set(file.mime_type),
                size_bytes: Set(file.size_bytes),
                sha256: Set(file.sha256),
                storage_path: Set(file.storage_path),
                width: Set(file.width),
                height: Set(file.height),
                thumbnail_path: Set(file.thumbnail_path),
                purged_at: Set(None),
                created_at: Set(at),
            });
        chat_attachment::Entity::insert_many(rows)
            .exec(&txn)
            .await?;
    }

    let reopened = side == Side::Visitor && chat.status == ChatStatus::Closed;
    let mut active = chat.into_active_model();
    active.last_message_at = Set(Some(at));
    active.updated_at = Set(at);
    match side {
        Side::Visitor => active.visitor_last_read_at = Set(Some(at)),
        Side::Admin => active.admin_last_read_at = Set(Some(at)),
    }
    if reopened {
        active.status = Set(ChatStatus::Open);
        let data =
            serde_json::json!({ "from": "closed", "to": "open", "reason": "visitor message" });
        chats::record(
            &txn,
            chat_id,
            EventKind::StatusChanged,
            &viewer.actor(),
            Some(data),
        )
        .await?;
    }
    let chat = active.update(&txn).await?;
    txn.commit().await?;

    bus.publish(
        Notice::new(NoticeKind::MessageAdded, chat_id)
            .with_message(message.id)
            .from_side(side),
    )
    .await;
    if reopened {
        bus.publish(Notice::new(NoticeKind::StatusChanged, chat_id))
            .await;
    }
    Ok(Sent {
        message,
        chat,
        created: true,
    })
}

/// Relay-style paging arguments for a thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageArgs {
    pub first: Option<u64>,
    pub after: Option<Cursor>,
    pub last: Option<u64>,
    pub before: Option<Cursor>,
}

pub struct Page {
    /// Oldest first.
    pub messages: Vec<chat_message::Model>,
    pub has_previous: bool,
    pub has_next: bool,
}

pub const MAX_MESSAGES: u64 = 100;
const DEFAULT_MESSAGES: u64 = 50;

pub fn cursor_of(message: &chat_message::Model) -> Cursor {
    Cursor {
        at: message.created_at,
        id: message.id,
    }
}

/// A message's place in its thread: `(created_at, id)`. Built with sea-query rather than as
/// custom SQL with `?` placeholders, which Postgres (`$n`) does not understand.
fn key() -> Expr {
    Expr::tuple([
        Expr::col((chat_message::Entity, chat_message::Column::CreatedAt)),
        Expr::col((chat_message::Entity, chat_message::Column::Id)),
    ])
}

fn cursor_key(cursor: Cursor) -> Expr {
    Expr::tuple([Expr::value(cursor.at), Expr::value(cursor.id)])
}

/// A page of a thread, chronological. `last` takes the newest of the window (for the first
/// screen and for paging back with `before`); `first` the oldest (for polling with `after`).
pub async fn page(db: &impl ConnectionTrait, chat_id: Uuid, args: PageArgs) -> Result<Page> {
    if args.first.is_some() && args.last.is_some() {
        return Err(Error::bad_input("pass either first or last, not both"));
    }
    let mut query = chat_message::Entity::find().filter(chat_message::Column::ChatId.eq(chat_id));
    if let Some(after) = args.after {
        query = query.filter(sea_orm::sea_query::ExprTrait::gt(key(), cursor_key(after)));
    }
    if let Some(before) = args.before {
        query = query.filter(sea_orm::sea_query::ExprTrait::lt(key(), cursor_key(before)));
    }
    if let Some(last) = args.last {
        let last = last.clamp(1, MAX_MESSAGES);
        let mut messages = query
            .order_by_desc(chat_message::Column::CreatedAt)
            .order_by_desc(chat_message::Column::Id)
            .limit(last + 1)
            .all(db)
            .await?;
        let has_previous = messages.len() as u64 > last;
        messages.truncate(last as usize);
        messages.reverse();
        return Ok(Page {
            messages,
            has_previous,
            has_next: args.before.is_some(),
        });
    }
    let first = args
        .first
        .unwrap_or(DEFAULT_MESSAGES)
        .clamp(1, MAX_MESSAGES);
    let mut messages = query
        .order_by_asc(chat_message::Column::CreatedAt)
        .order_by_asc(chat_message::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let has_next = messages.len() as u64 > first;
    messages.truncate(first as usize);
    Ok(Page {
        messages,
        has_previous: args.after.is_some(),
        has_next,
    })
}

/// The newest message of each chat, one index probe per chat, in one statement.
pub async fn last_messages(
    db: &impl ConnectionTrait,
    chat_ids: &[Uuid],
) -> Result<Vec<chat_message::Model>> {
    if chat_ids.is_empty() {
        return Ok(Vec::new());
    }
    let newest = Query::select()
        .expr(Expr::cust(
            "(SELECT m2.id FROM chat_messages m2 WHERE m2.chat_id = chats.id \
             ORDER BY m2.created_at DESC, m2.id DESC LIMIT 1)",
        ))
        .from(chat::Entity)
        .and_where(chat::Column::Id.is_in(chat_ids.iter().copied()))
        .to_owned();
    Ok(chat_message::Entity::find()
        .filter(chat_message::Column::Id.in_subquery(newest))
        .all(db)
        .await?)
}

pub async fn attachments_of(
    db: &impl ConnectionTrait,
    message_ids: &[Uuid],
) -> Result<Vec<chat_attachment::Model>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(chat_attachment::Entity::find()
        .filter(chat_attachment::Column::ChatMessageId.is_in(message_ids.iter().copied()))
        .order_by_asc(chat_attachment::Column::CreatedAt)
        .order_by_asc(chat_attachment::Column::Id)
        .all(db)
        .await?)
}

pub async fn get(
    db: &impl ConnectionTrait,
    message_id: Uuid,
) -> Result<Option<chat_message::Model>> {
    Ok(chat_message::Entity::find_by_id(message_id).one(db).await?)
}
