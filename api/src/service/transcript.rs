//! A chat's whole conversation, for the transcript downloads: the chat, every message oldest
//! first, and each message's attachments. Who may read it is the viewer's to prove, as
//! everywhere.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{chats, messages};
use crate::auth::Viewer;
use crate::error::Result;
use entity::{chat, chat_attachment, chat_message};

/// A transcript is for people to read: past this many messages it says it was cut short
/// rather than hold an endless chat in memory.
pub const MAX_MESSAGES: u64 = 20_000;

pub struct Transcript {
    pub chat: chat::Model,
    pub messages: Vec<(chat_message::Model, Vec<chat_attachment::Model>)>,
    /// More messages exist than [`MAX_MESSAGES`]; the newest were left out.
    pub truncated: bool,
}

pub async fn load(db: &DatabaseConnection, viewer: &Viewer, chat_id: Uuid) -> Result<Transcript> {
    let chat = chats::get(db, viewer, chat_id).await?;
    let mut found = chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .order_by_asc(chat_message::Column::CreatedAt)
        .order_by_asc(chat_message::Column::Id)
        .limit(MAX_MESSAGES + 1)
        .all(db)
        .await?;
    let truncated = found.len() as u64 > MAX_MESSAGES;
    found.truncate(MAX_MESSAGES as usize);
    let mut by_message: HashMap<Uuid, Vec<chat_attachment::Model>> = HashMap::new();
    for ids in found
        .iter()
        .map(|message| message.id)
        .collect::<Vec<_>>()
        .chunks(1000)
    {
        for attachment in messages::attachments_of(db, ids).await? {
            by_message
                .entry(attachment.chat_message_id)
                .or_default()
                .push(attachment);
        }
    }
    let messages = found
        .into_iter()
        .map(|message| {
            let attachments = by_message.remove(&message.id).unwrap_or_default();
            (message, attachments)
        })
        .collect();
    Ok(Transcript {
        chat,
        messages,
        truncated,
    })
}
