//! GraphQL types, built from entities so the SDL is not tied to the table layout.

use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, Enum, Object, Positioned, SimpleObject, Value};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::plain::{self, Plain, PlainFields};
use super::schema::{app, viewer};
use crate::auth::viewer::Side;
use crate::error::Error;
use crate::service::admins;
use crate::service::chats::{self, ChatFilter};
use crate::service::cursor::Cursor;
use crate::service::messages::{self, PageArgs};
use crate::state::AppState;
use entity::{admin, chat, chat_attachment, chat_message};

type Result<T> = async_graphql::Result<T>;

/// Where a conversation stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::chat::ChatStatus")]
pub enum ChatStatus {
    /// Waiting for the team, or in progress.
    Open,
    /// Waiting on something (often the visitor); still listed.
    Pending,
    /// Done. A new visitor message reopens it.
    Closed,
}

/// Which side wrote a message.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::chat_message::SenderType")]
pub enum Sender {
    /// The website visitor.
    Visitor,
    /// A member of the support team.
    Admin,
}

/// A conversation between one visitor and the team.
pub struct Chat {
    pub model: chat::Model,
    /// The viewer's side: unread counts and read receipts are from its point of view.
    pub side: Side,
    /// Fields fetched for the whole inbox page at once, when this chat is part of one.
    pub preload: Option<Arc<PagePreload>>,
}

impl Chat {
    pub fn new(model: chat::Model, side: Side) -> Self {
        Self {
            model,
            side,
            preload: None,
        }
    }

    pub fn with_preload(mut self, preload: Arc<PagePreload>) -> Self {
        self.preload = Some(preload);
        self
    }

    /// The last message from the page's preload: `None` when it was not preloaded.
    fn preloaded_last_message(&self) -> Option<Option<Message>> {
        let preload = self.preload.as_ref()?;
        let last_messages = preload.last_messages.as_ref()?;
        Some(last_messages.get(&self.model.id).map(|message| {
            let attachments = preload
                .attachments
                .as_ref()
                .map(|by_message| by_message.get(&message.id).cloned().unwrap_or_default());
            let mut message = Message::new(message.clone(), &self.model);
            message.preloaded_attachments = attachments;
            message
        }))
    }

    /// The unread count from the page's preload (admins' side only).
    fn preloaded_unread_count(&self) -> Option<i64> {
        self.preload
            .as_ref()
            .and_then(|preload| preload.unread_counts.as_ref())
            .filter(|_| self.side == Side::Admin)
            .map(|counts| counts.get(&self.model.id).copied().unwrap_or(0))
    }

    fn visitor_details(&self) -> Visitor {
        Visitor {
            name: self.model.visitor_name.clone(),
            email: self.model.visitor_email.clone(),
            phone: self.model.visitor_phone.clone(),
        }
    }
}

/// Unread counts are `Int` (32 bits) in the schema.
fn unread_to_i32(count: i64) -> i32 {
    count.try_into().unwrap_or(i32::MAX)
}

impl PlainFields for Chat {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "id" => plain::scalar(&self.model.id),
            "status" => plain::scalar(&ChatStatus::from(self.model.status)),
            "visitor" => plain::object(&self.visitor_details(), ctx, field),
            "sourcePage" => plain::scalar(&self.model.source_page),
            "createdAt" => plain::scalar(&self.model.created_at),
            "updatedAt" => plain::scalar(&self.model.updated_at),
            "lastMessageAt" => plain::scalar(&self.model.last_message_at),
            "lastMessage" => match self.preloaded_last_message()? {
                Some(message) => plain::object(&message, ctx, field),
                None => Some(Value::Null),
            },
            "unreadCount" => plain::scalar(&unread_to_i32(self.preloaded_unread_count()?)),
            // `messages` reads the database.
            _ => None,
        }
    }
}

impl PlainFields for Visitor {
    fn plain_field<'a>(
        &self,
        _ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "name" => plain::scalar(&self.name),
            "email" => plain::scalar(&self.email),
            "phone" => plain::scalar(&self.phone),
            _ => None,
        }
    }
}

/// The per-chat fields of an inbox page, fetched for all its chats in one statement each (only
/// those the query asks for), so a page costs the same number of statements whatever its length.
/// (DataLoaders would batch only what arrives within their delay, which is not always a page.)
#[derive(Default)]
pub struct PagePreload {
    /// The newest message by chat id.
    pub last_messages: Option<HashMap<Uuid, chat_message::Model>>,
    /// Unread counts (from the admins' side) by chat id; absent means none.
    pub unread_counts: Option<HashMap<Uuid, i64>>,
    /// Attachments of those newest messages, by message id.
    pub attachments: Option<HashMap<Uuid, Vec<chat_attachment::Model>>>,
}

