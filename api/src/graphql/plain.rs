//! One synchronous pass over a selection set for the hot list types (a history page's 50
//! messages, an inbox page's 50 chats).
//!
//! async-graphql resolves an object by boxing one future per selected field, running them in a
//! `FuturesUnordered` and merging the results into a map: for a page of 50 messages of ten
//! fields that is over 600 boxed futures, most of which return a field of a struct that is
//! already in memory. `Plain<T>` resolves such a subtree in one plain recursive walk instead,
//! for the types that implement [`PlainFields`], and leaves the whole subtree to the derived
//! resolver whenever anything in it is not at hand (a field that needs the database, a field
//! with arguments or directives). The derived types stay the schema's
//! types, so the SDL does not change; this only changes how their values are computed.
//!
//! It follows the derived resolver's rules exactly (async-graphql 7.2's
//! `resolver_utils::container`): response keys by alias, fragments and inline fragments by type
//! condition, `__typename`, repeated keys merged (first scalar wins, objects and lists merged
//! field by field), an object with nothing selected is `null`. `@skip`/`@include` were applied
//! to the document before execution. The unit tests compare both on generated selections.
//!
//! An extension that hooks every field's resolution does not see the fields resolved here:
//! async-graphql does not tell a resolver whether extensions are installed. The schema's one
//! such hook, the response-field cap of `selection.rs`, counts the page field only, which is
//! safe because a page is bounded by itself (100 items at most, each a fixed set of fields).
//! A tracing extension would have to come with `Plain` taken off those fields.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// A type whose fields can be computed from what the value holds, without awaiting.
pub trait PlainFields: OutputType {
    /// The value of `field` (never `__typename`); `None` when it needs the derived resolver.
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value>;
}

impl<T: PlainFields + ?Sized> PlainFields for &T {
    fn plain_field<'a>(
        &self,
        ctx: &ContextSelectionSet<'a>,
        field: &'a Positioned<Field>,
    ) -> Option<Value> {
        T::plain_field(self, ctx, field)
    }
}

/// Resolves with [`PlainFields`] when it can, with `T`'s derived resolver otherwise; to the
/// schema it is `T`.
pub struct Plain<T>(pub T);

impl<T: PlainFields> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match resolve(&self.0, ctx) {
            Some(value) => {
                #[cfg(test)]
                tests::PLAIN_HITS.with(|hits| hits.set(hits.get() + 1));
                Ok(value)
            }
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// The object's value for the selection set of `ctx`, or `None` to leave it to the derived
/// resolver.
pub fn resolve<T: PlainFields + ?Sized>(value: &T, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let mut out = IndexMap::with_capacity(ctx.item.node.items.len());
    collect(value, ctx, &ctx.item.node, &mut out)?;
    Some(if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    })
}

/// A field's object value: `value` resolved over the field's own selection set.
pub fn object<'a, T: PlainFields + ?Sized>(
    value: &T,
    ctx: &ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
) -> Option<Value> {
    resolve(value, &ctx.with_selection_set(&field.node.selection_set))
}

/// A field's list of objects.
pub fn list<'a, T: PlainFields>(
    values: impl IntoIterator<Item = T>,
    ctx: &ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
) -> Option<Value> {
    let inner = ctx.with_selection_set(&field.node.selection_set);
    values
        .into_iter()
        .map(|value| resolve(&value, &inner))
        .collect::<Option<Vec<Value>>>()
        .map(Value::List)
}

/// A scalar or enum field's value, as its output type writes it.
pub fn scalar<T: async_graphql::InputType>(value: &T) -> Option<Value> {
    Some(value.to_value())
}

