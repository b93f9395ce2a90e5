//! DataLoaders: per-chat and per-message fields in a list cost one query per field, whatever
//! the length of the list.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::auth::viewer::Side;
use crate::error::Error;
use crate::service::{chats, messages};
use entity::{chat_attachment, chat_message};

pub struct LastMessageLoader(pub DatabaseConnection);

impl Loader<Uuid> for LastMessageLoader {
    type Value = chat_message::Model;
    type Error = Arc<Error>;

    async fn load(&self, chat_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let found = messages::last_messages(&self.0, chat_ids)
            .await
            .map_err(Arc::new)?;
        Ok(found
            .into_iter()
            .map(|message| (message.chat_id, message))
            .collect())
    }
}

/// Keyed by the viewer's side as well: admins and the visitor count different messages.
pub struct UnreadCountLoader(pub DatabaseConnection);

impl Loader<(Side, Uuid)> for UnreadCountLoader {
    type Value = i64;
    type Error = Arc<Error>;

    async fn load(&self, keys: &[(Side, Uuid)]) -> Result<HashMap<(Side, Uuid), i64>, Self::Error> {
        let mut counts = HashMap::new();
        for side in [Side::Admin, Side::Visitor] {
            let ids: Vec<Uuid> = keys
                .iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, id)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            for (chat_id, count) in chats::unread_counts(&self.0, side, &ids)
                .await
                .map_err(Arc::new)?
            {
                counts.insert((side, chat_id), count);
            }
        }
        Ok(counts)
    }
}

pub struct AttachmentsLoader(pub DatabaseConnection);

impl Loader<Uuid> for AttachmentsLoader {
    type Value = Vec<chat_attachment::Model>;
    type Error = Arc<Error>;

    async fn load(&self, message_ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut by_message: HashMap<Uuid, Self::Value> = HashMap::new();
        for attachment in messages::attachments_of(&self.0, message_ids)
            .await
            .map_err(Arc::new)?
        {
            by_message
                .entry(attachment.chat_message_id)
                .or_default()
                .push(attachment);
        }
        Ok(by_message)
    }
}
