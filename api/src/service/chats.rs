//! Chats: start, look up, list (filters, search, keyset paging), status, visitor details, read.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::cursor::Cursor;
use crate::auth::viewer::{Side, Viewer};
use crate::auth::visitor_token;
use crate::clock::now;
use crate::domain;
use crate::error::{Error, Result};
use crate::realtime::{EventBus, Notice, NoticeKind};
use crate::webhooks::{EventType, Hooks, events as webhook_events};
use entity::chat::{self, ChatStatus};
use entity::chat_event::{self, EventKind};

/// What a visitor may tell about themselves when starting a chat.
#[derive(Debug, Default)]
pub struct NewChat {
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_phone: Option<String>,
    pub source_page: Option<String>,
}

/// Visitor details to change: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct VisitorChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
}

#[derive(Debug, Default, Clone)]
pub struct ChatFilter {
    pub statuses: Vec<ChatStatus>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub search: Option<String>,
    pub unread_only: bool,
}

pub const MAX_PAGE: u64 = 100;

/// The inbox order: last message, or the start of a chat that has none yet. The same expression
/// is indexed (`idx_chats_activity`), so it must stay written exactly like this.
pub const ACTIVITY: &str = "COALESCE(chats.last_message_at, chats.created_at)";

pub fn activity_of(chat: &chat::Model) -> DateTime<Utc> {
    chat.last_message_at.unwrap_or(chat.created_at)
}