/// A conversation between one visitor and the team.
#[Object]
impl Chat {
    /// A UUIDv7: time-ordered.
    async fn id(&self) -> Uuid {
        self.model.id
    }

    /// Open, pending or closed.
    async fn status(&self) -> ChatStatus {
        self.model.status.into()
    }

    /// What the visitor told about themselves; all optional.
    async fn visitor(&self) -> Visitor {
        self.visitor_details()
    }

    /// The page the chat was started from.
    async fn source_page(&self) -> Option<&str> {
        self.model.source_page.as_deref()
    }

    /// When the visitor started the chat.
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// The last change of any kind: a message, status or visitor details.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }

    /// When the newest message was written; null before the first.
    async fn last_message_at(&self) -> Option<DateTime<Utc>> {
        self.model.last_message_at
    }

    /// The newest message, for previews.
    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        if let Some(preloaded) = self.preloaded_last_message() {
            return Ok(preloaded);
        }
        let found = messages::last_messages(&app(ctx)?.db, &[self.model.id]).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|message| Message::new(message, &self.model)))
    }

    /// How many of the other side's messages the viewer's side has not read.
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = match self.preloaded_unread_count() {
            Some(count) => Some(count),
            None => chats::unread_counts(&app(ctx)?.db, self.side, &[self.model.id])
                .await?
                .into_iter()
                .next()
                .map(|(_, count)| count),
        };
        Ok(unread_to_i32(count.unwrap_or(0)))
    }

    /// Status changes (closed, reopened, pending…), oldest first, to show as system lines
    /// between the messages: the newest `last` (default 50, at most 100) with `since <= createdAt` and
    /// `createdAt < until`, each bound when given. To match a page of messages, pass the
    /// oldest message's `createdAt` as `since` while older messages remain.
    async fn status_events(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        last: Option<i32>,
    ) -> Result<Vec<StatusEvent>> {
        let last = u64::try_from(last.unwrap_or(50))
            .map_err(|_| Error::bad_input("last must not be negative"))?;
        let db = &app(ctx)?.db;
        let events =
            chats::status_events(db, viewer(ctx), self.model.id, since, until, last).await?;
        Ok(StatusEvent::load(db, events).await?)
    }

    /// The thread, oldest first within a page. `last: N` gives the newest N messages, `before`
    /// pages back through older ones, `after` fetches what came since a cursor (for polling).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Plain<MessageConnection>> {
        let count = |n: Option<i32>, name: &str| -> std::result::Result<Option<u64>, Error> {
            n.map(|n| {
                u64::try_from(n)
                    .map_err(|_| Error::bad_input(format!("{name} must not be negative")))
            })
            .transpose()
        };
        let args = PageArgs {
            first: count(first, "first")?,
            last: count(last, "last")?,
            after: after.as_deref().map(Cursor::decode).transpose()?,
            before: before.as_deref().map(Cursor::decode).transpose()?,
        };
        let with_attachments = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("attachments")
            .exists();
        let page = messages::page(&app(ctx)?.db, self.model.id, args, with_attachments).await?;
        let attachments = page.attachments;
        let edges: Vec<MessageEdge> = page
            .messages
            .into_iter()
            .map(|message| {
                let preloaded = attachments
                    .as_ref()
                    .map(|by_message| by_message.get(&message.id).cloned().unwrap_or_default());
                let cursor = messages::cursor_of(&message).encode();
                let mut node = Message::new(message, &self.model);
                node.preloaded_attachments = preloaded;
                MessageEdge { cursor, node }
            })
            .collect();
        Ok(Plain(MessageConnection {
            page_info: PageInfo::of(
                edges.iter().map(|edge| &edge.cursor),
                page.has_previous,
                page.has_next,
            ),
            edges,
        }))
    }
}

/// What a visitor told about themselves.
#[derive(SimpleObject)]
pub struct Visitor {
    /// As the visitor gave it.
    pub name: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    /// Digits and + - ( ) . and spaces.
    pub phone: Option<String>,
}