fn collect<'a, T: PlainFields + ?Sized>(
    value: &T,
    ctx: &ContextSelectionSet<'a>,
    selection_set: &'a SelectionSet,
    out: &mut IndexMap<Name, Value>,
) -> Option<()> {
    for selection in &selection_set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.clone();
                if field.node.name.node == "__typename" {
                    insert_value(out, key, Value::String(T::type_name().into_owned()));
                    continue;
                }
                if !field.node.directives.is_empty() || !field.node.arguments.is_empty() {
                    return None;
                }
                let resolved = value.plain_field(ctx, field)?;
                insert_value(out, key, resolved);
            }
            Selection::FragmentSpread(spread) => {
                let fragment = ctx
                    .query_env
                    .fragments
                    .get(&spread.node.fragment_name.node)?;
                if applies::<T>(
                    ctx,
                    Some(fragment.node.type_condition.node.on.node.as_str()),
                ) {
                    collect(value, ctx, &fragment.node.selection_set.node, out)?;
                }
            }
            Selection::InlineFragment(fragment) => {
                let condition = fragment
                    .node
                    .type_condition
                    .as_ref()
                    .map(|condition| condition.node.on.node.as_str());
                if applies::<T>(ctx, condition) {
                    collect(value, ctx, &fragment.node.selection_set.node, out)?;
                }
            }
        }
    }
    Some(())
}

/// Whether a fragment with this type condition applies to an object of type `T`.
fn applies<T: OutputType + ?Sized>(ctx: &ContextSelectionSet<'_>, condition: Option<&str>) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    let name = T::type_name();
    name == condition
        || ctx
            .schema_env
            .registry
            .implements
            .get(name.as_ref())
            .is_some_and(|interfaces| interfaces.contains(condition))
}

/// async-graphql's rule for a response key seen twice (`resolver_utils::container`), with one
/// lookup of the key instead of two.
fn insert_value(target: &mut IndexMap<Name, Value>, name: Name, value: Value) {
    match target.entry(name) {
        Entry::Vacant(slot) => {
            slot.insert(value);
        }
        Entry::Occupied(mut slot) => merge_value(slot.get_mut(), value),
    }
}