pub async fn start(
    db: &DatabaseConnection,
    bus: &EventBus,
    hooks: &Hooks,
    input: NewChat,
) -> Result<(chat::Model, String)> {
    let visitor_name = domain::short_text("visitorName", input.visitor_name.as_deref(), 200)?;
    let visitor_email = domain::email(input.visitor_email.as_deref())?;
    let visitor_phone = domain::phone(input.visitor_phone.as_deref())?;
    let source_page = domain::short_text("sourcePage", input.source_page.as_deref(), 2048)?;
    let (token, token_hash) = visitor_token::generate();
    let at = now();
    let chat = chat::ActiveModel {
        id: Set(Uuid::now_v7()),
        visitor_name: Set(visitor_name),
        visitor_email: Set(visitor_email),
        visitor_phone: Set(visitor_phone),
        chat_token_hash: Set(token_hash),
        status: Set(ChatStatus::Open),
        source_page: Set(source_page),
        last_message_at: Set(None),
        admin_last_read_at: Set(None),
        visitor_last_read_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let txn = super::begin_write(db).await?;
    let chat = chat.insert(&txn).await?;
    record(&txn, chat.id, EventKind::Started, "visitor", None).await?;
    hooks
        .emit(&txn, EventType::ChatStarted, Some(chat.id), || {
            webhook_events::chat_started(&chat)
        })
        .await?;
    txn.commit().await?;
    hooks.committed();
    bus.publish(Notice::new(NoticeKind::ChatStarted, chat.id))
        .await;
    Ok((chat, token))
}

/// The chat, if this viewer may see it.
pub async fn get(db: &impl ConnectionTrait, viewer: &Viewer, chat_id: Uuid) -> Result<chat::Model> {
    viewer.require_chat(chat_id)?;
    chat::Entity::find_by_id(chat_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("chat"))
}

/// The chat, locked for the rest of the transaction (`FOR UPDATE` on Postgres; on SQLite
/// `BEGIN IMMEDIATE` already lets one writer in at a time). Writes to one chat take turns, so
/// two sends cannot both miss a `clientMessageId` and store a message twice.
pub async fn get_for_update(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    chat_id: Uuid,
) -> Result<chat::Model> {
    viewer.require_chat(chat_id)?;
    chat::Entity::find_by_id(chat_id)
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or(Error::NotFound("chat"))
}

pub async fn set_status(
    db: &DatabaseConnection,
    bus: &EventBus,
    hooks: &Hooks,
    viewer: &Viewer,
    chat_id: Uuid,
    status: ChatStatus,
) -> Result<chat::Model> {
    viewer.require_admin()?;
    let txn = super::begin_write(db).await?;
    let chat = get_for_update(&txn, viewer, chat_id).await?;
    if chat.status == status {
        return Ok(chat);
    }
    let from = chat.status;
    let mut active = chat.into_active_model();
    active.status = Set(status);
    active.updated_at = Set(now());
    let chat = active.update(&txn).await?;
    let data = serde_json::json!({ "from": status_name(from), "to": status_name(status) });
    let event_id = record(
        &txn,
        chat_id,
        EventKind::StatusChanged,
        &viewer.actor(),
        Some(data),
    )
    .await?;
    hooks
        .emit(&txn, EventType::ChatStatusChanged, Some(chat_id), || {
            webhook_events::status_changed(&chat, from, &viewer.actor())
        })
        .await?;
    txn.commit().await?;
    hooks.committed();
    bus.publish(Notice::new(NoticeKind::StatusChanged, chat_id).with_event(event_id))
        .await;
    Ok(chat)
}

pub async fn update_visitor(
    db: &DatabaseConnection,
    bus: &EventBus,
    hooks: &Hooks,
    viewer: &Viewer,
    chat_id: Uuid,
    changes: VisitorChanges,
) -> Result<chat::Model> {
    // Validate everything before touching the database.
    let name = changes
        .name
        .map(|v| domain::short_text("name", v.as_deref(), 200))
        .transpose()?;
    let email = changes
        .email
        .map(|v| domain::email(v.as_deref()))
        .transpose()?;
    let phone = changes
        .phone
        .map(|v| domain::phone(v.as_deref()))
        .transpose()?;

    let txn = super::begin_write(db).await?;
    let chat = get_for_update(&txn, viewer, chat_id).await?;
    let mut active = chat.clone().into_active_model();
    let mut changed = Vec::new();
    if let Some(name) = name
        && name != chat.visitor_name
    {
        active.visitor_name = Set(name);
        changed.push("name");
    }
    if let Some(email) = email
        && email != chat.visitor_email
    {
        active.visitor_email = Set(email);
        changed.push("email");
    }
    if let Some(phone) = phone
        && phone != chat.visitor_phone
    {
        active.visitor_phone = Set(phone);
        changed.push("phone");
    }
    if changed.is_empty() {
        return Ok(chat);
    }
    active.updated_at = Set(now());
    let chat = active.update(&txn).await?;
    let data = serde_json::json!({ "fields": changed });
    record(
        &txn,
        chat_id,
        EventKind::VisitorUpdated,
        &viewer.actor(),
        Some(data),
    )
    .await?;
    hooks
        .emit(&txn, EventType::VisitorUpdated, Some(chat_id), || {
            webhook_events::visitor_updated(&chat, &changed)
        })
        .await?;
    txn.commit().await?;
    hooks.committed();
    bus.publish(Notice::new(NoticeKind::VisitorUpdated, chat_id))
        .await;
    Ok(chat)
}

/// Marks the other side's messages read for the viewer's side. Admins share one mark: any admin
/// opening a chat reads it for the team.
pub async fn mark_read(
    db: &DatabaseConnection,
    bus: &EventBus,
    hooks: &Hooks,
    viewer: &Viewer,
    chat_id: Uuid,
) -> Result<chat::Model> {
    let side = viewer.require_chat(chat_id)?;
    let txn = super::begin_write(db).await?;
    let chat = get_for_update(&txn, viewer, chat_id).await?;
    let read_mark = match side {
        Side::Admin => chat.admin_last_read_at,
        Side::Visitor => chat.visitor_last_read_at,
    };
    // Nothing new since the last mark: no write, no event.
    let Some(last_message_at) = chat.last_message_at else {
        return Ok(chat);
    };
    if read_mark.is_some_and(|mark| mark >= last_message_at) {
        return Ok(chat);
    }
    let at = now().max(last_message_at);
    let mut active = chat.into_active_model();
    match side {
        Side::Admin => active.admin_last_read_at = Set(Some(at)),
        Side::Visitor => active.visitor_last_read_at = Set(Some(at)),
    }
    let chat = active.update(&txn).await?;
    record(&txn, chat_id, EventKind::Read, &viewer.actor(), None).await?;
    hooks
        .emit(&txn, EventType::ChatRead, Some(chat_id), || {
            let by = match side {
                Side::Admin => "admin",
                Side::Visitor => "visitor",
            };
            webhook_events::read(&chat, by)
        })
        .await?;
    txn.commit().await?;
    hooks.committed();
    bus.publish(Notice::new(NoticeKind::Read, chat_id).from_side(side))
        .await;
    Ok(chat)
}

/// A chat on an inbox page, with the team's unread count when the page was asked for it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub chat: chat::Model,
    pub unread: Option<i64>,
    /// The newest message (`Some(None)`: the chat has none), when it came with the page.
    pub last_message: Option<Option<entity::chat_message::Model>>,
}

