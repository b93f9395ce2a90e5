//! The event bus behind subscriptions. A notice carries ids only; each subscriber loads what it
//! needs for its own viewer, so nothing private travels with the event.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::viewer::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    ChatStarted,
    MessageAdded,
    StatusChanged,
    Read,
    VisitorUpdated,
    Typing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub chat_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// The side that caused the event (who read, who typed, who wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<SideName>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SideName {
    Visitor,
    Admin,
}

impl From<Side> for SideName {
    fn from(side: Side) -> Self {
        match side {
            Side::Visitor => Self::Visitor,
            Side::Admin => Self::Admin,
        }
    }
}

impl From<SideName> for Side {
    fn from(side: SideName) -> Self {
        match side {
            SideName::Visitor => Self::Visitor,
            SideName::Admin => Self::Admin,
        }
    }
}

impl Notice {
    pub fn new(kind: NoticeKind, chat_id: Uuid) -> Self {
        Self {
            kind,
            chat_id,
            message_id: None,
            typing: None,
            side: None,
        }
    }

    pub fn with_message(mut self, message_id: Uuid) -> Self {
        self.message_id = Some(message_id);
        self
    }

    pub fn from_side(mut self, side: Side) -> Self {
        self.side = Some(side.into());
        self
    }

    pub fn typing(mut self, typing: bool) -> Self {
        self.typing = Some(typing);
        self
    }
}

/// In-process fan-out. Slow subscribers that fall more than the channel's capacity behind lose
/// the oldest notices (and can catch up by polling), rather than holding memory for everyone.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Notice>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self { sender }
    }

    /// Called after the change is committed.
    pub async fn publish(&self, notice: Notice) {
        // No subscribers is not an error.
        let _ = self.sender.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.sender.subscribe()
    }
}
