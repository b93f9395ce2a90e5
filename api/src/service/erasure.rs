//! Erasing a chat: the one home of "delete what you hold about me", used by `deleteChat` (an
//! admin, or the visitor with its own token) and by chat retention.
//!
//! Order, for crash safety: the rows go first, in one transaction (with the audit line), then
//! the stored files. A crash in between leaves files that no row names, which the hourly orphan
//! sweep removes (it deletes every object older than an hour that no attachment row names);
//! the other order could leave rows pointing at deleted files.

use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::begin_write;
use crate::auth::Viewer;
use crate::clock::now;
use crate::error::{Error, Result};
use crate::realtime::{EventBus, Notice, NoticeKind};
use crate::storage::Storage;
use crate::webhooks::Hooks;
use crate::webhooks::events::EventType;
use entity::chat_erasure::{self, ErasedBy};
use entity::{chat, chat_attachment, chat_event, chat_message};

/// Who erases: recorded in the audit line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eraser {
    Admin(Uuid),
    Visitor,
    Retention,
}

impl Eraser {
    /// Who erased, as the `chat.deleted` webhook tells it (no more than the audit line keeps).
    pub fn actor(&self) -> String {
        match self {
            Self::Admin(id) => format!("admin:{id}"),
            Self::Visitor => "visitor".to_owned(),
            Self::Retention => "retention".to_owned(),
        }
    }

    /// The eraser a viewer may act as for `chat_id`: any admin, or the chat's own visitor.
    pub fn for_viewer(viewer: &Viewer, chat_id: Uuid) -> Result<Self> {
        viewer.require_chat(chat_id)?;
        Ok(match viewer {
            Viewer::Admin(admin) => Self::Admin(admin.id),
            _ => Self::Visitor,
        })
    }
}

/// What went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Erased {
    pub messages: u64,
    pub files: u64,
    /// Stored objects (files and thumbnails) that could not be deleted now; the orphan sweep
    /// removes them later.
    pub files_left_for_the_sweep: u64,
}

