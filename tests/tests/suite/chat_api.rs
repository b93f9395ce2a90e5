//! The chat API as visitors and admins use it: the whole conversation, status and its history,
//! safe retries, paging through a thread, who may see what, and the error codes a client meets.

use crate::common;
use crate::common::helpers;

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, error_code, graphql_request, json_response, spawn_app,
};
use entity::chat_event::EventKind;
use helpers::{
    chat, mark_read, nodes, send_with_key, set_status, stored_events, stored_messages, time,
};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const INBOX: &str = "query($filter: ChatFilter) { chats(filter: $filter) { totalCount edges { node { \
     id status unreadCount visitor { name email } lastMessage { body sender senderLabel } } } } }";

async fn a_visitor_and_an_admin_hold_a_whole_conversation(backend: Backend) {
    let app = spawn_app(backend).await;

    // The visitor starts a chat and gets a token shown once; only its SHA-256 is stored.
    let started = app
        .data(
            "mutation { startChat(input: { visitorName: \"Ada\", visitorEmail: \"Ada@Example.com\", \
               sourcePage: \"https://shop.example.com/cart\" }) { chatToken chat { id status unreadCount \
               sourcePage visitor { name email phone } lastMessage { id } } } }",
            json!({}),
            None,
        )
        .await["startChat"]
        .clone();
    let visitor = started["chatToken"].as_str().unwrap().to_owned();
    let chat_id = started["chat"]["id"].as_str().unwrap().to_owned();
    assert!(
        visitor.starts_with("vt_") && visitor.len() == 46,
        "{visitor}"
    );
    assert_eq!(started["chat"]["status"], "OPEN");
    assert_eq!(started["chat"]["unreadCount"], 0);
    assert_eq!(started["chat"]["lastMessage"], Value::Null);
    assert_eq!(
        started["chat"]["sourcePage"],
        "https://shop.example.com/cart"
    );
    assert_eq!(
        started["chat"]["visitor"],
        json!({ "name": "Ada", "email": "ada@example.com", "phone": null })
    );
    let row = entity::chat::Entity::find_by_id(helpers::uuid(&chat_id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let expected_hash: String = Sha256::digest(visitor.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(row.chat_token_hash, expected_hash);

    // The visitor writes.
    let question = app
        .send(&visitor, &chat_id, "Hello, where is my order #1042?")
        .await;
    assert_eq!(question["sender"], "VISITOR");
    assert_eq!(question["readAt"], Value::Null);

    // The admin sees it in the inbox: one unread message and its preview.
    let admin = app.admin_token().await;
    let me = app
        .data("{ me { id email name } }", json!({}), Some(&admin))
        .await["me"]
        .clone();
    assert_eq!(me["email"], ADMIN_EMAIL);
    let inbox = app.data(INBOX, json!({}), Some(&admin)).await["chats"].clone();
    assert_eq!(inbox["totalCount"], 1);
    let listed = &inbox["edges"][0]["node"];
    assert_eq!(listed["id"], chat_id.as_str());
    assert_eq!(listed["unreadCount"], 1);
    assert_eq!(
        listed["lastMessage"],
        json!({ "body": "Hello, where is my order #1042?", "sender": "VISITOR", "senderLabel": "Ada" })
    );

    // The admin opens it; the message is unread until the admin marks the chat read.
    let opened = chat(&app, &admin, &chat_id).await;
    assert_eq!(opened["unreadCount"], 1);
    let thread = nodes(&opened["messages"]);
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0]["id"], question["id"]);
    assert_eq!(thread[0]["readAt"], Value::Null);
    assert_eq!(mark_read(&app, &admin, &chat_id).await["unreadCount"], 0);
    let inbox = app.data(INBOX, json!({}), Some(&admin)).await["chats"].clone();
    assert_eq!(inbox["edges"][0]["node"]["unreadCount"], 0);

    // Reading it back, the visitor sees the read receipt.
    let seen_by_visitor = chat(&app, &visitor, &chat_id).await;
    let read_at = nodes(&seen_by_visitor["messages"])[0]["readAt"].clone();
    assert_ne!(read_at, Value::Null, "{seen_by_visitor}");
    assert!(time(&read_at) >= time(&question["createdAt"]));
    assert_eq!(seen_by_visitor["unreadCount"], 0);

    // The admin replies under the admin's name; the status stays as it was.
    let reply = app
        .data(
            "mutation($id: UUID!) { sendMessage(chatId: $id, body: \"It ships today.\") { \
               id chatId sender senderLabel body readAt } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await["sendMessage"]
        .clone();
    assert_eq!(reply["sender"], "ADMIN");
    assert_eq!(reply["senderLabel"], me["name"]);
    assert_eq!(reply["senderLabel"], "Admin");
    assert_eq!(reply["chatId"], chat_id.as_str());
    assert_eq!(reply["readAt"], Value::Null);
    // The team's own messages are never unread for the team.
    assert_eq!(chat(&app, &admin, &chat_id).await["unreadCount"], 0);

    // The visitor sees the reply as one unread message, then reads it.
    let seen_by_visitor = chat(&app, &visitor, &chat_id).await;
    assert_eq!(seen_by_visitor["unreadCount"], 1);
    assert_eq!(seen_by_visitor["status"], "OPEN");
    assert_eq!(seen_by_visitor["lastMessage"]["id"], reply["id"]);
    let thread = nodes(&seen_by_visitor["messages"]);
    let bodies: Vec<&str> = thread.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(
        bodies,
        ["Hello, where is my order #1042?", "It ships today."]
    );
    assert_eq!(thread[1]["sender"], "ADMIN");
    assert_eq!(thread[1]["senderLabel"], "Admin");
    assert_eq!(thread[1]["readAt"], Value::Null);
    assert_eq!(mark_read(&app, &visitor, &chat_id).await["unreadCount"], 0);

    // And the admin sees that the visitor read the reply.
    let seen_by_admin = chat(&app, &admin, &chat_id).await;
    let thread = nodes(&seen_by_admin["messages"]);
    assert_eq!(thread[1]["id"], reply["id"]);
    assert_ne!(thread[1]["readAt"], Value::Null, "{seen_by_admin}");
    assert!(time(&thread[1]["readAt"]) >= time(&thread[1]["createdAt"]));
    assert_eq!(seen_by_admin["lastMessage"]["body"], "It ships today.");
    assert_eq!(seen_by_admin["lastMessageAt"], thread[1]["createdAt"]);
}

async fn status_changes_are_recorded_and_a_visitor_message_reopens_a_closed_chat(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Lin")).await;
    app.send(&visitor, &chat_id, "My invoice is wrong").await;
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::StatusChanged).await,
        0
    );

    let before = chat(&app, &admin, &chat_id).await;
    let closed = set_status(&app, &admin, &chat_id, "CLOSED").await;
    assert_eq!(closed["status"], "CLOSED");
    assert!(time(&closed["updatedAt"]) >= time(&before["updatedAt"]));
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::StatusChanged).await,
        1
    );
    // Both sides see it.
    assert_eq!(chat(&app, &visitor, &chat_id).await["status"], "CLOSED");
    assert_eq!(chat(&app, &admin, &chat_id).await["status"], "CLOSED");
    // Setting the status it already has changes nothing and records nothing.
    assert_eq!(
        set_status(&app, &admin, &chat_id, "CLOSED").await["status"],
        "CLOSED"
    );
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::StatusChanged).await,
        1
    );

    // An admin reply leaves a closed chat closed.
    app.send(&admin, &chat_id, "Corrected, closing this.").await;
    assert_eq!(chat(&app, &admin, &chat_id).await["status"], "CLOSED");

    // The visitor writing again reopens it, and the reopening is part of the history.
    app.send(&visitor, &chat_id, "One more thing").await;
    assert_eq!(chat(&app, &visitor, &chat_id).await["status"], "OPEN");
    assert_eq!(chat(&app, &admin, &chat_id).await["status"], "OPEN");
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::StatusChanged).await,
        2
    );

    // PENDING is left alone by both sides' messages.
    assert_eq!(
        set_status(&app, &admin, &chat_id, "PENDING").await["status"],
        "PENDING"
    );
    app.send(&admin, &chat_id, "Waiting for your receipt").await;
    app.send(&visitor, &chat_id, "Here it comes").await;
    assert_eq!(chat(&app, &admin, &chat_id).await["status"], "PENDING");
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::StatusChanged).await,
        3
    );
    // The chat's whole history: started, three status changes.
    assert_eq!(stored_events(&app, &chat_id, EventKind::Started).await, 1);
}

