//! Subscriptions: `chatEvents` for one chat, `inboxEvents` for every chat (admins). Each notice
//! is resolved for the subscriber's own viewer, so a visitor never sees more than it may.

use async_graphql::{Context, Enum, Object, Subscription as SubscriptionDerive};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::schema::{app, viewer};
use super::types::{Chat, Message, Sender, StatusEvent};
use crate::auth::Viewer;
use crate::auth::viewer::Side;
use crate::realtime::{Notice, NoticeKind};
use crate::service::{chats, erasure, messages};
use crate::state::AppState;

/// What happened.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::realtime::NoticeKind")]
pub enum ChatEventKind {
    /// A visitor started a chat.
    ChatStarted,
    /// A message was sent (`message`).
    MessageAdded,
    /// The chat's status changed (by an admin, or reopened by a visitor message).
    StatusChanged,
    /// The other side read up to now (see `Message.readAt`).
    Read,
    /// The visitor's name, email or phone changed.
    VisitorUpdated,
    /// The other side started or stopped typing (`typing`).
    Typing,
    /// The chat was erased, with everything in it. Only `chat.id` means anything here: the
    /// chat is gone (its thread reads empty).
    ChatDeleted,
}

/// A change in a chat, with the chat as it is now.
pub struct ChatEvent {
    kind: ChatEventKind,
    chat: Chat,
    message: Option<Message>,
    typing: Option<bool>,
    sender: Option<Sender>,
    status_event: Option<StatusEvent>,
}

/// A change in a chat, with the chat as it is now.
#[Object]
impl ChatEvent {
    /// What happened.
    async fn kind(&self) -> ChatEventKind {
        self.kind
    }

    /// The chat as it is now, from the subscriber's point of view.
    async fn chat(&self) -> &Chat {
        &self.chat
    }

    /// The new message, for `MESSAGE_ADDED`.
    async fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// For `TYPING`: whether the other side is typing now.
    async fn typing(&self) -> Option<bool> {
        self.typing
    }

    /// The side that caused the event, where there is one.
    async fn sender(&self) -> Option<Sender> {
        self.sender
    }

    /// For `STATUS_CHANGED`: the change, as `Chat.statusEvents` lists it (for the thread's
    /// system line).
    async fn status_event(&self) -> Option<&StatusEvent> {
        self.status_event.as_ref()
    }
}

pub struct Subscription;

/// Live updates over `/graphql/ws` (graphql-transport-ws or graphql-ws).
#[SubscriptionDerive]
impl Subscription {
    /// Everything that happens in one chat: the visitor's own, or any for an admin.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
    ) -> async_graphql::Result<impl Stream<Item = ChatEvent> + use<>> {
        let viewer = viewer(ctx).clone();
        let side = viewer.require_chat(chat_id)?;
        let app = app(ctx)?.clone();
        // Refuse a chat that does not exist, before the first event.
        chats::get(&app.db, &viewer, chat_id).await?;
        // Every subscriber resolves every event of its chat: a thousand subscriptions to one
        // chat would turn each message into a thousand database reads.
        let slot = ChatSubscriptionSlot::take(&app, chat_id)?;
        Ok(events(app, viewer, side, Some(chat_id)).map(move |event| {
            let _held_while_the_stream_lives = &slot;
            event
        }))
    }

    /// Every chat's events, for the admin inbox.
    async fn inbox_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = ChatEvent> + use<>> {
        let viewer = viewer(ctx).clone();
        viewer.require_admin()?;
        let app = app(ctx)?.clone();
        Ok(events(app, viewer, Side::Admin, None))
    }
}

/// Live `chatEvents` subscriptions to one chat on one instance.
pub const MAX_SUBSCRIPTIONS_PER_CHAT: usize = 20;

/// One `chatEvents` subscription counted against its chat; released when the stream is dropped.
struct ChatSubscriptionSlot {
    app: AppState,
    chat_id: Uuid,
}

impl ChatSubscriptionSlot {
    fn take(app: &AppState, chat_id: Uuid) -> crate::error::Result<Self> {
        let mut open = app
            .chat_subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(chat_id).or_insert(0);
        if *count >= MAX_SUBSCRIPTIONS_PER_CHAT {
            return Err(crate::error::Error::bad_input(format!(
                "at most {MAX_SUBSCRIPTIONS_PER_CHAT} live subscriptions to one chat"
            )));
        }
        *count += 1;
        Ok(Self {
            app: app.clone(),
            chat_id,
        })
    }
}

impl Drop for ChatSubscriptionSlot {
    fn drop(&mut self) {
        let mut open = self
            .app
            .chat_subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.chat_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.chat_id);
            }
        }
    }
}

fn events(
    app: AppState,
    viewer: Viewer,
    side: Side,
    only_chat: Option<Uuid>,
) -> impl Stream<Item = ChatEvent> {
    let receiver = app.bus.subscribe();
    futures_util::stream::unfold(
        (receiver, app, viewer),
        move |(mut receiver, app, viewer)| async move {
            loop {
                let notice = match receiver.recv().await {
                    Ok(notice) => notice,
                    // Fell behind: skip what was lost; clients re-sync by polling on reconnect.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                };
                if only_chat.is_some_and(|id| id != notice.chat_id) {
                    continue;
                }
                // Typing goes to the other side only.
                if notice.kind == NoticeKind::Typing && notice.side == Some(side) {
                    continue;
                }
                match resolve(&app, &viewer, side, notice).await {
                    Ok(Some(event)) => return Some((event, (receiver, app, viewer))),
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(error = ?error, "could not resolve a chat event; skipped");
                        continue;
                    }
                }
            }
        },
    )
}

async fn resolve(
    app: &AppState,
    viewer: &Viewer,
    side: Side,
    notice: Notice,
) -> crate::error::Result<Option<ChatEvent>> {
    if notice.kind == NoticeKind::ChatDeleted {
        return Ok(Some(ChatEvent {
            kind: ChatEventKind::ChatDeleted,
            chat: Chat::new(erasure::tombstone(notice.chat_id), side),
            message: None,
            typing: None,
            sender: None,
            status_event: None,
        }));
    }
    let chat = match chats::get(&app.db, viewer, notice.chat_id).await {
        Ok(chat) => chat,
        Err(crate::error::Error::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let message = match notice.message_id {
        Some(id) => messages::get(&app.db, id)
            .await?
            .map(|message| Message::new(message, &chat)),
        None => None,
    };
    let status_event = match notice.event_id {
        Some(id) => {
            let found = chats::status_event(&app.db, chat.id, id).await?;
            StatusEvent::load(&app.db, found.into_iter().collect())
                .await?
                .into_iter()
                .next()
        }
        None => None,
    };
    Ok(Some(ChatEvent {
        kind: notice.kind.into(),
        chat: Chat::new(chat, side),
        message,
        typing: notice.typing,
        sender: notice.side.map(Into::into),
        status_event,
    }))
}