/// What an inbox page brings along for each chat, in its own statement.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageFields {
    /// The unread count from the team's side.
    pub unread: bool,
    /// The newest message, on Postgres (a `LATERAL` join: one index probe per chat). SQLite
    /// has no `LATERAL`; there it takes a statement of its own (`messages::last_messages`).
    pub last_message: bool,
}

/// A page of the inbox, newest activity first; `true` when more follow. `fields` says what
/// comes with each chat in the same statement.
pub async fn list(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    filter: &ChatFilter,
    first: u64,
    after: Option<Cursor>,
    fields: PageFields,
) -> Result<(Vec<Listed>, bool)> {
    viewer.require_admin()?;
    let first = first.clamp(1, MAX_PAGE);
    let backend = db.get_database_backend();
    let pattern = filter.search.as_deref().and_then(search_pattern);
    // The inbox's first pages (no search, no cursor, no time bounds) hold no value from the
    // request but the page size and enums (statuses, the sender type of the unread counts).
    let only_ours = after.is_none()
        && pattern.is_none()
        && filter.updated_after.is_none()
        && filter.updated_before.is_none();
    let mut chats = match pattern {
        // A search is the union of two pages, each planned on its own: chats with a matching
        // message, and chats whose visitor matches. As one statement (`id IN (…) OR visitor
        // ILIKE …`) the planner walked the whole activity index testing every chat's visitor
        // details: 100 ms for a rare term on 100k chats, and building the full set of matching
        // messages first cost 800 ms for a common word. Apart, each branch gets the plan its
        // term deserves: a common word walks the activity index and stops at the 51st hit, a
        // rare one takes its few rows from the trigram index and sorts them.
        Some(pattern) if backend == DbBackend::Postgres => {
            let base = base_conditions(filter);
            let (by_message, by_visitor) = tokio::try_join!(
                page_of(
                    db,
                    base.clone().add(postgres_message_match(pattern.clone())),
                    first,
                    after,
                    fields,
                    false,
                ),
                page_of(
                    db,
                    base.add(postgres_visitor_match(pattern)),
                    first,
                    after,
                    fields,
                    false,
                ),
            )?;
            let mut chats = by_message;
            chats.extend(by_visitor);
            chats.sort_by_key(|listed| {
                std::cmp::Reverse((activity_of(&listed.chat), listed.chat.id))
            });
            chats.dedup_by(|a, b| a.chat.id == b.chat.id);
            chats
        }
        _ => {
            let condition = conditions(backend, filter);
            page_of(db, condition, first, after, fields, only_ours).await?
        }
    };
    let has_more = chats.len() as u64 > first;
    chats.truncate(first as usize);
    Ok((chats, has_more))
}

/// Up to `first + 1` chats meeting `condition`, after the cursor, newest activity first.
/// `only_ours`: the statement holds no value from the request but the page size and enums, so
/// its values may be written into its text.
async fn page_of(
    db: &impl ConnectionTrait,
    condition: Condition,
    first: u64,
    after: Option<Cursor>,
    fields: PageFields,
    only_ours: bool,
) -> Result<Vec<Listed>> {
    let mut query = chat::Entity::find().filter(condition);
    if let Some(after) = after {
        // Built with sea-query: custom SQL with `?` placeholders is not valid on Postgres.
        query = query.filter(sea_orm::sea_query::ExprTrait::lt(
            Expr::tuple([
                Expr::cust(ACTIVITY),
                Expr::col((chat::Entity, chat::Column::Id)),
            ]),
            Expr::tuple([Expr::value(after.at), Expr::value(after.id)]),
        ));
    }
    let query = query
        .order_by_desc(Expr::cust(ACTIVITY))
        .order_by_desc(chat::Column::Id)
        .limit(first + 1);
    let with_last = fields.last_message && db.get_database_backend() == DbBackend::Postgres;
    if !fields.unread && !with_last {
        let chats = query.all(db).await?;
        return Ok(chats
            .into_iter()
            .map(|chat| Listed {
                chat,
                unread: None,
                last_message: None,
            })
            .collect());
    }
    let query = if fields.unread {
        query.expr_as(unread_of_each(Side::Admin), "unread")
    } else {
        query
    };
    let mut statement = query.into_query();
    if with_last {
        join_last_message(&mut statement);
    }
    let rows = if only_ours && db.get_database_backend() == DbBackend::Postgres {
        // Postgres plans a statement with parameters afresh at every run when its generic
        // plan looks dearer, as the inbox's does: ~0.2 ms of its CPU per request, a sixth of
        // the statement's cost. With the values written into the text (ours only, see `list`)
        // it is planned once per connection, like any statement without parameters; the few
        // texts (page sizes, status sets) stay in each connection's statement cache.
        use sea_orm::sea_query::PostgresQueryBuilder;
        db.query_all_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            statement.to_string(PostgresQueryBuilder),
        ))
        .await?
    } else {
        db.query_all(&statement).await?
    };
    let mut listed = Vec::new();
    for row in rows {
        listed.push(Listed {
            chat: chat::Model::from_query_result(&row, "")?,
            unread: if fields.unread {
                Some(row.try_get::<i64>("", "unread")?)
            } else {
                None
            },
            last_message: if with_last {
                Some(entity::chat_message::Model::from_query_result_optional(
                    &row,
                    LAST_PREFIX,
                )?)
            } else {
                None
            },
        });
    }
    Ok(listed)
}

