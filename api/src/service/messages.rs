//! Messages: send (idempotent by `clientMessageId`), page through a thread, and the batched
//! look-ups behind the chat list (last message per chat, attachments per message).

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Asterisk, Expr, Func, JoinType, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement, TryInsertResult,
};
use uuid::Uuid;

use super::chats;
use super::cursor::Cursor;
use crate::auth::viewer::{Side, Viewer};
use crate::clock::now;
use crate::error::{Error, Result};
use crate::notify::EmailTrigger;
use crate::realtime::{EventBus, Notice, NoticeKind};
use crate::webhooks::{EventType, Hooks, events};
use entity::chat::{self, ChatStatus};
use entity::chat_attachment;
use entity::chat_event::EventKind;
use entity::chat_message::{self, SenderType};

pub use crate::files::store::NewAttachment;

/// The part of the one-statement send after the chat is locked (`c`): the message, the chat
/// advanced to it, and both rows back (the message's columns prefixed `m_`).
macro_rules! send_statement_tail {
    ($sender:literal, $read_mark:literal) => {
        concat!(
            "m AS (INSERT INTO chat_messages (id, chat_id, sender_type, sender_label, message, client_message_id, created_at) \
             SELECT $2, c.id, '", $sender, "', c.label, $3, $4, c.at FROM c \
             ON CONFLICT (chat_id, client_message_id) DO NOTHING RETURNING *), \
             u AS (UPDATE chats SET last_message_at = m.created_at, updated_at = m.created_at, ",
            $read_mark, " = m.created_at FROM m WHERE chats.id = m.chat_id RETURNING chats.*) \
             SELECT u.*, m.id AS m_id, m.chat_id AS m_chat_id, m.sender_type AS m_sender_type, \
             m.sender_label AS m_sender_label, m.message AS m_message, \
             m.client_message_id AS m_client_message_id, m.created_at AS m_created_at FROM u, m"
        )
    };
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
///
/// The common case is the same four statements a hand-written send needs (BEGIN, UPDATE the
/// chat, INSERT the message, COMMIT): the UPDATE comes first, so it takes the chat's row lock
/// (writes to one chat take turns) and its RETURNING gives the message's time and the sender's
/// label without a read before it; the INSERT skips a repeated `clientMessageId` through the
/// unique index instead of a look-up, and a retry found that way rolls the UPDATE back.
///
/// With email on (`email`), one more statement writes the burst's notification job in the same
/// transaction (`notify::jobs::on_message`), so a rolled-back send emails nobody. Likewise a
/// webhook delivery per endpoint that wants the message (`Hooks::emit`: no statement when no
/// endpoint does, one INSERT otherwise).
pub async fn send(
    db: &DatabaseConnection,
    bus: &EventBus,
    email: Option<EmailTrigger>,
    hooks: &Hooks,
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
    if db.get_database_backend() == DbBackend::Postgres
        && new.attachments.is_empty()
        && email.is_none()
        && !hooks.wants(EventType::MessageCreated)
        && let Some((chat, message)) =
            send_in_one_statement(db, viewer, side, chat_id, &new).await?
    {
        return Ok(announce(bus, side, chat, message, None).await);
    }
    let txn = super::begin_write(db).await?;
    let (chat, reopened) = advance_chat(&txn, viewer, side, chat_id).await?;
    let at = chat.last_message_at.unwrap_or_else(now);

    let (sender_type, sender_label) = match viewer {
        // The display name, never the email: visitors read the label.
        Viewer::Admin(admin) => (SenderType::Admin, admin.name.clone()),
        _ => (SenderType::Visitor, chat.visitor_name.clone()),
    };
    let client_message_id = new.client_message_id.clone();
    let inserted = chat_message::Entity::insert(chat_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        chat_id: Set(chat_id),
        sender_type: Set(sender_type),
        sender_label: Set(sender_label),
        message: Set(new.body),
        client_message_id: Set(new.client_message_id),
        created_at: Set(at),
    })
    .on_conflict_do_nothing_on([
        chat_message::Column::ChatId,
        chat_message::Column::ClientMessageId,
    ])
    .exec_with_returning(&txn)
    .await;
    let message = match inserted {
        Ok(TryInsertResult::Inserted(message)) => message,
        // A retry: the first message stands, and the chat stays as it was. (sea-orm 2.0 reports
        // an INSERT … RETURNING that the conflict left without a row as "not found".)
        Ok(TryInsertResult::Conflicted | TryInsertResult::Empty)
        | Err(DbErr::RecordNotFound(_)) => {
            txn.rollback().await?;
            return retried(db, viewer, chat_id, client_message_id.as_deref()).await;
        }
        Err(error) => return Err(error.into()),
    };

    // What a `message.created` webhook lists, kept only when some endpoint wants it.
    let files: Vec<(Uuid, String, String, i64)> = if hooks.wants(EventType::MessageCreated) {
        new.attachments
            .iter()
            .map(|file| {
                (
                    file.id,
                    file.original_name.clone(),
                    file.mime_type.clone(),
                    file.size_bytes,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
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
    if let Some(email) = email {
        crate::notify::jobs::on_message(&txn, email.delay, &chat, &message).await?;
    }
    if reopened.is_some() {
        hooks
            .emit(&txn, EventType::ChatStatusChanged, Some(chat_id), || {
                events::status_changed(&chat, ChatStatus::Closed, &viewer.actor())
            })
            .await?;
    }
    hooks
        .emit(&txn, EventType::MessageCreated, Some(chat_id), || {
            let files: Vec<events::FileInfo<'_>> = files
                .iter()
                .map(|(id, name, mime_type, size_bytes)| events::FileInfo {
                    id: *id,
                    name,
                    mime_type,
                    size_bytes: *size_bytes,
                })
                .collect();
            events::message_created(&chat, &message, &files)
        })
        .await?;
    txn.commit().await?;
    hooks.committed();
    Ok(announce(bus, side, chat, message, reopened).await)
}

/// After a new message is committed: tells the subscribers (and of the reopening, when the
/// message reopened its chat), and makes the answer.
async fn announce(
    bus: &EventBus,
    side: Side,
    chat: chat::Model,
    message: chat_message::Model,
    reopened: Option<Uuid>,
) -> Sent {
    bus.publish(
        Notice::new(NoticeKind::MessageAdded, chat.id)
            .with_message(message.id)
            .from_side(side),
    )
    .await;
    if let Some(event_id) = reopened {
        bus.publish(Notice::new(NoticeKind::StatusChanged, chat.id).with_event(event_id))
            .await;
    }
    Sent {
        message,
        chat,
        created: true,
    }
}

/// The common send on Postgres (a text message to an open chat, nothing else to write with
/// it) as one statement: lock the chat, insert the message, advance the chat. A statement is
/// atomic on its own, so it needs no transaction: one round trip instead of four (BEGIN,
/// UPDATE, INSERT, COMMIT), which on a busy two-core machine was most of a send's cost on both
/// sides of the wire. `None` when it wrote nothing, and the general way then sorts out why: no
/// such chat, a visitor's message that reopens a closed one, or a retried `clientMessageId`.
async fn send_in_one_statement(
    db: &DatabaseConnection,
    viewer: &Viewer,
    side: Side,
    chat_id: Uuid,
    new: &NewMessage,
) -> Result<Option<(chat::Model, chat_message::Model)>> {
    let mut values: Vec<sea_orm::Value> = vec![
        chat_id.into(),
        Uuid::now_v7().into(),
        new.body.clone().into(),
        new.client_message_id.clone().into(),
        now().into(),
    ];
    let sql = match (side, viewer) {
        // The display name, never the email: visitors read the label.
        (Side::Admin, Viewer::Admin(admin)) => {
            values.push(admin.name.clone().into());
            SEND_AS_ADMIN
        }
        (Side::Visitor, _) => SEND_AS_VISITOR,
        _ => return Ok(None),
    };
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
    else {
        return Ok(None);
    };
    let chat = chat::Model::from_query_result(&row, "")?;
    let message = chat_message::Model::from_query_result(&row, "m_")?;
    Ok(Some((chat, message)))
}

/// `send_in_one_statement`'s SQL, for each side. The time is `advance_chat`'s: never earlier
/// than the chat's last message. A visitor's label is the chat's visitor name; an admin's is
/// `$6`.
const SEND_AS_VISITOR: &str = concat!(
    "WITH c AS (SELECT id, visitor_name AS label, GREATEST($5, COALESCE(last_message_at, $5)) AS at \
     FROM chats WHERE id = $1 AND status <> 'closed' FOR UPDATE), ",
    send_statement_tail!("visitor", "visitor_last_read_at")
);
const SEND_AS_ADMIN: &str = concat!(
    "WITH c AS (SELECT id, $6::text AS label, GREATEST($5, COALESCE(last_message_at, $5)) AS at \
     FROM chats WHERE id = $1 FOR UPDATE), ",
    send_statement_tail!("admin", "admin_last_read_at")
);

/// Moves the chat to a new message: its last message time (never earlier than the one before,
/// whatever the clocks of several instances say), its update time and the sender's read mark.
/// Returns the chat as changed, and the status event when a visitor's message reopened it.
async fn advance_chat(
    txn: &DatabaseTransaction,
    viewer: &Viewer,
    side: Side,
    chat_id: Uuid,
) -> Result<(chat::Model, Option<Uuid>)> {
    let advance = |reopen: bool| {
        let read_mark = match side {
            Side::Visitor => chat::Column::VisitorLastReadAt,
            Side::Admin => chat::Column::AdminLastReadAt,
        };
        let now_value = Expr::value(now());
        let at: Expr = Func::greatest([
            now_value.clone(),
            Func::coalesce([Expr::col(chat::Column::LastMessageAt), now_value]).into(),
        ])
        .into();
        let update = chat::Entity::update_many()
            .col_expr(chat::Column::LastMessageAt, at.clone())
            .col_expr(chat::Column::UpdatedAt, at.clone())
            .col_expr(read_mark, at)
            .filter(chat::Column::Id.eq(chat_id));
        if reopen {
            update.col_expr(chat::Column::Status, Expr::value(ChatStatus::Open))
        } else {
            update
        }
    };

    // Reopening is recorded in the chat's history, so a visitor's message to a closed chat
    // leaves this UPDATE without a row and takes the way below.
    let mut update = advance(false);
    if side == Side::Visitor {
        update = update.filter(chat::Column::Status.ne(ChatStatus::Closed));
    }
    if let Some(chat) = update.exec_with_returning(txn).await?.into_iter().next() {
        return Ok((chat, None));
    }

    // No such chat (NOT_FOUND here), or a visitor writing to a closed one.
    let chat = chats::get_for_update(txn, viewer, chat_id).await?;
    let reopens = side == Side::Visitor && chat.status == ChatStatus::Closed;
    let mut reopened = None;
    if reopens {
        let data =
            serde_json::json!({ "from": "closed", "to": "open", "reason": "visitor message" });
        reopened = Some(
            chats::record(
                txn,
                chat_id,
                EventKind::StatusChanged,
                &viewer.actor(),
                Some(data),
            )
            .await?,
        );
    }
    let chat = advance(reopens)
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound("chat"))?;
    Ok((chat, reopened))
}

/// The answer to a retried send: the message stored the first time, in the chat as it is.
async fn retried(
    db: &DatabaseConnection,
    viewer: &Viewer,
    chat_id: Uuid,
    client_message_id: Option<&str>,
) -> Result<Sent> {
    let message = match client_message_id {
        Some(client_id) => find_by_client_id(db, chat_id, client_id).await?,
        None => None,
    }
    .ok_or_else(|| Error::internal(anyhow::anyhow!("a message was neither stored nor found")))?;
    Ok(Sent {
        message,
        chat: chats::get(db, viewer, chat_id).await?,
        created: false,
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
    /// Each message's attachments in upload order (messages without any are absent), when
    /// the page was asked for with them.
    pub attachments: Option<HashMap<Uuid, Vec<chat_attachment::Model>>>,
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
/// With `with_attachments`, the page's attachments come in the same statement.
pub async fn page(
    db: &impl ConnectionTrait,
    chat_id: Uuid,
    args: PageArgs,
    with_attachments: bool,
) -> Result<Page> {
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
    let newest_first = args.last.is_some();
    let wanted = match args.last {
        Some(last) => last.clamp(1, MAX_MESSAGES),
        None => args
            .first
            .unwrap_or(DEFAULT_MESSAGES)
            .clamp(1, MAX_MESSAGES),
    };
    let order = if newest_first {
        Order::Desc
    } else {
        Order::Asc
    };
    // One more than wanted tells whether the window goes on.
    let query = query
        .order_by(chat_message::Column::CreatedAt, order.clone())
        .order_by(chat_message::Column::Id, order.clone())
        .limit(wanted + 1);
    let (mut messages, attachments) = if with_attachments {
        let (messages, attachments) = with_their_attachments(db, query.into_query(), order).await?;
        (messages, Some(attachments))
    } else {
        (query.all(db).await?, None)
    };
    let more = messages.len() as u64 > wanted;
    messages.truncate(wanted as usize);
    if newest_first {
        messages.reverse();
        return Ok(Page {
            messages,
            attachments,
            has_previous: more,
            has_next: args.before.is_some(),
        });
    }
    Ok(Page {
        messages,
        attachments,
        has_previous: args.after.is_some(),
        has_next: more,
    })
}

/// The messages `page` selects, each with its attachments, in one statement: the page as a
/// subquery (its LIMIT served by the thread index), its attachments joined on (their columns
/// prefixed `a_`). The few rows are put in order here, by `order` on `(created_at, id)` and
/// attachments in upload order, so the statement has no sort of its own
/// (`tests/tests/suite/query_plans.rs` holds it to that).
async fn with_their_attachments(
    db: &impl ConnectionTrait,
    page: SelectStatement,
    order: Order,
) -> Result<(
    Vec<chat_message::Model>,
    HashMap<Uuid, Vec<chat_attachment::Model>>,
)> {
    let (m, a) = (Alias::new("m"), Alias::new("a"));
    let mut joined = Query::select();
    joined.column((m.clone(), Asterisk));
    for column in chat_attachment::Column::iter() {
        joined.expr_as(
            Expr::col((a.clone(), column)),
            Alias::new(format!("a_{}", column.as_str())),
        );
    }
    joined.from_subquery(page, m.clone()).join_as(
        JoinType::LeftJoin,
        chat_attachment::Entity,
        a.clone(),
        sea_orm::sea_query::ExprTrait::equals(
            Expr::col((a, chat_attachment::Column::ChatMessageId)),
            (m, chat_message::Column::Id),
        ),
    );

    let mut messages: HashMap<Uuid, chat_message::Model> = HashMap::new();
    let mut attachments: HashMap<Uuid, Vec<chat_attachment::Model>> = HashMap::new();
    for row in db.query_all(&joined).await? {
        let message = chat_message::Model::from_query_result(&row, "")?;
        // Most messages have no attachment: their row's `a_` columns are all NULL, and SeaORM
        // builds an error message for each NULL it meets (a third of a history request's CPU
        // went there). One look at the attachment's id settles it.
        let has_attachment = row.try_get::<Option<Uuid>>("", "a_id")?.is_some();
        if has_attachment
            && let Some(attachment) =
                chat_attachment::Model::from_query_result_optional(&row, "a_")?
        {
            attachments.entry(message.id).or_default().push(attachment);
        }
        messages.entry(message.id).or_insert(message);
    }
    let mut messages: Vec<chat_message::Model> = messages.into_values().collect();
    messages.sort_unstable_by_key(|message| (message.created_at, message.id));
    if order == Order::Desc {
        messages.reverse();
    }
    for files in attachments.values_mut() {
        files.sort_unstable_by_key(|file| (file.created_at, file.id));
    }
    Ok((messages, attachments))
}

/// The newest message of each chat, one index probe per chat, in one statement.
pub async fn last_messages(
    db: &impl ConnectionTrait,
    chat_ids: &[Uuid],
) -> Result<Vec<chat_message::Model>> {
    if chat_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Per chat, the first entry of its `(chat_id, created_at)` index range, newest first.
    let m2 = Alias::new("m2");
    let newest_of_each = Query::select()
        .column((m2.clone(), chat_message::Column::Id))
        .from_as(chat_message::Entity, m2.clone())
        .and_where(sea_orm::sea_query::ExprTrait::equals(
            Expr::col((m2.clone(), chat_message::Column::ChatId)),
            (chat::Entity, chat::Column::Id),
        ))
        .order_by((m2.clone(), chat_message::Column::CreatedAt), Order::Desc)
        .order_by((m2, chat_message::Column::Id), Order::Desc)
        .limit(1)
        .to_owned();
    let newest = Query::select()
        .expr(Expr::SubQuery(None, Box::new(newest_of_each.into())))
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