/// One message in a chat, with its attachments.
pub struct Message {
    pub model: chat_message::Model,
    /// The other side's read mark, if it covers this message.
    pub read_at: Option<DateTime<Utc>>,
    /// Attachments fetched with the page this message is on; `None` means fetch them alone.
    pub preloaded_attachments: Option<Vec<chat_attachment::Model>>,
}

impl Message {
    pub fn new(model: chat_message::Model, chat: &chat::Model) -> Self {
        let other_side_mark = match model.sender_type {
            chat_message::SenderType::Visitor => chat.admin_last_read_at,
            chat_message::SenderType::Admin => chat.visitor_last_read_at,
        };
        let read_at = other_side_mark.filter(|mark| *mark >= model.created_at);
        Self {
            model,
            read_at,
            preloaded_attachments: None,
        }
    }
}

impl Message {
    fn author_of(&self) -> Option<MessageAuthor> {
        match self.model.sender_type {
            chat_message::SenderType::Admin => {
                self.model.sender_label.as_deref().map(MessageAuthor::new)
            }
            chat_message::SenderType::Visitor => None,
        }
    }
}

/// A member of the team as visitors see them: a display name and initials, never an email.
#[derive(SimpleObject, Clone, Debug)]
pub struct MessageAuthor {
    /// The admin's display name (1-60 characters).
    pub display_name: String,
    /// One or two capital letters for an avatar: the first letters of the name's first and last
    /// words.
    pub initials: String,
}

impl MessageAuthor {
    pub fn new(display_name: &str) -> Self {
        Self {
            display_name: display_name.to_owned(),
            initials: admins::initials(display_name),
        }
    }
}

impl PlainFields for MessageAuthor {
    fn plain_field<'a>(
        &self,
        _ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "displayName" => plain::scalar(&self.display_name),
            "initials" => plain::scalar(&self.initials),
            _ => None,
        }
    }
}

impl PlainFields for Message {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "id" => plain::scalar(&self.model.id),
            "chatId" => plain::scalar(&self.model.chat_id),
            "sender" => plain::scalar(&Sender::from(self.model.sender_type)),
            "senderLabel" => plain::scalar(&self.model.sender_label),
            "author" => match self.author_of() {
                Some(author) => plain::object(&author, ctx, field),
                None => Some(Value::Null),
            },
            "body" => plain::scalar(&self.model.message),
            "createdAt" => plain::scalar(&self.model.created_at),
            "readAt" => plain::scalar(&self.read_at),
            "clientMessageId" => plain::scalar(&self.model.client_message_id),
            // Only what the page brought along; alone, they come from the database.
            "attachments" => plain::list(
                self.preloaded_attachments
                    .as_ref()?
                    .iter()
                    .cloned()
                    .map(Attachment),
                ctx,
                field,
            ),
            _ => None,
        }
    }
}

/// One message in a chat, with its attachments.
#[Object]
impl Message {
    /// A UUIDv7: time-ordered.
    async fn id(&self) -> Uuid {
        self.model.id
    }

    /// The chat this message belongs to.
    async fn chat_id(&self) -> Uuid {
        self.model.chat_id
    }

    /// Which side wrote it.
    async fn sender(&self) -> Sender {
        self.model.sender_type.into()
    }

    /// The admin's display name when they had one, or the visitor's name when they gave one.
    /// Never an email.
    async fn sender_label(&self) -> Option<&str> {
        self.model.sender_label.as_deref()
    }

    /// Who of the team wrote it: the admin's display name (as it was when sent) and initials.
    /// Null for the visitor's messages, and for an admin's sent before they had a display name.
    async fn author(&self) -> Option<MessageAuthor> {
        self.author_of()
    }

    /// The text; null for an attachment-only message. Plain text: render it as text, never HTML.
    async fn body(&self) -> Option<&str> {
        self.model.message.as_deref()
    }

    /// Files sent with the message, in upload order.
    async fn attachments(&self, ctx: &Context<'_>) -> Result<Vec<Attachment>> {
        if let Some(preloaded) = &self.preloaded_attachments {
            return Ok(preloaded.iter().cloned().map(Attachment).collect());
        }
        let found = messages::attachments_of(&app(ctx)?.db, &[self.model.id]).await?;
        Ok(found.into_iter().map(Attachment).collect())
    }

    /// When the server stored it.
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    /// Null until the other side has read up to this message; then its read mark.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }

    /// The sender's idempotency key, if it sent one.
    async fn client_message_id(&self) -> Option<&str> {
        self.model.client_message_id.as_deref()
    }
}

