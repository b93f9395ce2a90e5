//! Chat queries and mutations, for visitors and admins alike: the credential decides the role.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, InputObject, Lookahead, MaybeUndefined, Object, Upload};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::plain::Plain;
use super::schema::{app, client_address, viewer};
use super::types::{
    Chat, ChatConnection, ChatEdge, ChatStatus, Message, PageInfo, PagePreload, UploadPolicy,
};
use crate::auth::Viewer;
use crate::domain::{self, MessageBody};
use crate::error::Error;
use crate::files::policy::FilePolicy;
use crate::files::scan::Scanner;
use crate::files::upload::Received;
use crate::realtime::{Notice, NoticeKind};
use crate::service::chats::{self, ChatFilter as ServiceFilter, NewChat, VisitorChanges};
use crate::service::cursor::Cursor;
use crate::service::erasure::{self, Eraser};
use crate::service::messages;
use crate::service::sending::{self, Draft, Outlets};

type Result<T> = async_graphql::Result<T>;

/// Narrows the chat list. All given conditions must hold.
#[derive(InputObject, Default)]
pub struct ChatFilter {
    /// Any of these statuses; all when empty or absent.
    pub status: Option<Vec<ChatStatus>>,
    /// Changed at or after this instant.
    pub updated_after: Option<DateTime<Utc>>,
    /// Changed before this instant.
    pub updated_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the visitor's name, email or phone, or of any message.
    pub search: Option<String>,
    /// Only chats with visitor messages the team has not read.
    pub unread_only: Option<bool>,
}

/// What a visitor may tell when starting a chat; all optional.
#[derive(InputObject, Default)]
pub struct StartChatInput {
    /// Up to 200 characters.
    pub visitor_name: Option<String>,
    /// A valid address, or nothing.
    pub visitor_email: Option<String>,
    /// Digits and + - ( ) . and spaces.
    pub visitor_phone: Option<String>,
    /// The page the chat starts from.
    pub source_page: Option<String>,
}

/// Visitor details to change. An absent field stays as it is; null or "" clears it.
#[derive(InputObject)]
pub struct VisitorInput {
    /// Up to 200 characters.
    pub name: MaybeUndefined<String>,
    /// A valid address.
    pub email: MaybeUndefined<String>,
    /// Digits and + - ( ) . and spaces.
    pub phone: MaybeUndefined<String>,
}

/// A new chat and the visitor token that opens it.
#[derive(async_graphql::SimpleObject)]
pub struct StartChatPayload {
    /// The new chat.
    pub chat: Chat,
    /// Shown once: keep it (the widget keeps it in localStorage) and send it as
    /// `Authorization: Bearer …`.
    pub chat_token: String,
}