async fn visitor_details_can_be_changed_by_the_visitor_and_by_an_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let update = "mutation($id: UUID!, $input: VisitorInput!) { updateVisitor(chatId: $id, input: $input) { \
         id visitor { name email phone } } }";

    let changed = app
        .data(
            update,
            json!({ "id": chat_id, "input": { "name": "Sam", "email": "Sam@Example.org" } }),
            Some(&visitor),
        )
        .await["updateVisitor"]
        .clone();
    assert_eq!(
        changed["visitor"],
        json!({ "name": "Sam", "email": "sam@example.org", "phone": null })
    );
    // An absent field stays; null clears.
    let changed = app
        .data(
            update,
            json!({ "id": chat_id, "input": { "phone": "+1 555 0100", "email": null } }),
            Some(&admin),
        )
        .await["updateVisitor"]
        .clone();
    assert_eq!(
        changed["visitor"],
        json!({ "name": "Sam", "email": null, "phone": "+1 555 0100" })
    );
    assert_eq!(
        chat(&app, &visitor, &chat_id).await["visitor"],
        changed["visitor"]
    );
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::VisitorUpdated).await,
        2
    );
}

async fn a_retried_send_returns_the_first_message_and_stores_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(Some("Rae")).await;

    let first = send_with_key(&app, &visitor, &chat_id, "Is this in stock?", "web-1").await;
    let again = send_with_key(&app, &visitor, &chat_id, "Is this in stock?", "web-1").await;
    assert_eq!(first["data"]["sendMessage"]["clientMessageId"], "web-1");
    assert_eq!(
        again["data"]["sendMessage"], first["data"]["sendMessage"],
        "{again}"
    );
    // Even a retry whose text differs gets the stored message back.
    let edited = send_with_key(&app, &visitor, &chat_id, "Is it in stock??", "web-1").await;
    assert_eq!(edited["data"]["sendMessage"], first["data"]["sendMessage"]);
    assert_eq!(stored_messages(&app, &chat_id).await, 1);

    // Retries racing each other (the client gave up waiting and sent again) still store one.
    let racing = futures_util::future::join_all(
        (0..8).map(|_| send_with_key(&app, &visitor, &chat_id, "Hello?", "web-2")),
    )
    .await;
    let ids: Vec<&Value> = racing
        .iter()
        .map(|response| &response["data"]["sendMessage"]["id"])
        .collect();
    assert!(
        ids.iter().all(|id| id.is_string() && *id == ids[0]),
        "{racing:?}"
    );
    assert_eq!(stored_messages(&app, &chat_id).await, 2);

    // A new key is a new message; the same key in another chat is that chat's own.
    send_with_key(&app, &visitor, &chat_id, "Is this in stock?", "web-3").await;
    assert_eq!(stored_messages(&app, &chat_id).await, 3);
    let (other_chat, other_visitor) = app.start_chat(None).await;
    let elsewhere = send_with_key(&app, &other_visitor, &other_chat, "Hi", "web-1").await;
    assert_ne!(
        elsewhere["data"]["sendMessage"]["id"],
        first["data"]["sendMessage"]["id"]
    );
    assert_eq!(stored_messages(&app, &other_chat).await, 1);
    let thread = nodes(&chat(&app, &visitor, &chat_id).await["messages"]);
    assert_eq!(thread.len(), 3);
}

