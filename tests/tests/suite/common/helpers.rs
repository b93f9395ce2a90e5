//! Helpers shared by the chat API tests (chat_api, chat_list, abuse_controls): raw HTTP posts,
//! requests from a given client address, and row counts read straight from the database.
#![allow(dead_code)]

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::TestApp;

/// A hostile request must be answered, not hang: every raw request gets this much time.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Every field of a chat and its newest 50 messages, as a client would ask for them.
pub const CHAT_FIELDS: &str = "id status sourcePage createdAt updatedAt lastMessageAt unreadCount \
     visitor { name email phone } lastMessage { id body sender senderLabel readAt } \
     messages(last: 50) { edges { cursor node { id chatId sender senderLabel body readAt createdAt clientMessageId } } \
     pageInfo { hasPreviousPage hasNextPage } }";

pub fn chat_query() -> String {
    format!("query($id: UUID!) {{ chat(id: $id) {{ {CHAT_FIELDS} }} }}")
}

/// The chat as `token` (visitor or admin) sees it; fails on any error.
pub async fn chat(app: &TestApp, token: &str, chat_id: &str) -> Value {
    app.data(&chat_query(), json!({ "id": chat_id }), Some(token))
        .await["chat"]
        .clone()
}

/// The message nodes of `chat(...)`'s `messages` connection, oldest first.
pub fn nodes(connection: &Value) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {connection}"))
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

/// Sends a message with an idempotency key; the whole response.
pub async fn send_with_key(
    app: &TestApp,
    token: &str,
    chat_id: &str,
    body: &str,
    client_message_id: &str,
) -> Value {
    app.graphql(
        "mutation($chatId: UUID!, $body: String, $key: String) { \
           sendMessage(chatId: $chatId, body: $body, clientMessageId: $key) { id body sender clientMessageId } }",
        json!({ "chatId": chat_id, "body": body, "key": client_message_id }),
        Some(token),
    )
    .await
}

/// Starts a chat with visitor details: (chat id, visitor token).
pub async fn start_chat_as(
    app: &TestApp,
    name: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
) -> (String, String) {
    let data = app
        .data(
            "mutation($input: StartChatInput) { startChat(input: $input) { chatToken chat { id } } }",
            json!({ "input": { "visitorName": name, "visitorEmail": email, "visitorPhone": phone } }),
            None,
        )
        .await;
    (
        data["startChat"]["chat"]["id"].as_str().unwrap().to_owned(),
        data["startChat"]["chatToken"].as_str().unwrap().to_owned(),
    )
}

pub async fn set_status(app: &TestApp, admin: &str, chat_id: &str, status: &str) -> Value {
    app.data(
        "mutation($id: UUID!, $status: ChatStatus!) { setChatStatus(chatId: $id, status: $status) { id status updatedAt } }",
        json!({ "id": chat_id, "status": status }),
        Some(admin),
    )
    .await["setChatStatus"]
        .clone()
}

pub async fn mark_read(app: &TestApp, token: &str, chat_id: &str) -> Value {
    app.data(
        "mutation($id: UUID!) { markChatRead(chatId: $id) { id unreadCount } }",
        json!({ "id": chat_id }),
        Some(token),
    )
    .await["markChatRead"]
        .clone()
}

/// A GraphQL request as from the client address `forwarded_for` (honoured only by a server
/// with `trust_proxy`).
pub async fn graphql_from(
    app: &TestApp,
    forwarded_for: &str,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> Value {
    let request = super::graphql_request(&app.client, &app.address, query, variables, token)
        .header("x-forwarded-for", forwarded_for);
    super::json_response(request).await
}

/// A POST to /graphql with any content type, headers and body: (HTTP status, body as JSON, or
/// as a JSON string when it is not JSON). Fails if no answer comes within `ANSWER_WITHIN`.
pub async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = app.client.post(app.url("/graphql")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(ANSWER_WITHIN, request.send())
        .await
        .expect("the server answers in time")
        .expect("request sent");
    let status = response.status().as_u16();
    let text = tokio::time::timeout(ANSWER_WITHIN, response.text())
        .await
        .expect("the body arrives in time")
        .expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A JSON GraphQL request, answered in time: (HTTP status, body).
pub async fn post_json(app: &TestApp, body: &Value) -> (u16, Value) {
    post_raw(
        app,
        Some("application/json"),
        &[],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// `extensions.retryAfterSeconds` of the first error.
pub fn retry_after(response: &Value) -> u64 {
    response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterSeconds in {response}"))
}

pub fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("a UUID")
}

/// Rows in `chat_messages` for a chat.
pub async fn stored_messages(app: &TestApp, chat_id: &str) -> u64 {
    use entity::chat_message;
    chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(uuid(chat_id)))
        .count(&app.state.db)
        .await
        .expect("count messages")
}

/// Rows in `chat_events` of one kind for a chat.
pub async fn stored_events(
    app: &TestApp,
    chat_id: &str,
    kind: entity::chat_event::EventKind,
) -> u64 {
    use entity::chat_event;
    chat_event::Entity::find()
        .filter(chat_event::Column::ChatId.eq(uuid(chat_id)))
        .filter(chat_event::Column::Kind.eq(kind))
        .count(&app.state.db)
        .await
        .expect("count events")
}

pub async fn stored_chats(app: &TestApp) -> u64 {
    entity::chat::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count chats")
}

/// A timestamp from the API.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
        .to_utc()
}