/// Column prefix of the newest message's columns in an inbox row.
const LAST_PREFIX: &str = "lm_";

/// Adds each chat's newest message to an inbox statement (Postgres): `LEFT JOIN LATERAL` a
/// one-row probe of the thread index, its columns prefixed `lm_`, so the page and its
/// previews are one statement.
fn join_last_message(statement: &mut sea_orm::sea_query::SelectStatement) {
    use entity::chat_message;
    use sea_orm::sea_query::{Alias, Asterisk, ExprTrait, JoinType, Order, Query};
    use sea_orm::{IdenStatic, Iterable};
    let (m, last) = (Alias::new("m"), Alias::new("last_message"));
    let newest = Query::select()
        .column((m.clone(), Asterisk))
        .from_as(chat_message::Entity, m.clone())
        .and_where(
            Expr::col((m.clone(), chat_message::Column::ChatId))
                .equals((chat::Entity, chat::Column::Id)),
        )
        .order_by((m.clone(), chat_message::Column::CreatedAt), Order::Desc)
        .order_by((m, chat_message::Column::Id), Order::Desc)
        .limit(1)
        .to_owned();
    for column in chat_message::Column::iter() {
        statement.expr_as(
            Expr::col((last.clone(), column)),
            Alias::new(format!("{LAST_PREFIX}{}", column.as_str())),
        );
    }
    statement.join_lateral(JoinType::LeftJoin, newest, last, Expr::cust("TRUE"));
}

pub async fn count(db: &impl ConnectionTrait, viewer: &Viewer, filter: &ChatFilter) -> Result<u64> {
    viewer.require_admin()?;
    Ok(chat::Entity::find()
        .filter(conditions(db.get_database_backend(), filter))
        .count(db)
        .await?)
}

fn conditions(backend: DbBackend, filter: &ChatFilter) -> Condition {
    let mut condition = base_conditions(filter);
    if let Some(pattern) = filter.search.as_deref().and_then(search_pattern) {
        condition = condition.add(search_condition(backend, pattern));
    }
    condition
}

/// Every filter but the search.
fn base_conditions(filter: &ChatFilter) -> Condition {
    let mut condition = Condition::all();
    if !filter.statuses.is_empty() {
        condition = condition.add(chat::Column::Status.is_in(filter.statuses.iter().copied()));
    }
    if let Some(after) = filter.updated_after {
        condition = condition.add(chat::Column::UpdatedAt.gte(after));
    }
    if let Some(before) = filter.updated_before {
        condition = condition.add(chat::Column::UpdatedAt.lt(before));
    }
    if filter.unread_only {
        // The same index range as the inbox's unread counts, asked only whether it is empty.
        condition = condition.add(Expr::exists(unread_of(Side::Admin, Expr::value(1))));
    }
    condition
}

/// `%term%` with LIKE's wildcards removed from the term: search is for substrings, not patterns.
fn search_pattern(term: &str) -> Option<String> {
    let term: String = term
        .chars()
        .filter(|c| !matches!(c, '%' | '_' | '\\'))
        .collect();
    let term = term.trim();
    (!term.is_empty()).then(|| format!("%{term}%"))
}