/// A send writes the message and moves its chat in one go (on Postgres, one statement; on
/// SQLite, a transaction): the message's time is the chat's last message time and update time,
/// never earlier than the message before, and the sender's read mark moves with it.
async fn a_message_advances_its_chat_and_the_senders_read_mark(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Lee")).await;
    let stored = |id: String| {
        let db = app.state.db.clone();
        async move {
            let message = entity::chat_message::Entity::find_by_id(helpers::uuid(&id))
                .one(&db)
                .await
                .unwrap()
                .expect("the message is stored");
            let chat = entity::chat::Entity::find_by_id(message.chat_id)
                .one(&db)
                .await
                .unwrap()
                .expect("its chat");
            (message, chat)
        }
    };

    let asked = app.send(&visitor, &chat_id, "Where is my parcel?").await;
    let (question, chat_after_question) = stored(asked["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(question.sender_label.as_deref(), Some("Lee"));
    assert_eq!(asked["sender"], "VISITOR");
    assert_eq!(
        chat_after_question.last_message_at,
        Some(question.created_at)
    );
    assert_eq!(chat_after_question.updated_at, question.created_at);
    assert_eq!(
        chat_after_question.visitor_last_read_at,
        Some(question.created_at)
    );
    assert_eq!(chat_after_question.admin_last_read_at, None);

    let answered = app.send(&admin, &chat_id, "On its way.").await;
    let (answer, chat_after_answer) = stored(answered["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(answer.sender_label.as_deref(), Some("Admin"));
    assert_eq!(answered["sender"], "ADMIN");
    assert!(answer.created_at >= question.created_at);
    assert_eq!(chat_after_answer.last_message_at, Some(answer.created_at));
    assert_eq!(chat_after_answer.updated_at, answer.created_at);
    assert_eq!(
        chat_after_answer.admin_last_read_at,
        Some(answer.created_at)
    );
    // The visitor has not read the answer yet.
    assert_eq!(
        chat_after_answer.visitor_last_read_at,
        Some(question.created_at)
    );
    assert_eq!(chat(&app, &visitor, &chat_id).await["unreadCount"], 1);

    // A message to a chat that is not there stores nothing and says so.
    let missing = app
        .graphql(
            "mutation($chatId: UUID!) { sendMessage(chatId: $chatId, body: \"Hello?\") { id } }",
            json!({ "chatId": uuid::Uuid::now_v7() }),
            Some(&admin),
        )
        .await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"), "{missing}");
    assert_eq!(stored_messages(&app, &chat_id).await, 2);
}

const PAGE: &str = "query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String) { \
     chat(id: $id) { messages(first: $first, after: $after, last: $last, before: $before) { \
     edges { cursor node { id body } } pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } } }";

async fn page(app: &common::TestApp, token: &str, chat_id: &str, args: Value) -> Value {
    let mut variables = args;
    variables["id"] = json!(chat_id);
    app.data(PAGE, variables, Some(token)).await["chat"]["messages"].clone()
}

fn bodies(connection: &Value) -> Vec<String> {
    nodes(connection)
        .iter()
        .map(|node| node["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_thread_pages_back_and_forward_without_gaps_or_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Pat")).await;
    let mut expected = Vec::new();
    for n in 0..120 {
        let body = format!("message {n:03}");
        // Both sides talk; several messages often share a timestamp, which paging must survive.
        let token = if n % 3 == 2 { &admin } else { &visitor };
        app.send(token, &chat_id, &body).await;
        expected.push(body);
    }

    // Newest page first, then back through older ones.
    let mut seen: Vec<String> = Vec::new();
    let mut connection = page(&app, &visitor, &chat_id, json!({ "last": 50 })).await;
    let mut pages = 0;
    loop {
        pages += 1;
        let mut older = bodies(&connection);
        assert!(!older.is_empty() && older.len() <= 50);
        older.append(&mut seen);
        seen = older;
        if connection["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        assert!(pages < 10, "paging back does not end");
        let before = connection["pageInfo"]["startCursor"].clone();
        connection = page(
            &app,
            &visitor,
            &chat_id,
            json!({ "last": 50, "before": before }),
        )
        .await;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // Oldest first, forward in pages of 30.
    let mut forward: Vec<String> = Vec::new();
    let mut after = Value::Null;
    let mut last_cursor = Value::Null;
    for round in 1.. {
        let connection = page(
            &app,
            &admin,
            &chat_id,
            json!({ "first": 30, "after": after }),
        )
        .await;
        forward.extend(bodies(&connection));
        let edges = connection["edges"].as_array().unwrap();
        assert_eq!(
            connection["pageInfo"]["endCursor"],
            edges.last().unwrap()["cursor"]
        );
        after = connection["pageInfo"]["endCursor"].clone();
        last_cursor = after.clone();
        if connection["pageInfo"]["hasNextPage"] == false {
            assert_eq!(round, 4);
            break;
        }
        assert!(round < 10, "paging forward does not end");
    }
    assert_eq!(forward, expected);

    // Polling after the newest cursor: nothing new, until something is sent.
    let nothing = page(
        &app,
        &visitor,
        &chat_id,
        json!({ "first": 30, "after": last_cursor }),
    )
    .await;
    assert_eq!(nothing["edges"], json!([]));
    assert_eq!(nothing["pageInfo"]["hasNextPage"], false);
    app.send(&admin, &chat_id, "message 120").await;
    let news = page(
        &app,
        &visitor,
        &chat_id,
        json!({ "first": 30, "after": last_cursor }),
    )
    .await;
    assert_eq!(bodies(&news), ["message 120"]);

    // The newest page now ends with it, in chronological order.
    let newest = bodies(&page(&app, &visitor, &chat_id, json!({ "last": 3 })).await);
    assert_eq!(newest, ["message 118", "message 119", "message 120"]);
}

const SEND: &str =
    "mutation($id: UUID!, $body: String) { sendMessage(chatId: $id, body: $body) { id } }";
const MARK_READ: &str = "mutation($id: UUID!) { markChatRead(chatId: $id) { id } }";
const UPDATE_VISITOR: &str =
    "mutation($id: UUID!) { updateVisitor(chatId: $id, input: { name: \"Mallory\" }) { id } }";
const SET_STATUS: &str =
    "mutation($id: UUID!) { setChatStatus(chatId: $id, status: CLOSED) { id } }";
const CHAT: &str = "query($id: UUID!) { chat(id: $id) { id status } }";
const SET_TYPING: &str = "mutation($id: UUID!) { setTyping(chatId: $id, typing: true) }";

/// Every operation that names a chat.
const ON_A_CHAT: [(&str, &str); 6] = [
    ("chat", CHAT),
    ("sendMessage", SEND),
    ("markChatRead", MARK_READ),
    ("updateVisitor", UPDATE_VISITOR),
    ("setChatStatus", SET_STATUS),
    ("setTyping", SET_TYPING),
];

async fn requests_without_a_valid_credential_are_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(Some("Kai")).await;
    let admin = app.admin_token().await;
    // The admin token with its signature altered (mid-signature: the last character carries
    // padding bits a lenient decoder might ignore).
    let mut forged: Vec<char> = admin.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    assert_ne!(forged, admin);
    let unknown_visitor = format!("vt_{}", "A".repeat(43));
    assert_eq!(unknown_visitor.len(), visitor.len());

    for token in [
        None,
        Some("garbage"),
        Some(&*unknown_visitor),
        Some(&*forged),
    ] {
        for (name, query) in ON_A_CHAT {
            let response = app
                .graphql(query, json!({ "id": chat_id, "body": "hi" }), token)
                .await;
            assert_eq!(
                error_code(&response),
                Some("UNAUTHENTICATED"),
                "{name} with {token:?}: {response}"
            );
        }
        for query in [
            "{ chats { totalCount } }",
            "{ me { id } }",
            "{ chats { edges { node { id } } } }",
        ] {
            let response = app.graphql(query, json!({}), token).await;
            assert_eq!(
                error_code(&response),
                Some("UNAUTHENTICATED"),
                "{query} with {token:?}: {response}"
            );
        }
    }
    // Not a bearer credential at all.
    let request = graphql_request(&app.client, &app.address, "{ me { id } }", json!({}), None)
        .header("authorization", format!("Basic {admin}"));
    let response = json_response(request).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    // Nothing happened to the chat.
    assert_eq!(helpers::stored_messages(&app, &chat_id).await, 0);
    let seen = chat(&app, &admin, &chat_id).await;
    assert_eq!(seen["status"], "OPEN");
    assert_eq!(seen["visitor"]["name"], "Kai");

    // A wrong password, and an unknown email, are refused alike.
    let login = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
    let wrong_password = app
        .graphql(
            login,
            json!({ "email": ADMIN_EMAIL, "password": "not the password" }),
            None,
        )
        .await;
    let unknown_email = app
        .graphql(
            login,
            json!({ "email": "nobody@example.com", "password": ADMIN_PASSWORD }),
            None,
        )
        .await;
    assert_eq!(error_code(&wrong_password), Some("UNAUTHENTICATED"));
    assert_eq!(wrong_password["data"], Value::Null);
    assert_eq!(wrong_password, unknown_email);
}

async fn a_visitor_reaches_only_its_own_chat_and_learns_nothing_of_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (own_chat, visitor) = app.start_chat(Some("Eve")).await;
    let (other_chat, other_visitor) = app.start_chat(Some("Bob")).await;
    app.send(&other_visitor, &other_chat, "private").await;
    let missing_chat = uuid::Uuid::now_v7().to_string();

    for (name, query) in ON_A_CHAT {
        let existing = app
            .graphql(
                query,
                json!({ "id": other_chat, "body": "hi" }),
                Some(&visitor),
            )
            .await;
        let missing = app
            .graphql(
                query,
                json!({ "id": missing_chat, "body": "hi" }),
                Some(&visitor),
            )
            .await;
        assert_eq!(
            error_code(&existing),
            Some("FORBIDDEN"),
            "{name}: {existing}"
        );
        // The very same answer, whether the chat exists or not.
        assert_eq!(existing, missing, "{name}");
        assert_eq!(
            existing["errors"].as_array().unwrap().len(),
            1,
            "{existing}"
        );
    }
    // Admin-only operations, even on its own chat.
    for query in [
        "{ chats { totalCount } }",
        "{ chats { edges { node { id } } } }",
        "{ me { id email } }",
    ] {
        let response = app.graphql(query, json!({}), Some(&visitor)).await;
        assert_eq!(
            error_code(&response),
            Some("FORBIDDEN"),
            "{query}: {response}"
        );
        assert_eq!(response["data"], Value::Null, "{response}");
    }
    let response = app
        .graphql(SET_STATUS, json!({ "id": own_chat }), Some(&visitor))
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");

    // The other chat is as it was, and the visitor's own chat shows nothing of it.
    assert_eq!(helpers::stored_messages(&app, &other_chat).await, 1);
    let other = chat(&app, &admin, &other_chat).await;
    assert_eq!(other["visitor"]["name"], "Bob");
    assert_eq!(other["status"], "OPEN");
    let own = chat(&app, &visitor, &own_chat).await;
    assert_eq!(own["status"], "OPEN");
    assert_eq!(own["unreadCount"], 0);
    assert_eq!(own["messages"]["edges"], json!([]));
}

async fn an_admin_asking_for_a_missing_chat_gets_null_or_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let missing_chat = uuid::Uuid::now_v7().to_string();

    let response = app
        .graphql(CHAT, json!({ "id": missing_chat }), Some(&admin))
        .await;
    assert!(response.get("errors").is_none(), "{response}");
    assert_eq!(response["data"]["chat"], Value::Null);

    for (name, query) in &ON_A_CHAT[1..] {
        let response = app
            .graphql(
                query,
                json!({ "id": missing_chat, "body": "hi" }),
                Some(&admin),
            )
            .await;
        assert_eq!(
            error_code(&response),
            Some("NOT_FOUND"),
            "{name}: {response}"
        );
    }
    assert_eq!(helpers::stored_chats(&app).await, 0);
}

async fn invalid_input_is_refused_with_its_code_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Ivy")).await;

    for body in [json!(""), json!("  \n\t "), Value::Null] {
        let response = app
            .graphql(SEND, json!({ "id": chat_id, "body": body }), Some(&visitor))
            .await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{body}: {response}"
        );
    }
    let too_long = app
        .graphql(
            SEND,
            json!({ "id": chat_id, "body": "x".repeat(5001) }),
            Some(&visitor),
        )
        .await;
    assert_eq!(
        error_code(&too_long),
        Some("MESSAGE_TOO_LONG"),
        "{too_long}"
    );
    let too_long = app
        .graphql(
            SEND,
            json!({ "id": chat_id, "body": "é".repeat(5001) }),
            Some(&admin),
        )
        .await;
    assert_eq!(
        error_code(&too_long),
        Some("MESSAGE_TOO_LONG"),
        "{too_long}"
    );
    let bad_key = send_with_key(&app, &visitor, &chat_id, "hi", "has spaces").await;
    assert_eq!(error_code(&bad_key), Some("BAD_USER_INPUT"), "{bad_key}");
    assert_eq!(helpers::stored_messages(&app, &chat_id).await, 0);
    // The limit itself is fine (characters, not bytes).
    app.send(&visitor, &chat_id, &"é".repeat(5000)).await;
    assert_eq!(helpers::stored_messages(&app, &chat_id).await, 1);

    let update = "mutation($id: UUID!, $input: VisitorInput!) { updateVisitor(chatId: $id, input: $input) { id } }";
    for input in [
        json!({ "email": "not-an-email" }),
        json!({ "email": "two@at@example.com" }),
        json!({ "phone": "call me maybe" }),
        json!({ "name": "n".repeat(201) }),
    ] {
        let response = app
            .graphql(
                update,
                json!({ "id": chat_id, "input": input }),
                Some(&visitor),
            )
            .await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{input}: {response}"
        );
    }
    assert_eq!(chat(&app, &admin, &chat_id).await["visitor"]["name"], "Ivy");
    assert_eq!(
        stored_events(&app, &chat_id, EventKind::VisitorUpdated).await,
        0
    );
    let bad_start = app
        .graphql(
            "mutation { startChat(input: { visitorEmail: \"nope\" }) { chatToken } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        error_code(&bad_start),
        Some("BAD_USER_INPUT"),
        "{bad_start}"
    );
    assert_eq!(helpers::stored_chats(&app).await, 1);

    // Cursors this API did not hand out, and contradictory paging arguments.
    for args in [
        json!({ "after": "nonsense" }),
        json!({ "before": "bm90OmEtY3Vyc29y" }),
        json!({ "first": 1, "last": 1 }),
        json!({ "first": -1 }),
    ] {
        let mut variables = args.clone();
        variables["id"] = json!(chat_id);
        let response = app.graphql(PAGE, variables, Some(&visitor)).await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{args}: {response}"
        );
    }
    for args in [
        json!({ "after": "nonsense", "first": 10 }),
        json!({ "first": -5 }),
    ] {
        let response = app
            .graphql(
                "query($after: String, $first: Int!) { chats(after: $after, first: $first) { totalCount } }",
                args.clone(),
                Some(&admin),
            )
            .await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{args}: {response}"
        );
    }
}

