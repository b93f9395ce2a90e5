//! The events and their payloads' `data` (the README shows an example of each).

use serde_json::{Value, json};
use uuid::Uuid;

use super::timestamp;
use crate::service::chats::status_name;
use entity::chat;
use entity::chat_message::{self, SenderType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    ChatStarted,
    MessageCreated,
    ChatStatusChanged,
    ChatRead,
    VisitorUpdated,
    ChatDeleted,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        Self::ChatStarted,
        Self::MessageCreated,
        Self::ChatStatusChanged,
        Self::ChatRead,
        Self::VisitorUpdated,
        Self::ChatDeleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ChatStarted => "chat.started",
            Self::MessageCreated => "message.created",
            Self::ChatStatusChanged => "chat.status_changed",
            Self::ChatRead => "chat.read",
            Self::VisitorUpdated => "visitor.updated",
            Self::ChatDeleted => "chat.deleted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.name() == name)
    }

    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The test event `sendTestWebhook` sends (not subscribable).
pub const TEST_EVENT: &str = "webhook.test";

/// The bits of a stored, comma-separated event list (unknown names are ignored).
pub fn mask(events: &str) -> u32 {
    events
        .split(',')
        .filter_map(|name| EventType::parse(name.trim()))
        .fold(0, |mask, event| mask | event.bit())
}

fn visitor(chat: &chat::Model) -> Value {
    json!({
        "name": chat.visitor_name,
        "email": chat.visitor_email,
        "phone": chat.visitor_phone,
    })
}

pub fn chat(chat: &chat::Model) -> Value {
    json!({
        "id": chat.id,
        "status": status_name(chat.status),
        "visitor": visitor(chat),
        "sourcePage": chat.source_page,
        "createdAt": timestamp(chat.created_at),
        "updatedAt": timestamp(chat.updated_at),
        "lastMessageAt": chat.last_message_at.map(timestamp),
    })
}

pub fn chat_started(chat_row: &chat::Model) -> Value {
    json!({ "chat": chat(chat_row) })
}

/// An attachment as the event lists it; its `url` is signed when each attempt is made (links
/// expire in minutes, retries come hours later).
pub struct FileInfo<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub mime_type: &'a str,
    pub size_bytes: i64,
}

pub fn message_created(
    chat_row: &chat::Model,
    message: &chat_message::Model,
    files: &[FileInfo<'_>],
) -> Value {
    let sender = match message.sender_type {
        SenderType::Visitor => "visitor",
        SenderType::Admin => "admin",
    };
    json!({
        "chatId": chat_row.id,
        "message": {
            "id": message.id,
            "sender": { "type": sender, "name": message.sender_label },
            "text": message.message,
            "clientMessageId": message.client_message_id,
            "createdAt": timestamp(message.created_at),
            "attachments": files.iter().map(|file| json!({
                "id": file.id,
                "name": file.name,
                "type": file.mime_type,
                "size": file.size_bytes,
                "url": null,
            })).collect::<Vec<_>>(),
        },
        "chat": chat(chat_row),
    })
}

pub fn status_changed(chat_row: &chat::Model, from: chat::ChatStatus, actor: &str) -> Value {
    json!({
        "chatId": chat_row.id,
        "from": status_name(from),
        "to": status_name(chat_row.status),
        "actor": actor,
        "chat": chat(chat_row),
    })
}

/// `side` read the other side's messages up to `chat`'s read mark.
pub fn read(chat_row: &chat::Model, side: &str) -> Value {
    let read_at = match side {
        "visitor" => chat_row.visitor_last_read_at,
        _ => chat_row.admin_last_read_at,
    };
    json!({
        "chatId": chat_row.id,
        "by": side,
        "readAt": read_at.map(timestamp),
    })
}

pub fn visitor_updated(chat_row: &chat::Model, fields: &[&str]) -> Value {
    json!({
        "chatId": chat_row.id,
        "fields": fields,
        "visitor": visitor(chat_row),
    })
}

/// For the erasure (`deleteChat`): emit with `chat_id: None` so that deleting the chat's
/// pending jobs does not take this one too.
pub fn chat_deleted(chat_id: Uuid, actor: &str) -> Value {
    json!({
        "chatId": chat_id,
        "actor": actor,
        "deletedAt": timestamp(crate::clock::now()),
    })
}

/// Fills in fresh signed links for a `message.created` event's attachments.
pub fn sign_attachment_urls(event: &mut Value, url: impl Fn(Uuid) -> String) {
    let Some(files) = event
        .pointer_mut("/data/message/attachments")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for file in files {
        let id = file
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<Uuid>().ok());
        if let (Some(id), Some(object)) = (id, file.as_object_mut()) {
            object.insert("url".to_owned(), Value::String(url(id)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_masks_ignore_unknown_names() {
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.name()), Some(event));
        }
        let mask = mask("message.created, chat.read,nope");
        assert_eq!(
            mask,
            EventType::MessageCreated.bit() | EventType::ChatRead.bit()
        );
    }
}