/// Case-insensitive substring match on visitor name, email and phone, and on message text.
/// Both sides are index-backed (trigram GIN on Postgres, FTS5 trigram on SQLite) for terms of
/// three characters or more.
fn search_condition(backend: DbBackend, pattern: String) -> SimpleExpr {
    match backend {
        // Postgres numbers its placeholders: `?` would reach the server as a literal `?`.
        // Both sets of ids come from their trigram index (`list` pages through the two
        // separately; this form serves `count`, which needs every match anyway).
        DbBackend::Postgres => Expr::cust_with_values(
            format!(
                "chats.id IN (SELECT m.chat_id FROM chat_messages m WHERE m.message ILIKE $1 \
                 UNION SELECT v.id FROM chats v WHERE {} ILIKE $2)",
                visitor_text("v")
            ),
            [
                sea_orm::Value::from(pattern.clone()),
                sea_orm::Value::from(pattern),
            ],
        ),
        // SQLite's LIKE folds ASCII only ("ZOË" would miss "Zoë"); the trigram tokenizer's MATCH
        // folds all of Unicode, and a quoted phrase matches as a substring. A term too short
        // for a trigram has no MATCH, so it falls back to LIKE.
        _ => match pattern.trim_matches('%') {
            term if term.chars().count() >= 3 => {
                let phrase = format!("\"{}\"", term.replace('"', "\"\""));
                Expr::cust_with_values(
                    "(chats.id IN (SELECT chat_id FROM chat_messages_fts WHERE chat_messages_fts MATCH ?) \
                     OR chats.id IN (SELECT chat_id FROM chats_fts WHERE chats_fts MATCH ?))",
                    [
                        sea_orm::Value::from(phrase.clone()),
                        sea_orm::Value::from(phrase),
                    ],
                )
            }
            _ => Expr::cust_with_values(
                "(chats.id IN (SELECT chat_id FROM chat_messages_fts WHERE message LIKE ?) \
                 OR chats.id IN (SELECT chat_id FROM chats_fts WHERE visitor LIKE ?))",
                [
                    sea_orm::Value::from(pattern.clone()),
                    sea_orm::Value::from(pattern),
                ],
            ),
        },
    }
}

/// The visitor's details as one string, exactly as `idx_chats_visitor_trgm` indexes them.
fn visitor_text(table: &str) -> String {
    format!(
        "(COALESCE({table}.visitor_name, '') || ' ' || COALESCE({table}.visitor_email, '') \
         || ' ' || COALESCE({table}.visitor_phone, ''))"
    )
}

/// Postgres: the chat has a message matching the pattern.
fn postgres_message_match(pattern: String) -> SimpleExpr {
    Expr::cust_with_values(
        "EXISTS (SELECT 1 FROM chat_messages m WHERE m.chat_id = chats.id AND m.message ILIKE $1)",
        [sea_orm::Value::from(pattern)],
    )
}

/// Postgres: the chat's visitor details match the pattern.
fn postgres_visitor_match(pattern: String) -> SimpleExpr {
    Expr::cust_with_values(
        format!("{} ILIKE $1", visitor_text("chats")),
        [sea_orm::Value::from(pattern)],
    )
}

pub fn status_name(status: ChatStatus) -> &'static str {
    match status {
        ChatStatus::Open => "open",
        ChatStatus::Pending => "pending",
        ChatStatus::Closed => "closed",
    }
}