async fn a_password_change_retires_older_admin_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let old_token = app.admin_token().await;
    let me = "{ me { email } }";
    assert_eq!(
        app.data(me, json!({}), Some(&old_token)).await["me"]["email"],
        ADMIN_EMAIL
    );

    api::service::admins::set_password(&app.state.db, ADMIN_EMAIL, "a brand new passphrase")
        .await
        .expect("password changed");

    // Within seconds: an instance believes an admin row it read for up to ROW_TTL (a change
    // announced over Postgres NOTIFY is heard at once).
    let deadline = std::time::Instant::now()
        + api::auth::admin_sessions::ROW_TTL
        + std::time::Duration::from_secs(2);
    loop {
        let refused = app.graphql(me, json!({}), Some(&old_token)).await;
        if error_code(&refused) == Some("UNAUTHENTICATED") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{refused}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let login = "mutation($password: String!) { login(email: \"ADMIN@example.com\", password: $password) { \
         token expiresAt admin { email } } }";
    let old_password = app
        .graphql(login, json!({ "password": ADMIN_PASSWORD }), None)
        .await;
    assert_eq!(error_code(&old_password), Some("UNAUTHENTICATED"));

    let session = app
        .data(login, json!({ "password": "a brand new passphrase" }), None)
        .await["login"]
        .clone();
    assert_eq!(session["admin"]["email"], ADMIN_EMAIL);
    let minutes = (time(&session["expiresAt"]) - chrono::Utc::now()).num_minutes();
    assert!((11 * 60..=12 * 60).contains(&minutes), "{session}");
    let new_token = session["token"].as_str().unwrap();
    assert_eq!(
        app.data(me, json!({}), Some(new_token)).await["me"]["email"],
        ADMIN_EMAIL
    );
    // The old token stays refused.
    let refused = app.graphql(me, json!({}), Some(&old_token)).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"));
}