/// Erases the chat, its messages, attachments, events and stored files, writes the audit line
/// and announces `CHAT_DELETED`. `NotFound` when there is no such chat (already erased).
pub async fn erase_chat(
    db: &DatabaseConnection,
    storage: &dyn Storage,
    bus: &EventBus,
    hooks: &Hooks,
    eraser: Eraser,
    chat_id: Uuid,
) -> Result<Erased> {
    let txn = begin_write(db).await?;
    // Locked on Postgres, so a message sent at this moment either lands before (and is erased
    // with the rest) or fails its foreign key after.
    let Some(_) = chat::Entity::find_by_id(chat_id)
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Err(Error::NotFound("chat"));
    };
    let message_ids = Query::select()
        .column(chat_message::Column::Id)
        .from(chat_message::Entity)
        .and_where(chat_message::Column::ChatId.eq(chat_id))
        .to_owned();
    let files: Vec<(String, Option<String>)> = chat_attachment::Entity::find()
        .select_only()
        .column(chat_attachment::Column::StoragePath)
        .column(chat_attachment::Column::ThumbnailPath)
        .filter(chat_attachment::Column::ChatMessageId.in_subquery(message_ids.clone()))
        // Purged attachments' files are gone already.
        .filter(chat_attachment::Column::PurgedAt.is_null())
        .into_tuple()
        .all(&txn)
        .await?;
    let messages = chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .count(&txn)
        .await?;
    // Explicitly, child tables first, rather than trusting ON DELETE CASCADE to be switched on.
    chat_attachment::Entity::delete_many()
        .filter(chat_attachment::Column::ChatMessageId.in_subquery(message_ids))
        .exec(&txn)
        .await?;
    chat_message::Entity::delete_many()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .exec(&txn)
        .await?;
    chat_event::Entity::delete_many()
        .filter(chat_event::Column::ChatId.eq(chat_id))
        .exec(&txn)
        .await?;
    // Its outbox jobs go too, done ones included: a finished email job still holds the chat's
    // text until it is pruned, and nothing may go out about a chat that is gone.
    crate::notify::outbox::delete_for_chat(&txn, chat_id).await?;
    // The webhook delivery log holds the chat's messages as they were sent.
    crate::webhooks::endpoints::forget_chat(&txn, chat_id).await?;
    // Integrators hear of the erasure; the job names no chat, so nothing above removes it.
    hooks
        .emit(&txn, EventType::ChatDeleted, None, || {
            crate::webhooks::events::chat_deleted(chat_id, &eraser.actor())
        })
        .await?;
    chat::Entity::delete_by_id(chat_id).exec(&txn).await?;
    let (erased_by, admin_id) = match eraser {
        Eraser::Admin(id) => (ErasedBy::Admin, Some(id)),
        Eraser::Visitor => (ErasedBy::Visitor, None),
        Eraser::Retention => (ErasedBy::Retention, None),
    };
    chat_erasure::ActiveModel {
        id: Set(Uuid::now_v7()),
        chat_id: Set(chat_id),
        erased_by: Set(erased_by),
        admin_id: Set(admin_id),
        message_count: Set(i32::try_from(messages).unwrap_or(i32::MAX)),
        file_count: Set(i32::try_from(files.len()).unwrap_or(i32::MAX)),
        erased_at: Set(now()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    hooks.committed();

    let mut erased = Erased {
        messages,
        files: files.len() as u64,
        files_left_for_the_sweep: 0,
    };
    for key in files
        .into_iter()
        .flat_map(|(path, thumbnail)| std::iter::once(path).chain(thumbnail))
    {
        if let Err(error) = storage.delete(&key).await {
            tracing::warn!(key, error = ?error, "an erased chat's file is left for the orphan sweep");
            erased.files_left_for_the_sweep += 1;
        }
    }
    tracing::info!(%chat_id, ?eraser, messages, "erased a chat");
    bus.publish(Notice::new(NoticeKind::ChatDeleted, chat_id))
        .await;
    Ok(erased)
}

/// What a `CHAT_DELETED` event shows of the chat: its id, closed, nothing else.
pub fn tombstone(chat_id: Uuid) -> chat::Model {
    let at = now();
    chat::Model {
        id: chat_id,
        visitor_name: None,
        visitor_email: None,
        visitor_phone: None,
        chat_token_hash: String::new(),
        status: chat::ChatStatus::Closed,
        source_page: None,
        last_message_at: None,
        admin_last_read_at: None,
        visitor_last_read_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// Keeps this instance's visitor-token memo in step with erasures anywhere (on Postgres the
/// notices of every instance arrive here). Runs until the server stops.
pub async fn forget_erased_chats(bus: EventBus, state: crate::state::AppState) {
    use tokio::sync::broadcast::error::RecvError;
    let mut notices = bus.subscribe();
    loop {
        match notices.recv().await {
            Ok(notice) if notice.kind == NoticeKind::ChatDeleted => {
                state.visitor_chats.forget_chat(notice.chat_id);
            }
            Ok(_) => {}
            // Some notices were missed, perhaps an erasure: start the memo afresh.
            Err(RecvError::Lagged(_)) => state.visitor_chats.forget_all(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Erases chats with no activity (no message, no change) since `cutoff`, oldest first, in
/// batches. Returns how many went.
pub async fn erase_inactive(
    db: &DatabaseConnection,
    storage: &dyn Storage,
    bus: &EventBus,
    hooks: &Hooks,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<usize> {
    let mut erased = 0;
    loop {
        let ids: Vec<Uuid> = chat::Entity::find()
            .select_only()
            .column(chat::Column::Id)
            .filter(chat::Column::UpdatedAt.lt(cutoff))
            .filter(
                sea_orm::Condition::any()
                    .add(chat::Column::LastMessageAt.is_null())
                    .add(chat::Column::LastMessageAt.lt(cutoff)),
            )
            .limit(100)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(erased);
        }
        for id in ids {
            match erase_chat(db, storage, bus, hooks, Eraser::Retention, id).await {
                Ok(_) => erased += 1,
                // Erased meanwhile by someone else.
                Err(Error::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
    }
}