/// Appends to the chat's history (`chat_events`). Returns the event's id.
pub async fn record(
    db: &impl ConnectionTrait,
    chat_id: Uuid,
    kind: EventKind,
    actor: &str,
    data: Option<serde_json::Value>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    chat_event::ActiveModel {
        id: Set(id),
        chat_id: Set(chat_id),
        kind: Set(kind),
        actor: Set(actor.to_owned()),
        data: Set(data),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// The most status changes one `statusEvents` call returns.
pub const MAX_STATUS_EVENTS: u64 = 100;

/// The chat's status changes with `since <= created_at < until` (each bound when given): the
/// newest `last`, oldest first, so that clients can put them between the messages they show.
pub async fn status_events(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    chat_id: Uuid,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    last: u64,
) -> Result<Vec<chat_event::Model>> {
    viewer.require_chat(chat_id)?;
    if last > MAX_STATUS_EVENTS {
        return Err(Error::bad_input(format!(
            "last may be at most {MAX_STATUS_EVENTS}"
        )));
    }
    let mut query = chat_event::Entity::find()
        .filter(chat_event::Column::ChatId.eq(chat_id))
        .filter(chat_event::Column::Kind.eq(EventKind::StatusChanged));
    if let Some(since) = since {
        query = query.filter(chat_event::Column::CreatedAt.gte(since));
    }
    if let Some(until) = until {
        query = query.filter(chat_event::Column::CreatedAt.lt(until));
    }
    let mut events = query
        .order_by_desc(chat_event::Column::CreatedAt)
        .order_by_desc(chat_event::Column::Id)
        .limit(last)
        .all(db)
        .await?;
    events.reverse();
    Ok(events)
}

/// One status change, by id (for the live event that announces it).
pub async fn status_event(
    db: &impl ConnectionTrait,
    chat_id: Uuid,
    id: Uuid,
) -> Result<Option<chat_event::Model>> {
    Ok(chat_event::Entity::find_by_id(id)
        .filter(chat_event::Column::ChatId.eq(chat_id))
        .filter(chat_event::Column::Kind.eq(EventKind::StatusChanged))
        .one(db)
        .await?)
}

/// A status name as stored in an event's data (`status_name`'s inverse).
pub fn parse_status(name: &str) -> Option<ChatStatus> {
    match name {
        "open" => Some(ChatStatus::Open),
        "pending" => Some(ChatStatus::Pending),
        "closed" => Some(ChatStatus::Closed),
        _ => None,
    }
}

/// Unread counts of the other side's messages, from `side`'s point of view, for many chats in
/// one query; chats with none are left out.
pub async fn unread_counts(
    db: &impl ConnectionTrait,
    side: Side,
    chat_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>> {
    if chat_ids.is_empty() {
        return Ok(Vec::new());
    }
    let counts: Vec<(Uuid, i64)> = chat::Entity::find()
        .select_only()
        .column(chat::Column::Id)
        .expr_as(unread_of_each(side), "unread")
        .filter(chat::Column::Id.is_in(chat_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(counts.into_iter().filter(|(_, count)| *count > 0).collect())
}

/// The unread count of the chat on the current row of `chats`, as a correlated subquery.
fn unread_of_each(side: Side) -> SimpleExpr {
    use entity::chat_message;
    use sea_orm::sea_query::{Alias, ExprTrait};
    let count = Expr::col((Alias::new("m"), chat_message::Column::Id)).count();
    SimpleExpr::SubQuery(None, Box::new(unread_of(side, count).into()))
}

/// `what` of the other side's messages that `side` has not read, in the chat on the current
/// row of `chats` (`m` names the messages).
///
/// Each chat's unread messages are a range of `idx_chat_messages_chat_created`:
/// `(chat_id, created_at)` past the chat's read mark. Joining the messages to the chats instead
/// read every message of every chat on the page and looked its chat up once per message (13 ms
/// for an inbox page of busy chats on 1M messages; this is 2 ms). The mark is compared through
/// COALESCE with the epoch, not `mark IS NULL OR …`, which no index range can serve.
fn unread_of(side: Side, what: Expr) -> sea_orm::sea_query::SelectStatement {
    use entity::chat_message::{self, SenderType};
    use sea_orm::sea_query::{Alias, ExprTrait, Func, Query};
    let (sender, mark) = match side {
        Side::Admin => (SenderType::Visitor, chat::Column::AdminLastReadAt),
        Side::Visitor => (SenderType::Admin, chat::Column::VisitorLastReadAt),
    };
    let m = Alias::new("m");
    Query::select()
        .expr(what)
        .from_as(chat_message::Entity, m.clone())
        .and_where(
            Expr::col((m.clone(), chat_message::Column::ChatId))
                .equals((chat::Entity, chat::Column::Id)),
        )
        .and_where(Expr::col((m.clone(), chat_message::Column::SenderType)).eq(sender))
        .and_where(
            Expr::col((m, chat_message::Column::CreatedAt)).gt(Func::coalesce([
                Expr::col((chat::Entity, mark)),
                Expr::value(DateTime::<Utc>::UNIX_EPOCH),
            ])),
        )
        .to_owned()
}