const PROFILE: &str =
    "mutation($name: String!) { updateMyProfile(displayName: $name) { id email name initials } }";
const AUTHORED: &str = "query($id: UUID!) { chat(id: $id) { messages(last: 50) { edges { node { \
     id sender senderLabel body author { displayName initials } } } } } }";

/// The `(field, reason)` of a refused display name, after checking its code.
fn refusal(response: &Value) -> (String, String) {
    assert_eq!(error_code(response), Some("BAD_USER_INPUT"), "{response}");
    let extensions = &response["errors"][0]["extensions"];
    (
        extensions["field"].as_str().unwrap_or_default().to_owned(),
        extensions["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn an_admin_sets_a_display_name_that_visitors_see_on_replies_and_in_the_header(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Ada")).await;
    app.send(&visitor, &chat_id, "Hello?").await;
    let me = "{ me { name initials } }";
    // The first admin starts as "Admin".
    assert_eq!(
        app.data(me, json!({}), Some(&admin)).await["me"],
        json!({ "name": "Admin", "initials": "A" })
    );

    // Refused names, each with its reason, and nothing changes.
    for (name, reason) in [
        ("   ", "EMPTY"),
        ("\u{7}\t", "EMPTY"),
        (&*"x".repeat(61), "TOO_LONG"),
        ("anna@example.com", "LOOKS_LIKE_EMAIL"),
    ] {
        let refused = app
            .graphql(PROFILE, json!({ "name": name }), Some(&admin))
            .await;
        assert_eq!(
            refusal(&refused),
            ("displayName".to_owned(), reason.to_owned()),
            "{name:?}"
        );
    }
    assert_eq!(
        app.data(me, json!({}), Some(&admin)).await["me"]["name"],
        "Admin"
    );
    // Only an admin has a profile.
    let by_visitor = app
        .graphql(PROFILE, json!({ "name": "Mallory" }), Some(&visitor))
        .await;
    assert_eq!(error_code(&by_visitor), Some("FORBIDDEN"), "{by_visitor}");
    let anonymous = app
        .graphql(PROFILE, json!({ "name": "Mallory" }), None)
        .await;
    assert_eq!(
        error_code(&anonymous),
        Some("UNAUTHENTICATED"),
        "{anonymous}"
    );

    // A good one is trimmed; 60 characters are fine.
    let set = app
        .data(PROFILE, json!({ "name": "  Anna Berg \n" }), Some(&admin))
        .await["updateMyProfile"]
        .clone();
    assert_eq!(set["name"], "Anna Berg");
    assert_eq!(set["initials"], "AB");
    assert_eq!(set["email"], ADMIN_EMAIL);

    // The very next reply carries it (the instance forgot the admin's remembered row), and the
    // visitor sees who answered, never the email.
    app.send(&admin, &chat_id, "Hi Ada, Anna here.").await;
    let thread = nodes(
        &app.data(AUTHORED, json!({ "id": chat_id }), Some(&visitor))
            .await["chat"]["messages"],
    );
    assert_eq!(thread[0]["sender"], "VISITOR");
    assert_eq!(thread[0]["author"], Value::Null);
    assert_eq!(thread[1]["sender"], "ADMIN");
    assert_eq!(
        thread[1]["author"],
        json!({ "displayName": "Anna Berg", "initials": "AB" })
    );
    assert_eq!(thread[1]["senderLabel"], "Anna Berg");

    // The widget's header: the team's names and initials, to anyone, and no email.
    let settings = app
        .graphql(
            "{ widgetSettings { available awayText team { displayName initials } } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        settings["data"]["widgetSettings"]["team"],
        json!([{ "displayName": "Anna Berg", "initials": "AB" }]),
        "{settings}"
    );
    assert!(!settings.to_string().contains('@'), "{settings}");

    // An admin without a display name answers as nobody in particular: no author, no label,
    // and the email appears nowhere the visitor reads; the header leaves them out.
    let password = "another long passphrase";
    api::service::admins::create(&app.state.db, "ben@example.com", None, password)
        .await
        .expect("second admin");
    let ben = app
        .data(
            "mutation($password: String!) { login(email: \"ben@example.com\", password: $password) { token } }",
            json!({ "password": password }),
            None,
        )
        .await["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let from_ben = app.send(&ben, &chat_id, "Ben here.").await;
    let seen = app
        .graphql(AUTHORED, json!({ "id": chat_id }), Some(&visitor))
        .await;
    let thread = nodes(&seen["data"]["chat"]["messages"]);
    assert_eq!(thread[2]["id"], from_ben["id"]);
    assert_eq!(thread[2]["author"], Value::Null);
    assert_eq!(thread[2]["senderLabel"], Value::Null);
    assert!(!seen.to_string().contains("ben@example.com"), "{seen}");
    let team = app
        .data(
            "{ widgetSettings { team { displayName } } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        team["widgetSettings"]["team"],
        json!([{ "displayName": "Anna Berg" }])
    );
}

const STATUS_EVENTS: &str = "query($id: UUID!, $since: DateTime, $until: DateTime, $last: Int) { chat(id: $id) { \
     statusEvents(since: $since, until: $until, last: $last) { id createdAt from to by author { displayName initials } } } }";

async fn status_events(
    app: &common::TestApp,
    token: &str,
    chat_id: &str,
    variables: Value,
) -> Vec<Value> {
    let mut variables = variables;
    variables["id"] = json!(chat_id);
    app.data(STATUS_EVENTS, variables, Some(token)).await["chat"]["statusEvents"]
        .as_array()
        .unwrap()
        .clone()
}

async fn status_changes_are_listed_for_the_thread_and_announced_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(Some("Lin")).await;
    let first = app.send(&visitor, &chat_id, "My invoice is wrong").await;
    assert!(
        status_events(&app, &visitor, &chat_id, json!({}))
            .await
            .is_empty()
    );

    let mut live = common::ws::subscribe(
        app.port,
        Some(&visitor),
        "subscription($id: UUID!) { chatEvents(chatId: $id) { kind chat { status } \
           statusEvent { id from to by author { displayName } } } }",
        json!({ "id": chat_id }),
    )
    .await;
    set_status(&app, &admin, &chat_id, "CLOSED").await;
    let closed = live.expect_kind("chatEvents", "STATUS_CHANGED").await;
    assert_eq!(closed["chat"]["status"], "CLOSED");
    assert_eq!(closed["statusEvent"]["from"], "OPEN");
    assert_eq!(closed["statusEvent"]["to"], "CLOSED");
    assert_eq!(closed["statusEvent"]["by"], "ADMIN");
    assert_eq!(
        closed["statusEvent"]["author"],
        json!({ "displayName": "Admin" })
    );

    // The visitor writing reopens it: a status line by the visitor, announced too.
    let second = app.send(&visitor, &chat_id, "One more thing").await;
    let reopened = live.expect_kind("chatEvents", "STATUS_CHANGED").await;
    assert_eq!(reopened["statusEvent"]["from"], "CLOSED");
    assert_eq!(reopened["statusEvent"]["to"], "OPEN");
    assert_eq!(reopened["statusEvent"]["by"], "VISITOR");
    assert_eq!(reopened["statusEvent"]["author"], Value::Null);
    set_status(&app, &admin, &chat_id, "PENDING").await;
    let pending = live.expect_kind("chatEvents", "STATUS_CHANGED").await;
    assert_eq!(pending["statusEvent"]["to"], "PENDING");

    // Both sides list the same three, oldest first, each between the messages it came between.
    let events = status_events(&app, &visitor, &chat_id, json!({})).await;
    assert_eq!(
        events,
        status_events(&app, &admin, &chat_id, json!({})).await
    );
    let steps: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("OPEN", "CLOSED", "ADMIN"),
            ("CLOSED", "OPEN", "VISITOR"),
            ("OPEN", "PENDING", "ADMIN")
        ]
    );
    assert_eq!(events[0]["id"], closed["statusEvent"]["id"]);
    assert_eq!(events[1]["id"], reopened["statusEvent"]["id"]);
    assert_eq!(events[2]["id"], pending["statusEvent"]["id"]);
    assert!(time(&first["createdAt"]) <= time(&events[0]["createdAt"]));
    assert!(time(&events[0]["createdAt"]) <= time(&events[1]["createdAt"]));
    // The reopening comes just before the message that caused it.
    assert!(time(&events[1]["createdAt"]) <= time(&second["createdAt"]));
    assert!(time(&second["createdAt"]) <= time(&events[2]["createdAt"]));
    assert_eq!(events[0]["author"]["initials"], "A");

    // Bounds and the newest `last`.
    let since = status_events(
        &app,
        &visitor,
        &chat_id,
        json!({ "since": events[1]["createdAt"] }),
    )
    .await;
    assert_eq!(since, events[1..]);
    let until = status_events(
        &app,
        &visitor,
        &chat_id,
        json!({ "until": events[1]["createdAt"] }),
    )
    .await;
    assert_eq!(until, events[..1]);
    let newest = status_events(&app, &admin, &chat_id, json!({ "last": 1 })).await;
    assert_eq!(newest, events[2..]);
    for last in [-1, 101] {
        let refused = app
            .graphql(
                STATUS_EVENTS,
                json!({ "id": chat_id, "last": last }),
                Some(&admin),
            )
            .await;
        assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    }

    // Another visitor learns nothing of this chat's history.
    let (_, stranger) = app.start_chat(None).await;
    let refused = app
        .graphql(STATUS_EVENTS, json!({ "id": chat_id }), Some(&stranger))
        .await;
    assert!(
        refused["data"]["chat"].is_null() || refused.get("errors").is_some(),
        "{refused}"
    );
    assert!(!refused.to_string().contains("CLOSED"), "{refused}");
}