/// A file attached to a message.
pub struct Attachment(pub chat_attachment::Model);

impl PlainFields for Attachment {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        let purged = self.0.purged_at.is_some();
        match field.node.name.node.as_str() {
            "id" => plain::scalar(&self.0.id),
            "name" => plain::scalar(&self.0.original_name),
            "mimeType" => plain::scalar(&self.0.mime_type),
            "sizeBytes" => plain::scalar(&self.0.size_bytes),
            "width" => plain::scalar(&self.0.width),
            "height" => plain::scalar(&self.0.height),
            "purged" => plain::scalar(&purged),
            "url" if purged => Some(Value::Null),
            "url" => plain::scalar(&ctx.data_opt::<AppState>()?.file_url(self.0.id, false)),
            "thumbnailUrl" if purged || self.0.thumbnail_path.is_none() => Some(Value::Null),
            "thumbnailUrl" => plain::scalar(&ctx.data_opt::<AppState>()?.file_url(self.0.id, true)),
            _ => None,
        }
    }
}

/// A file attached to a message.
#[Object]
impl Attachment {
    /// The file's id, as in its download link.
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// The uploader's file name, cleaned of paths and control characters.
    async fn name(&self) -> &str {
        &self.0.original_name
    }

    /// The type found in the content itself.
    async fn mime_type(&self) -> &str {
        &self.0.mime_type
    }

    /// The stored size (for images, after metadata was removed).
    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    /// Pixels, for images.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }

    /// Pixels, for images.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }

    /// A signed download link valid for a few minutes; null once the file is purged.
    async fn url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.0.purged_at.is_some() {
            return Ok(None);
        }
        Ok(Some(app(ctx)?.file_url(self.0.id, false)))
    }

    /// A signed link to a preview of at most 320 px, for images.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.0.purged_at.is_some() || self.0.thumbnail_path.is_none() {
            return Ok(None);
        }
        Ok(Some(app(ctx)?.file_url(self.0.id, true)))
    }

    /// True once retention removed the file ("file expired").
    async fn purged(&self) -> bool {
        self.0.purged_at.is_some()
    }
}

/// Relay paging information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More items follow the last one of this page.
    pub has_next_page: bool,
    /// Items precede the first one of this page.
    pub has_previous_page: bool,
    /// The cursor of the first item; pass it as `before` to page back.
    pub start_cursor: Option<String>,
    /// The cursor of the last item; pass it as `after` to page on.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// The page of `cursors` (its edges' cursors, in order).
    pub fn of<'a>(
        mut cursors: impl DoubleEndedIterator<Item = &'a String>,
        has_previous_page: bool,
        has_next_page: bool,
    ) -> Self {
        let start_cursor = cursors.next().cloned();
        Self {
            has_next_page,
            has_previous_page,
            end_cursor: cursors
                .next_back()
                .cloned()
                .or_else(|| start_cursor.clone()),
            start_cursor,
        }
    }
}

/// A page of chats.
pub struct ChatConnection {
    pub edges: Vec<ChatEdge>,
    pub page_info: PageInfo,
    pub filter: ChatFilter,
}

impl PlainFields for PageInfo {
    fn plain_field<'a>(
        &self,
        _ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "hasNextPage" => plain::scalar(&self.has_next_page),
            "hasPreviousPage" => plain::scalar(&self.has_previous_page),
            "startCursor" => plain::scalar(&self.start_cursor),
            "endCursor" => plain::scalar(&self.end_cursor),
            _ => None,
        }
    }
}

impl PlainFields for ChatConnection {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "edges" => plain::list(&self.edges, ctx, field),
            "pageInfo" => plain::object(&self.page_info, ctx, field),
            // `totalCount` runs a count.
            _ => None,
        }
    }
}

/// A page of chats, newest activity first.
#[Object]
impl ChatConnection {
    /// The chats of this page.
    async fn edges(&self) -> &[ChatEdge] {
        &self.edges
    }

    /// Where this page sits.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many chats match the filter in all (costs one count query; ask only when shown).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let count = chats::count(&app(ctx)?.db, viewer(ctx), &self.filter).await?;
        Ok(count.try_into().unwrap_or(i64::MAX))
    }
}

/// A chat and its cursor.
#[derive(SimpleObject)]
pub struct ChatEdge {
    /// Opaque; pass it as `after` to continue after this chat.
    pub cursor: String,
    /// The chat.
    pub node: Chat,
}

