//! Subscriptions over real WebSockets: both sides hear each other, across instances too.

use crate::common;

use std::time::Duration;

use common::ws::{self, subscribe};
use common::{Backend, spawn_app};
use serde_json::json;

const CHAT_EVENTS: &str = "subscription($chatId: UUID!) { chatEvents(chatId: $chatId) { kind typing sender chat { id status unreadCount } message { body sender readAt } } }";
const INBOX_EVENTS: &str = "subscription { inboxEvents { kind typing sender chat { id status unreadCount visitor { name } } message { body sender } } }";

async fn visitor_and_admin_hear_each_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Robin")).await;
    let mut inbox = subscribe(app.port, Some(&admin), INBOX_EVENTS, json!({})).await;
    let mut thread = subscribe(
        app.port,
        Some(&visitor),
        CHAT_EVENTS,
        json!({ "chatId": chat_id }),
    )
    .await;

    app.send(&visitor, &chat_id, "is anyone there?").await;
    let event = inbox.expect_kind("inboxEvents", "MESSAGE_ADDED").await;
    assert_eq!(event["message"]["body"], "is anyone there?");
    assert_eq!(event["message"]["sender"], "VISITOR");
    assert_eq!(event["chat"]["unreadCount"], 1);
    assert_eq!(event["chat"]["visitor"]["name"], "Robin");

    app.data(
        "mutation($id: UUID!) { setTyping(chatId: $id, typing: true) }",
        json!({ "id": chat_id }),
        Some(&admin),
    )
    .await;
    let typing = thread.expect_kind("chatEvents", "TYPING").await;
    assert_eq!(typing["typing"], true);
    assert_eq!(typing["sender"], "ADMIN");

    app.send(&admin, &chat_id, "yes, hello!").await;
    let event = thread.expect_kind("chatEvents", "MESSAGE_ADDED").await;
    assert_eq!(event["message"]["body"], "yes, hello!");
    assert_eq!(event["message"]["sender"], "ADMIN");
    assert_eq!(
        event["chat"]["unreadCount"], 1,
        "unread from the visitor's side"
    );

    app.data(
        "mutation($id: UUID!) { setChatStatus(chatId: $id, status: PENDING) { status } }",
        json!({ "id": chat_id }),
        Some(&admin),
    )
    .await;
    let event = thread.expect_kind("chatEvents", "STATUS_CHANGED").await;
    assert_eq!(event["chat"]["status"], "PENDING");

    app.data(
        "mutation($id: UUID!) { markChatRead(chatId: $id) { id } }",
        json!({ "id": chat_id }),
        Some(&visitor),
    )
    .await;
    let event = inbox.expect_kind("inboxEvents", "READ").await;
    assert_eq!(event["sender"], "VISITOR");
}

async fn a_visitor_cannot_listen_to_another_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_mine, visitor) = app.start_chat(None).await;
    let (theirs, _) = app.start_chat(None).await;
    let mut sub = subscribe(
        app.port,
        Some(&visitor),
        CHAT_EVENTS,
        json!({ "chatId": theirs }),
    )
    .await;
    let event = sub
        .next_event(Duration::from_secs(5))
        .await
        .expect("an error, not silence");
    assert_eq!(
        event["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{event}"
    );

    let mut inbox = subscribe(app.port, Some(&visitor), INBOX_EVENTS, json!({})).await;
    let event = inbox
        .next_event(Duration::from_secs(5))
        .await
        .expect("an error, not silence");
    assert_eq!(
        event["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{event}"
    );
}

async fn foreign_origins_cannot_open_a_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(
        ws::try_connect(app.port, Some("https://evil.example"))
            .await
            .is_err()
    );
    assert!(
        ws::try_connect(app.port, Some("http://127.0.0.1:8080"))
            .await
            .is_ok()
    );
    // The server's own origin, whatever the public URL says.
    let own = format!("http://127.0.0.1:{}", app.port);
    assert!(ws::try_connect(app.port, Some(&own)).await.is_ok());
}

/// Sockets per address are capped, and a socket that never initialises is closed.
async fn idle_and_excess_sockets_are_refused(backend: Backend) {
    let app =
        common::spawn_app_with(backend, |settings| settings.max_sockets_per_address = 2).await;
    let first = ws::connect(app.port, None).await;
    let mut second = ws::connect(app.port, None).await;
    let third = ws::try_connect(app.port, None).await;
    assert!(
        third.is_err(),
        "a third socket from one address must be refused"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _fourth = ws::connect(app.port, None).await;

    // `second` never sent connection_init: it is closed after the deadline.
    use futures_util::StreamExt;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(frame)) = second.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an uninitialised socket stayed open past the deadline"
    );
}

/// One socket may hold a bounded number of subscriptions.
async fn subscriptions_per_socket_are_capped(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let mut socket = subscribe(app.port, Some(&admin), INBOX_EVENTS, json!({})).await;
    for id in 2..=25 {
        socket
            .subscribe_again(&id.to_string(), INBOX_EVENTS, json!({}))
            .await;
    }
    assert!(
        !socket.closed_within(Duration::from_millis(300)).await,
        "25 subscriptions are allowed"
    );
    socket.subscribe_again("26", INBOX_EVENTS, json!({})).await;
    assert!(
        socket.closed_within(Duration::from_secs(5)).await,
        "the 26th must close the socket"
    );
}

backend_tests!(
    subscriptions_per_socket_are_capped,
    idle_and_excess_sockets_are_refused,
    visitor_and_admin_hear_each_other,
    a_visitor_cannot_listen_to_another_chat,
    foreign_origins_cannot_open_a_socket,
);

/// Two servers on one Postgres database deliver each other's events, and a killed LISTEN
/// connection comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_events_through_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let first = spawn_app(Backend::Postgres(url)).await;
    let second = first.spawn_another().await;
    let admin = second.admin_token().await;
    // Give both LISTEN connections a moment to be established.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut inbox = subscribe(second.port, Some(&admin), INBOX_EVENTS, json!({})).await;

    let (chat_id, visitor) = first.start_chat(Some("Across")).await;
    first
        .send(&visitor, &chat_id, "sent to the first instance")
        .await;
    let event = inbox.expect_kind("inboxEvents", "MESSAGE_ADDED").await;
    assert_eq!(event["message"]["body"], "sent to the first instance");

    // Kill every LISTEN connection of this database; delivery must resume on its own.
    use sea_orm::ConnectionTrait;
    let killed = first
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "killed")
        .unwrap();
    assert_eq!(killed, 2, "one LISTEN connection per instance");
    let mut delivered = false;
    for attempt in 0..20 {
        first
            .send(&visitor, &chat_id, &format!("after the restart {attempt}"))
            .await;
        if let Some(event) = inbox.next_event(Duration::from_millis(500)).await
            && event["data"]["inboxEvents"]["kind"] == "MESSAGE_ADDED"
        {
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "events stopped after the LISTEN connection was terminated"
    );
}