async fn the_demo_data_spreads_over_weeks_with_unread_chats_and_an_expired_file(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin_row = api::service::admins::list(&app.state.db)
        .await
        .unwrap()
        .remove(0);
    let viewer = api::auth::viewer::AdminViewer {
        id: admin_row.id,
        email: admin_row.email,
        name: admin_row.name,
        session: None,
    };
    let policy = api::files::policy::FilePolicy::from_settings(&app.state.settings);
    let made = api::service::demo::seed(&app.state.db, app.state.storage.as_ref(), &policy, viewer)
        .await
        .expect("seed-demo");
    let admin = app.admin_token().await;
    let all = app
        .data(
            "{ chats(first: 50) { edges { node { id status createdAt lastMessageAt unreadCount \
               messages(last: 10) { edges { node { createdAt attachments { name purged url } } } } } } } }",
            json!({}),
            Some(&admin),
        )
        .await;
    let chats: Vec<Value> = all["chats"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    assert_eq!(chats.len(), made);
    let now = chrono::Utc::now();
    let ages: Vec<i64> = chats
        .iter()
        .map(|c| (now - time(&c["lastMessageAt"])).num_days())
        .collect();
    // Newest first, from today back over more than two weeks (and one past retention).
    assert!(ages.windows(2).all(|pair| pair[0] <= pair[1]), "{ages:?}");
    assert_eq!(ages[0], 0, "{ages:?}");
    assert!(ages.iter().any(|&days| (2..=7).contains(&days)), "{ages:?}");
    assert!(ages.iter().any(|&days| days >= 14), "{ages:?}");
    // Some unread by the team, some read.
    let unread: Vec<i64> = chats
        .iter()
        .map(|c| c["unreadCount"].as_i64().unwrap())
        .collect();
    assert!(unread.iter().any(|&n| n > 1), "{unread:?}");
    assert!(
        unread.iter().filter(|&&n| n == 0).count() >= 2,
        "{unread:?}"
    );
    // Lines of one conversation are minutes apart, not all in one instant.
    for c in &chats {
        let times: Vec<_> = nodes(&c["messages"])
            .iter()
            .map(|m| time(&m["createdAt"]))
            .collect();
        assert!(
            times
                .windows(2)
                .all(|pair| pair[1] - pair[0] >= chrono::Duration::minutes(1)),
            "{times:?}"
        );
        assert!(time(&c["createdAt"]) <= times[0]);
    }
    // An expired file, and files still there.
    let files: Vec<Value> = chats
        .iter()
        .flat_map(|c| nodes(&c["messages"]))
        .flat_map(|m| m["attachments"].as_array().unwrap().clone())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f["purged"] == true && f["url"].is_null()),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f["purged"] == false && f["url"].is_string())
    );
    // The date filter finds the older ones only.
    let week_ago = (now - chrono::Duration::days(7)).to_rfc3339();
    let older = app
        .data(
            "query($before: DateTime) { chats(filter: { updatedBefore: $before }) { totalCount } }",
            json!({ "before": week_ago }),
            Some(&admin),
        )
        .await;
    let older = older["chats"]["totalCount"].as_i64().unwrap();
    assert!(older >= 2 && older < made as i64, "{older}");
}

backend_tests!(
    a_visitor_and_an_admin_hold_a_whole_conversation,
    status_changes_are_recorded_and_a_visitor_message_reopens_a_closed_chat,
    visitor_details_can_be_changed_by_the_visitor_and_by_an_admin,
    a_retried_send_returns_the_first_message_and_stores_one,
    a_message_advances_its_chat_and_the_senders_read_mark,
    a_thread_pages_back_and_forward_without_gaps_or_duplicates,
    requests_without_a_valid_credential_are_unauthenticated,
    a_visitor_reaches_only_its_own_chat_and_learns_nothing_of_others,
    an_admin_asking_for_a_missing_chat_gets_null_or_not_found,
    invalid_input_is_refused_with_its_code_and_stores_nothing,
    a_password_change_retires_older_admin_tokens,
    an_admin_sets_a_display_name_that_visitors_see_on_replies_and_in_the_header,
    status_changes_are_listed_for_the_thread_and_announced_live,
    the_demo_data_spreads_over_weeks_with_unread_chats_and_an_expired_file,
);