impl PlainFields for ChatEdge {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "cursor" => plain::scalar(&self.cursor),
            "node" => plain::object(&self.node, ctx, field),
            _ => None,
        }
    }
}

impl PlainFields for MessageConnection {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "edges" => plain::list(&self.edges, ctx, field),
            "pageInfo" => plain::object(&self.page_info, ctx, field),
            _ => None,
        }
    }
}

impl PlainFields for MessageEdge {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        match field.node.name.node.as_str() {
            "cursor" => plain::scalar(&self.cursor),
            "node" => plain::object(&self.node, ctx, field),
            _ => None,
        }
    }
}

/// A page of messages, oldest first.
#[derive(SimpleObject)]
pub struct MessageConnection {
    /// The messages of this page, oldest first.
    pub edges: Vec<MessageEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
}

/// A message and its cursor.
#[derive(SimpleObject)]
pub struct MessageEdge {
    /// Opaque; pass it as `after` or `before`.
    pub cursor: String,
    /// The message.
    pub node: Message,
}

/// A member of the support team.
#[derive(SimpleObject)]
pub struct Admin {
    /// A UUIDv7.
    pub id: Uuid,
    /// Lower-cased; the sign-in name.
    pub email: String,
    /// The display name, shown to visitors as the sender of the admin's messages
    /// (`updateMyProfile`). Without one, visitors see no name.
    pub name: Option<String>,
    /// The display name's initials, for an avatar.
    pub initials: Option<String>,
}

impl From<admin::Model> for Admin {
    fn from(model: admin::Model) -> Self {
        Self {
            id: model.id,
            email: model.email,
            initials: model.name.as_deref().map(admins::initials),
            name: model.name,
        }
    }
}

/// What the file picker may offer, and the message length limit.
#[derive(SimpleObject)]
pub struct UploadPolicy {
    /// The largest file accepted, in bytes.
    pub max_file_bytes: i64,
    /// Files per message.
    pub max_files: i32,
    /// Lower-case, without dots.
    pub allowed_extensions: Vec<String>,
    /// The types the content must turn out to be (for the picker's `accept`).
    pub allowed_mime_types: Vec<String>,
    /// The longest message body, in characters.
    pub max_message_chars: i32,
    /// Uploads are checked by a virus scanner before they are stored (clients may say
    /// "Scanning…" while a message with files is on its way).
    pub virus_scanned: bool,
}

/// A change of a chat's status, for a system line in the thread ("Chat closed").
#[derive(SimpleObject, Clone, Debug)]
pub struct StatusEvent {
    /// A UUIDv7: time-ordered.
    pub id: Uuid,
    /// When it happened; put it between the messages by this time.
    pub created_at: DateTime<Utc>,
    /// The status before.
    pub from: ChatStatus,
    /// The status after.
    pub to: ChatStatus,
    /// `VISITOR` when the visitor's message reopened a closed chat, `ADMIN` for an admin's
    /// change.
    pub by: Sender,
    /// The admin who changed it, when they have a display name (never their email).
    pub author: Option<MessageAuthor>,
}

impl StatusEvent {
    /// The chat's status events as the API shows them, with their admins' names (one query for
    /// all of them). An event whose data cannot be read is left out rather than failing the
    /// thread.
    pub async fn load(
        db: &impl sea_orm::ConnectionTrait,
        events: Vec<entity::chat_event::Model>,
    ) -> crate::error::Result<Vec<Self>> {
        let admin_of = |event: &entity::chat_event::Model| {
            event
                .actor
                .strip_prefix("admin:")
                .and_then(|id| Uuid::parse_str(id).ok())
        };
        let ids: Vec<Uuid> = events.iter().filter_map(admin_of).collect();
        let names = admins::display_names(db, &ids).await?;
        Ok(events
            .iter()
            .filter_map(|event| {
                let data = event.data.as_ref()?;
                let status =
                    |key: &str| chats::parse_status(data.get(key)?.as_str()?).map(ChatStatus::from);
                let admin = admin_of(event);
                Some(Self {
                    id: event.id,
                    created_at: event.created_at,
                    from: status("from")?,
                    to: status("to")?,
                    by: if admin.is_some() {
                        Sender::Admin
                    } else {
                        Sender::Visitor
                    },
                    author: admin
                        .and_then(|id| names.get(&id))
                        .map(|name| MessageAuthor::new(name)),
                })
            })
            .collect())
    }
}