/// The first value of a key stays; objects, and lists of objects, take the fields of the later.
fn merge_value(previous: &mut Value, value: Value) {
    if let Value::Object(target_map) = previous {
        if let Value::Object(object) = value {
            for (key, value) in object {
                insert_value(target_map, key, value);
            }
        }
    } else if let Value::List(target_list) = previous
        && let Value::List(list) = value
    {
        for (index, value) in list.into_iter().enumerate() {
            if let Some(Value::Object(target_map)) = target_list.get_mut(index)
                && let Value::Object(object) = value
            {
                for (key, value) in object {
                    insert_value(target_map, key, value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The plain pass against the derived resolvers, on generated selections: aliases (repeated
    //! keys included), inline and named fragments, `__typename`, `@skip`/`@include` with
    //! literals and variables, objects left with nothing selected.

    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::Arc;

    use async_graphql::{
        EmptyMutation, EmptySubscription, Object, Request, Schema, ValidationMode, Variables,
    };
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::Plain;
    use crate::auth::viewer::Side;
    use crate::graphql::types::{
        Chat, ChatConnection, ChatEdge, Message, MessageConnection, MessageEdge, PageInfo,
        PagePreload,
    };
    use crate::service::chats::ChatFilter;
    use entity::{chat, chat_attachment, chat_message};

    thread_local! {
        /// Objects resolved by the plain pass on this thread.
        pub static PLAIN_HITS: Cell<usize> = const { Cell::new(0) };
    }

    fn at(seconds: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    fn chat_model(n: u128, status: chat::ChatStatus) -> chat::Model {
        chat::Model {
            id: Uuid::from_u128(n),
            visitor_name: n.is_multiple_of(2).then(|| format!("Visitor {n}")),
            visitor_email: n.is_multiple_of(3).then(|| format!("v{n}@example.com")),
            visitor_phone: None,
            chat_token_hash: format!("{n:064}"),
            status,
            source_page: (n == 1).then(|| "https://shop.example/help".to_owned()),
            last_message_at: Some(at(n as i64 * 100 + 9)),
            admin_last_read_at: Some(at(n as i64 * 100 + 3)),
            visitor_last_read_at: None,
            created_at: at(n as i64 * 100),
            updated_at: at(n as i64 * 100 + 9),
        }
    }

    fn message_model(chat: &chat::Model, k: u128) -> chat_message::Model {
        chat_message::Model {
            id: Uuid::from_u128(chat.id.as_u128() * 1000 + k),
            chat_id: chat.id,
            sender_type: if k.is_multiple_of(2) {
                chat_message::SenderType::Visitor
            } else {
                chat_message::SenderType::Admin
            },
            sender_label: (!k.is_multiple_of(3)).then(|| format!("Label {k}")),
            message: (k != 2).then(|| format!("Body {k} \"quoted\" ✓")),
            client_message_id: (k == 1).then(|| "client-1".to_owned()),
            created_at: at(chat.id.as_u128() as i64 * 100 + k as i64),
        }
    }

    fn attachments_of(message: &chat_message::Model, k: u128) -> Vec<chat_attachment::Model> {
        (0..k % 3)
            .map(|i| chat_attachment::Model {
                id: Uuid::from_u128(message.id.as_u128() * 10 + i),
                chat_message_id: message.id,
                original_name: format!("file {i}.png"),
                mime_type: "image/png".into(),
                size_bytes: 1000 + i as i64,
                sha256: String::new(),
                storage_path: String::new(),
                width: (i == 0).then_some(640),
                height: (i == 0).then_some(480),
                thumbnail_path: None,
                purged_at: (i == 1).then(|| at(5000)),
                created_at: message.created_at,
            })
            .collect()
    }

    fn history() -> MessageConnection {
        let chat = chat_model(1, chat::ChatStatus::Open);
        let edges: Vec<MessageEdge> = (0..5)
            .map(|k| {
                let model = message_model(&chat, k);
                let attachments = attachments_of(&model, k);
                let mut node = Message::new(model, &chat);
                node.preloaded_attachments = Some(attachments);
                MessageEdge {
                    cursor: format!("cursor-{k}"),
                    node,
                }
            })
            .collect();
        MessageConnection {
            page_info: PageInfo {
                has_next_page: false,
                has_previous_page: true,
                start_cursor: Some("cursor-0".into()),
                end_cursor: None,
            },
            edges,
        }
    }

    fn inbox() -> ChatConnection {
        let chats: Vec<chat::Model> = (1..=4)
            .map(|n| {
                let status = [
                    chat::ChatStatus::Open,
                    chat::ChatStatus::Pending,
                    chat::ChatStatus::Closed,
                ][n as usize % 3];
                chat_model(n, status)
            })
            .collect();
        let mut preload = PagePreload::default();
        let mut last = HashMap::new();
        let mut files = HashMap::new();
        for chat in chats.iter().skip(1) {
            let k = chat.id.as_u128() % 3;
            let message = message_model(chat, k);
            files.insert(message.id, attachments_of(&message, k + 1));
            last.insert(chat.id, message);
        }
        preload.last_messages = Some(last);
        preload.attachments = Some(files);
        preload.unread_counts = Some(
            chats
                .iter()
                .map(|c| (c.id, c.id.as_u128() as i64))
                .collect(),
        );
        let preload = Arc::new(preload);
        ChatConnection {
            edges: chats
                .into_iter()
                .map(|model| ChatEdge {
                    cursor: format!("chat-{}", model.id),
                    node: Chat::new(model, Side::Admin).with_preload(preload.clone()),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: true,
                has_previous_page: false,
                start_cursor: None,
                end_cursor: Some("chat-4".into()),
            },
            filter: ChatFilter::default(),
        }
    }

    struct PlainQuery;

    #[Object(name = "Query")]
    impl PlainQuery {
        async fn page(&self) -> Plain<MessageConnection> {
            Plain(history())
        }
        async fn inbox(&self) -> Plain<ChatConnection> {
            Plain(inbox())
        }
    }

    struct DerivedQuery;

    #[Object(name = "Query")]
    impl DerivedQuery {
        async fn page(&self) -> MessageConnection {
            history()
        }
        async fn inbox(&self) -> ChatConnection {
            inbox()
        }
    }

    /// Scalar fields and object fields (with their type) of each type the generator visits.
    fn fields_of(
        ty: &str,
    ) -> (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    ) {
        match ty {
            "MessageConnection" => (&[], &[("edges", "MessageEdge"), ("pageInfo", "PageInfo")]),
            "ChatConnection" => (&[], &[("edges", "ChatEdge"), ("pageInfo", "PageInfo")]),
            "MessageEdge" => (&["cursor"], &[("node", "Message")]),
            "ChatEdge" => (&["cursor"], &[("node", "Chat")]),
            "PageInfo" => (
                &["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
                &[],
            ),
            "Message" => (
                &[
                    "id",
                    "chatId",
                    "sender",
                    "senderLabel",
                    "body",
                    "createdAt",
                    "readAt",
                    "clientMessageId",
                ],
                &[("attachments", "Attachment"), ("author", "MessageAuthor")],
            ),
            "Attachment" => (
                &[
                    "id",
                    "name",
                    "mimeType",
                    "sizeBytes",
                    "width",
                    "height",
                    "purged",
                ],
                &[],
            ),
            "Chat" => (
                &[
                    "id",
                    "status",
                    "sourcePage",
                    "createdAt",
                    "updatedAt",
                    "lastMessageAt",
                    "unreadCount",
                ],
                &[("visitor", "Visitor"), ("lastMessage", "Message")],
            ),
            "Visitor" => (&["name", "email", "phone"], &[]),
            "MessageAuthor" => (&["displayName", "initials"], &[]),
            _ => (&[], &[]),
        }
    }

    /// A query from a seed: deterministic, so proptest's failures print something to replay.
    struct Generator {
        state: u64,
        fragments: Vec<String>,
    }

    impl Generator {
        fn below(&mut self, n: usize) -> usize {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            (self.state % n as u64) as usize
        }

        fn directive(&mut self) -> &'static str {
            [
                "",
                "",
                "",
                " @skip(if: true)",
                " @skip(if: false)",
                " @include(if: $yes)",
                " @include(if: $no)",
                " @skip(if: $no) @include(if: true)",
            ][self.below(8)]
        }

        fn alias(&mut self, name: &str) -> String {
            // The same alias always names the same field, so repeated keys are valid and
            // merged rather than rejected.
            match self.below(4) {
                0 => format!("{name}A: "),
                1 => format!("{name}B: "),
                _ => String::new(),
            }
        }

        fn selection(&mut self, ty: &str, depth: usize) -> String {
            let (scalars, objects) = fields_of(ty);
            let mut parts = Vec::new();
            for _ in 0..1 + self.below(5) {
                let choice = self.below(12);
                let part = match choice {
                    0 => format!("{}__typename{}", self.alias("t"), self.directive()),
                    1 | 2 if depth < 5 => {
                        let condition = if self.below(2) == 0 {
                            format!("on {ty} ")
                        } else {
                            String::new()
                        };
                        let directive = self.directive();
                        let inner = self.selection(ty, depth + 1);
                        format!("... {condition}{directive} {{ {inner} }}")
                    }
                    3 if depth < 5 => {
                        let slot = self.fragments.len();
                        self.fragments.push(String::new());
                        let inner = self.selection(ty, depth + 1);
                        self.fragments[slot] = format!("fragment F{slot} on {ty} {{ {inner} }}");
                        format!("...F{slot}{}", self.directive())
                    }
                    _ if !objects.is_empty()
                        && depth < 5
                        && (choice >= 9 || scalars.is_empty()) =>
                    {
                        let (name, object) = objects[self.below(objects.len())];
                        let alias = self.alias(name);
                        let directive = self.directive();
                        let inner = self.selection(object, depth + 1);
                        format!("{alias}{name}{directive} {{ {inner} }}")
                    }
                    _ if !scalars.is_empty() => {
                        let name = scalars[self.below(scalars.len())];
                        format!("{}{name}{}", self.alias(name), self.directive())
                    }
                    _ => "__typename".to_owned(),
                };
                parts.push(part);
            }
            parts.join(" ")
        }

        fn query(seed: u64) -> String {
            let mut generator = Self {
                state: seed | 1,
                fragments: Vec::new(),
            };
            let page = generator.selection("MessageConnection", 0);
            let inbox = generator.selection("ChatConnection", 0);
            format!(
                "query($yes: Boolean!, $no: Boolean!) {{ __typename @include(if: $yes) @skip(if: $no) page {{ {page} }} inbox {{ {inbox} }} }} {}",
                generator.fragments.join(" ")
            )
        }
    }

    fn run<Q: async_graphql::ObjectType + 'static>(
        schema: &Schema<Q, EmptyMutation, EmptySubscription>,
        query: &str,
    ) -> String {
        let variables = Variables::from_json(serde_json::json!({ "yes": true, "no": false }));
        let request = Request::new(query).variables(variables);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime for the test");
        let response = runtime.block_on(schema.execute(request));
        serde_json::to_string(&response).unwrap_or_default()
    }

    fn compare(query: &str) -> Result<(), TestCaseError> {
        // Fast validation: the rule on unused variables does not count uses in directives
        // of fields that end up skipped, and this compares execution, not validation.
        let plain = Schema::build(PlainQuery, EmptyMutation, EmptySubscription)
            .validation_mode(ValidationMode::Fast)
            .finish();
        let derived = Schema::build(DerivedQuery, EmptyMutation, EmptySubscription)
            .validation_mode(ValidationMode::Fast)
            .finish();
        let hits = PLAIN_HITS.with(Cell::get);
        let from_plain = run(&plain, query);
        let taken = PLAIN_HITS.with(Cell::get) - hits;
        let from_derived = run(&derived, query);
        prop_assert_eq!(&from_plain, &from_derived, "query: {}", query);
        prop_assert!(
            !from_plain.contains("\"errors\""),
            "{} for {}",
            from_plain,
            query
        );
        // Both objects went through the plain pass (not its fallback).
        prop_assert_eq!(taken, 2, "query: {}", query);
        Ok(())
    }

    #[test]
    fn the_schema_is_the_same_with_plain_types() {
        let plain = Schema::new(PlainQuery, EmptyMutation, EmptySubscription);
        let derived = Schema::new(DerivedQuery, EmptyMutation, EmptySubscription);
        assert_eq!(plain.sdl(), derived.sdl());
    }

    #[test]
    fn a_full_history_page_and_inbox_match() {
        let query = "query($yes: Boolean!, $no: Boolean!) { __typename @include(if: $yes) @skip(if: $no) \
            page { edges { cursor node { id chatId sender senderLabel body createdAt readAt clientMessageId \
            attachments { id name mimeType sizeBytes width height purged __typename } } } \
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } \
            inbox { edges { cursor node { id status visitor { name email phone } sourcePage createdAt \
            updatedAt lastMessageAt unreadCount lastMessage { id sender body attachments { name } } } } \
            pageInfo { hasNextPage endCursor } } }";
        compare(query).unwrap_or_else(|error| panic!("{error}"));
    }

    #[test]
    fn everything_skipped_is_null_on_both() {
        compare(
            "query($yes: Boolean!, $no: Boolean!) { __typename @include(if: $yes) @skip(if: $no) \
             page { pageInfo @skip(if: true) { hasNextPage } } inbox { edges { node { id @include(if: $no) } } } }",
        )
        .unwrap_or_else(|error| panic!("{error}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn generated_selections_resolve_as_the_derived_types_do(seed in any::<u64>()) {
            compare(&Generator::query(seed))?;
        }
    }
}