fn change(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// A chat: a visitor may read its own only, an admin any.
    async fn chat(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Chat>> {
        let viewer = viewer(ctx);
        let side = viewer.require_chat(id)?;
        match chats::get(&app(ctx)?.db, viewer, id).await {
            Ok(chat) => Ok(Some(Chat::new(chat, side))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The inbox (admins): newest activity first.
    async fn chats(
        &self,
        ctx: &Context<'_>,
        filter: Option<ChatFilter>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Plain<ChatConnection>> {
        let viewer = viewer(ctx);
        viewer.require_admin()?;
        let filter = filter.unwrap_or_default();
        let filter = ServiceFilter {
            statuses: filter
                .status
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            updated_after: filter.updated_after,
            updated_before: filter.updated_before,
            search: filter.search,
            unread_only: filter.unread_only.unwrap_or(false),
        };
        let first = u64::try_from(first.unwrap_or(50))
            .map_err(|_| Error::bad_input("first must not be negative"))?;
        let after = after.as_deref().map(Cursor::decode).transpose()?;
        let db = &app(ctx)?.db;
        let node = ctx.look_ahead().field("edges").field("node");
        let with_unread = node.field("unreadCount").exists();
        let fields = chats::PageFields {
            unread: with_unread,
            last_message: node.field("lastMessage").exists(),
        };
        let (mut found, has_next_page) =
            chats::list(db, viewer, &filter, first, after, fields).await?;
        let ids: Vec<Uuid> = found.iter().map(|listed| listed.chat.id).collect();
        // The newest messages, when they came with the page (Postgres).
        let with_page: Option<Vec<_>> = found
            .iter_mut()
            .map(|listed| listed.last_message.take())
            .collect::<Option<Vec<_>>>()
            .map(|found| found.into_iter().flatten().collect());
        let mut preload = preload_page(db, &node, &ids, with_page).await?;
        if with_unread {
            preload.unread_counts = Some(
                found
                    .iter()
                    .map(|listed| (listed.chat.id, listed.unread.unwrap_or(0)))
                    .collect(),
            );
        }
        let preload = Arc::new(preload);
        let edges: Vec<ChatEdge> = found
            .into_iter()
            .map(|chats::Listed { chat, .. }| ChatEdge {
                cursor: Cursor {
                    at: chats::activity_of(&chat),
                    id: chat.id,
                }
                .encode(),
                node: Chat::new(chat, crate::auth::viewer::Side::Admin)
                    .with_preload(preload.clone()),
            })
            .collect();
        Ok(Plain(ChatConnection {
            page_info: PageInfo::of(
                edges.iter().map(|edge| &edge.cursor),
                after.is_some(),
                has_next_page,
            ),
            edges,
            filter,
        }))
    }

    /// What the file picker may offer. Open to anyone.
    async fn upload_policy(&self, ctx: &Context<'_>) -> Result<UploadPolicy> {
        let settings = &app(ctx)?.settings;
        Ok(UploadPolicy {
            max_file_bytes: settings.max_file_bytes.try_into().unwrap_or(i64::MAX),
            max_files: settings.max_files.try_into().unwrap_or(i32::MAX),
            allowed_extensions: settings.allowed_extensions.clone(),
            allowed_mime_types: crate::files::policy::FilePolicy::from_settings(settings)
                .mime_types()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            max_message_chars: settings.max_message_chars.try_into().unwrap_or(i32::MAX),
            virus_scanned: settings.clamd_url.is_some(),
        })
    }
}

/// Fetches the last messages (and their attachments) of every chat on an inbox page, when the
/// query asks for them, one statement each, unless the page brought the last messages along
/// (`with_page`). (Unread counts come with the page itself.)
async fn preload_page(
    db: &sea_orm::DatabaseConnection,
    node: &Lookahead<'_>,
    chat_ids: &[Uuid],
    with_page: Option<Vec<entity::chat_message::Model>>,
) -> Result<PagePreload> {
    let mut preload = PagePreload::default();
    let last_message = node.field("lastMessage");
    if last_message.exists() {
        let found = match with_page {
            Some(found) => found,
            None => messages::last_messages(db, chat_ids).await?,
        };
        if last_message.field("attachments").exists() {
            let message_ids: Vec<Uuid> = found.iter().map(|message| message.id).collect();
            let mut by_message: HashMap<Uuid, Vec<_>> = HashMap::new();
            for attachment in messages::attachments_of(db, &message_ids).await? {
                by_message
                    .entry(attachment.chat_message_id)
                    .or_default()
                    .push(attachment);
            }
            preload.attachments = Some(by_message);
        }
        preload.last_messages = Some(
            found
                .into_iter()
                .map(|message| (message.chat_id, message))
                .collect(),
        );
    }
    Ok(preload)
}

/// The GraphQL side of an upload: each `Upload` taken out of the request, as sent.
fn received(ctx: &Context<'_>, uploads: Vec<Upload>) -> Result<Vec<Received>> {
    uploads
        .iter()
        .map(|upload| {
            let value = upload
                .value(ctx)
                .map_err(|_| Error::bad_input("an upload could not be read"))?;
            Ok(Received {
                name: value.filename,
                content: value.content,
            })
        })
        .collect()
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a chat (anyone; rate-limited per client address) and returns its visitor token.
    async fn start_chat(
        &self,
        ctx: &Context<'_>,
        input: Option<StartChatInput>,
    ) -> Result<StartChatPayload> {
        let app = app(ctx)?;
        app.limits.start_chat(client_address(ctx)).await?;
        let input = input.unwrap_or_default();
        let new = NewChat {
            visitor_name: input.visitor_name,
            visitor_email: input.visitor_email,
            visitor_phone: input.visitor_phone,
            source_page: input.source_page,
        };
        let (chat, chat_token) = chats::start(&app.db, &app.bus, &app.hooks, new).await?;
        Ok(StartChatPayload {
            chat: Chat::new(chat, crate::auth::viewer::Side::Visitor),
            chat_token,
        })
    }

    /// Sends a message as the visitor or an admin (from the credential). Needs a body or at
    /// least one file. Repeating a `clientMessageId` in the same chat returns the first message.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        body: Option<String>,
        attachments: Option<Vec<Upload>>,
        client_message_id: Option<String>,
    ) -> Result<Message> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        viewer.require_chat(chat_id)?;
        if matches!(viewer, Viewer::Visitor { .. }) {
            app.limits
                .send_message(client_address(ctx), chat_id)
                .await?;
        }
        let body = MessageBody::parse(body.as_deref(), app.settings.max_message_chars)?
            .map(MessageBody::into_inner);
        let client_message_id = domain::client_message_id(client_message_id.as_deref())?;
        let uploads = received(ctx, attachments.unwrap_or_default())?;
        let to = Outlets {
            db: &app.db,
            bus: &app.bus,
            email: app.notify.trigger,
            hooks: &app.hooks,
            storage: app.storage.as_ref(),
        };
        let sent = sending::send_uploads(
            to,
            &FilePolicy::from_settings(&app.settings),
            Scanner::from_settings(&app.settings).as_ref(),
            viewer,
            chat_id,
            Draft {
                body,
                client_message_id,
            },
            uploads,
        )
        .await?;
        Ok(Message::new(sent.message, &sent.chat))
    }

    /// Marks the other side's messages in this chat read for the viewer's side.
    async fn mark_chat_read(&self, ctx: &Context<'_>, chat_id: Uuid) -> Result<Chat> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        let side = viewer.require_chat(chat_id)?;
        let chat = chats::mark_read(&app.db, &app.bus, &app.hooks, viewer, chat_id).await?;
        Ok(Chat::new(chat, side))
    }

    /// Changes the visitor's details: the visitor of the chat, or an admin.
    async fn update_visitor(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        input: VisitorInput,
    ) -> Result<Chat> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        let side = viewer.require_chat(chat_id)?;
        let changes = VisitorChanges {
            name: change(input.name),
            email: change(input.email),
            phone: change(input.phone),
        };
        let chat =
            chats::update_visitor(&app.db, &app.bus, &app.hooks, viewer, chat_id, changes).await?;
        Ok(Chat::new(chat, side))
    }

    /// Sets a chat's status (admins).
    async fn set_chat_status(
        &self,
        ctx: &Context<'_>,
        chat_id: Uuid,
        status: ChatStatus,
    ) -> Result<Chat> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        let chat = chats::set_status(
            &app.db,
            &app.bus,
            &app.hooks,
            viewer,
            chat_id,
            status.into(),
        )
        .await?;
        Ok(Chat::new(chat, crate::auth::viewer::Side::Admin))
    }

    /// Erases a chat for good: its messages, files, events and the visitor's token (which
    /// stops working). An admin may erase any chat, a visitor its own. An audit line keeps who
    /// erased which chat id and when, without content.
    async fn delete_chat(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let app = app(ctx)?;
        let eraser = Eraser::for_viewer(viewer(ctx), id)?;
        erasure::erase_chat(
            &app.db,
            app.storage.as_ref(),
            &app.bus,
            &app.hooks,
            eraser,
            id,
        )
        .await?;
        // At once here; other instances on the CHAT_DELETED notice.
        app.visitor_chats.forget_chat(id);
        Ok(true)
    }

    /// Tells the other side that the viewer is (or stopped) typing. Not stored.
    async fn set_typing(&self, ctx: &Context<'_>, chat_id: Uuid, typing: bool) -> Result<bool> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        let side = viewer.require_chat(chat_id)?;
        app.limits.typing(chat_id)?;
        // The chat must exist (an admin may name any id).
        chats::get(&app.db, viewer, chat_id).await?;
        app.bus
            .publish(
                Notice::new(NoticeKind::Typing, chat_id)
                    .from_side(side)
                    .typing(typing),
            )
            .await;
        Ok(typing)
    }
}
