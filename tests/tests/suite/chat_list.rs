//! The admin inbox: newest activity first, Relay paging, filters and search, and a constant
//! number of SQL statements whatever the page length.

use crate::common;
use crate::common::helpers;

use std::collections::BTreeSet;

use common::{Backend, TestApp, spawn_app};
use helpers::{mark_read, set_status, start_chat_as, time};
use serde_json::{Value, json};

const INBOX: &str = "query($filter: ChatFilter, $first: Int!, $after: String) { \
     chats(filter: $filter, first: $first, after: $after) { totalCount \
       edges { cursor node { id status unreadCount updatedAt lastMessageAt createdAt visitor { name } \
         lastMessage { body } } } \
       pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

async fn inbox_page(app: &TestApp, admin: &str, filter: Value, first: i64, after: Value) -> Value {
    app.data(
        INBOX,
        json!({ "filter": filter, "first": first, "after": after }),
        Some(admin),
    )
    .await["chats"]
        .clone()
}

fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {connection}"))
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of every chat matching `filter`, in one page, as a set.
async fn matching(app: &TestApp, admin: &str, filter: Value) -> BTreeSet<String> {
    let page = inbox_page(app, admin, filter.clone(), 100, Value::Null).await;
    let found: BTreeSet<String> = ids(&page).into_iter().collect();
    assert_eq!(
        page["totalCount"],
        found.len(),
        "totalCount for {filter}: {page}"
    );
    found
}

fn set<const N: usize>(items: [&String; N]) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

async fn the_inbox_lists_newest_activity_first_and_pages_without_gaps(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let mut chats = Vec::new();
    for n in 0..7 {
        chats.push(app.start_chat(Some(&format!("Visitor {n}"))).await);
    }
    // Chats without messages count from their start; a message moves a chat to the top.
    app.send(&chats[2].1, &chats[2].0, "first to write").await;
    app.send(&admin, &chats[4].0, "the team writes first here")
        .await;
    let order: Vec<String> = [4, 2, 6, 5, 3, 1, 0]
        .iter()
        .map(|&n| chats[n].0.clone())
        .collect();

    let mut walked = Vec::new();
    let mut after = Value::Null;
    let mut pages = Vec::new();
    loop {
        let page = inbox_page(&app, &admin, json!({}), 3, after.clone()).await;
        assert_eq!(page["totalCount"], 7, "{page}");
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !after.is_null());
        let edges = page["edges"].as_array().unwrap();
        assert_eq!(page["pageInfo"]["startCursor"], edges[0]["cursor"]);
        assert_eq!(
            page["pageInfo"]["endCursor"],
            edges.last().unwrap()["cursor"]
        );
        walked.extend(ids(&page));
        pages.push(edges.len());
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(walked, order);

    // The last page's cursor leads nowhere further.
    let beyond = inbox_page(&app, &admin, json!({}), 3, after_last(&app, &admin).await).await;
    assert_eq!(beyond["edges"], json!([]));
    assert_eq!(beyond["pageInfo"]["hasNextPage"], false);
    assert_eq!(beyond["pageInfo"]["endCursor"], Value::Null);

    // The previews and timestamps that order the list.
    let all = inbox_page(&app, &admin, json!({}), 50, Value::Null).await;
    let nodes: Vec<&Value> = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(
        nodes[0]["lastMessage"]["body"],
        "the team writes first here"
    );
    assert_eq!(nodes[1]["lastMessage"]["body"], "first to write");
    assert_eq!(nodes[2]["lastMessage"], Value::Null);
    let activity = |node: &Value| {
        if node["lastMessageAt"].is_null() {
            time(&node["createdAt"])
        } else {
            time(&node["lastMessageAt"])
        }
    };
    assert!(
        nodes
            .windows(2)
            .all(|pair| activity(pair[0]) >= activity(pair[1]))
    );

    // Paging a filtered list: totalCount is the filter's, pages follow the same order.
    let filter = json!({ "search": "Visitor" });
    let first = inbox_page(&app, &admin, filter.clone(), 4, Value::Null).await;
    let rest = inbox_page(
        &app,
        &admin,
        filter,
        4,
        first["pageInfo"]["endCursor"].clone(),
    )
    .await;
    assert_eq!(first["totalCount"], 7);
    assert_eq!(rest["totalCount"], 7);
    assert_eq!([ids(&first), ids(&rest)].concat(), order);
}

/// The cursor of the oldest chat in the inbox.
async fn after_last(app: &TestApp, admin: &str) -> Value {
    let all = inbox_page(app, admin, json!({}), 100, Value::Null).await;
    all["pageInfo"]["endCursor"].clone()
}

async fn filters_and_search_narrow_the_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (grace, grace_token) =
        start_chat_as(&app, Some("Grace Hopper"), Some("grace@navy.example"), None).await;
    let (alan, alan_token) = start_chat_as(
        &app,
        Some("Alan Turing"),
        Some("alan@bletchley.example"),
        Some("+44 20 7946 0958"),
    )
    .await;
    let (anonymous, anonymous_token) = start_chat_as(&app, None, None, None).await;
    let (silent, _) = start_chat_as(&app, Some("Zoë Ångström"), None, None).await;
    app.send(&grace_token, &grace, "A question about the compiler")
        .await;
    app.send(&alan_token, &alan, "My INVOICE Inv-7731 is wrong")
        .await;
    app.send(&admin, &alan, "Looking into invoice inv-7731 now")
        .await;
    app.send(&anonymous_token, &anonymous, "hello?").await;
    set_status(&app, &admin, &grace, "CLOSED").await;
    set_status(&app, &admin, &anonymous, "PENDING").await;
    let everyone = set([&grace, &alan, &anonymous, &silent]);

    // Status: any of the listed ones; an empty list is no filter.
    assert_eq!(
        matching(&app, &admin, json!({ "status": ["CLOSED"] })).await,
        set([&grace])
    );
    assert_eq!(
        matching(&app, &admin, json!({ "status": ["OPEN", "PENDING"] })).await,
        set([&alan, &anonymous, &silent])
    );
    assert_eq!(
        matching(&app, &admin, json!({ "status": [] })).await,
        everyone
    );
    assert_eq!(matching(&app, &admin, json!({})).await, everyone);

    // Search: visitor name, email, phone and message text, any case, any substring of 3+.
    for (term, expected) in [
        ("hopper", set([&grace])),
        ("GRACE@NAVY", set([&grace])),
        ("opp", set([&grace])),
        ("bletchley", set([&alan])),
        ("7946 0958", set([&alan])),
        ("+44", set([&alan])),
        ("compiler", set([&grace])),
        ("inv-7731", set([&alan])),
        ("INVOICE", set([&alan])),
        ("hello", set([&anonymous])),
        ("ngstr", set([&silent])),
        ("ZOË", set([&silent])),
        (".example", set([&grace, &alan])),
        ("nothing like this", BTreeSet::new()),
        ("zo", set([&silent])),
        ("a\"b", BTreeSet::new()),
        // LIKE wildcards do not act as wildcards.
        ("Gr%er", BTreeSet::new()),
        ("H_pper", BTreeSet::new()),
    ] {
        assert_eq!(
            matching(&app, &admin, json!({ "search": term })).await,
            expected,
            "search {term:?}"
        );
    }
    // Several matching messages still list the chat once.
    let page = inbox_page(&app, &admin, json!({ "search": "7731" }), 10, Value::Null).await;
    assert_eq!(ids(&page), vec![alan.clone()]);
    assert_eq!(page["totalCount"], 1);

    // Filters combine.
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "search": "invoice", "status": ["CLOSED"] })
        )
        .await,
        BTreeSet::new()
    );
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "search": "example", "status": ["CLOSED", "PENDING"] })
        )
        .await,
        set([&grace])
    );

    // Updated range: after is inclusive, before exclusive; together they make a window.
    let all = inbox_page(&app, &admin, json!({}), 100, Value::Null).await;
    let mut updated: Vec<(chrono::DateTime<chrono::Utc>, String, Value)> = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            (
                time(&node["updatedAt"]),
                node["id"].as_str().unwrap().to_owned(),
                node["updatedAt"].clone(),
            )
        })
        .collect();
    updated.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let (middle, _, middle_text) = updated[2].clone();
    let (late, _, late_text) = updated[3].clone();
    let since = |from: chrono::DateTime<chrono::Utc>| {
        updated
            .iter()
            .filter(|(at, _, _)| *at >= from)
            .map(|(_, id, _)| id.clone())
            .collect::<BTreeSet<_>>()
    };
    let until = |to: chrono::DateTime<chrono::Utc>| {
        updated
            .iter()
            .filter(|(at, _, _)| *at < to)
            .map(|(_, id, _)| id.clone())
            .collect::<BTreeSet<_>>()
    };
    let after_middle = matching(&app, &admin, json!({ "updatedAfter": middle_text })).await;
    assert_eq!(after_middle, since(middle));
    assert!(after_middle.len() >= 2 && after_middle.len() < 4);
    let before_middle = matching(&app, &admin, json!({ "updatedBefore": middle_text })).await;
    assert_eq!(before_middle, until(middle));
    assert_eq!(before_middle.len() + after_middle.len(), 4);
    let window = matching(
        &app,
        &admin,
        json!({ "updatedAfter": middle_text, "updatedBefore": late_text }),
    )
    .await;
    assert_eq!(
        window,
        since(middle).intersection(&until(late)).cloned().collect()
    );
    assert!(!window.is_empty());
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "updatedAfter": "2999-01-01T00:00:00Z" })
        )
        .await,
        BTreeSet::new()
    );
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "updatedBefore": "2000-01-01T00:00:00Z" })
        )
        .await,
        BTreeSet::new()
    );
}

async fn unread_only_keeps_chats_with_unread_visitor_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (waiting, waiting_token) = app.start_chat(Some("Waiting")).await;
    let (answered, answered_token) = app.start_chat(Some("Answered")).await;
    let (read, read_token) = app.start_chat(Some("Read")).await;
    let (silent, _) = app.start_chat(Some("Silent")).await;
    app.send(&waiting_token, &waiting, "anyone there?").await;
    app.send(&waiting_token, &waiting, "hello?").await;
    app.send(&answered_token, &answered, "question").await;
    app.send(&admin, &answered, "answer").await;
    app.send(&read_token, &read, "fyi").await;
    mark_read(&app, &admin, &read).await;

    let unread = json!({ "unreadOnly": true });
    assert_eq!(
        matching(&app, &admin, unread.clone()).await,
        set([&waiting])
    );
    assert_eq!(
        matching(&app, &admin, json!({ "unreadOnly": false })).await,
        set([&waiting, &answered, &read, &silent])
    );
    let page = inbox_page(&app, &admin, json!({}), 10, Value::Null).await;
    let unread_counts: Vec<(String, i64)> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                edge["node"]["visitor"]["name"].as_str().unwrap().to_owned(),
                edge["node"]["unreadCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unread_counts,
        [
            ("Read".to_owned(), 0),
            ("Answered".to_owned(), 0),
            ("Waiting".to_owned(), 2),
            ("Silent".to_owned(), 0),
        ]
    );

    // Reading empties the filter; the visitor writing again fills it.
    mark_read(&app, &admin, &waiting).await;
    assert_eq!(
        matching(&app, &admin, unread.clone()).await,
        BTreeSet::new()
    );
    app.send(&read_token, &read, "one more thing").await;
    assert_eq!(matching(&app, &admin, unread.clone()).await, set([&read]));
    // Combined with other filters.
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "unreadOnly": true, "status": ["CLOSED"] })
        )
        .await,
        BTreeSet::new()
    );
    assert_eq!(
        matching(
            &app,
            &admin,
            json!({ "unreadOnly": true, "search": "more thing" })
        )
        .await,
        set([&read])
    );
}

const PREVIEWS: &str = "query($first: Int!) { chats(first: $first) { edges { node { \
     id visitor { name } unreadCount lastMessage { body attachments { id } } } } } }";

/// SQL statements run for one inbox page of `first` chats.
async fn statements_for_inbox(app: &TestApp, admin: &str, first: usize) -> u64 {
    let before = app.query_count();
    let data = app
        .data(PREVIEWS, json!({ "first": first }), Some(admin))
        .await;
    let after = app.query_count();
    let edges = data["chats"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), first);
    assert!(
        edges.iter().all(|edge| edge["node"]["unreadCount"] == 1
            && edge["node"]["lastMessage"]["body"].is_string()),
        "{data}"
    );
    after - before
}

async fn the_inbox_costs_the_same_queries_for_1_and_50_chats(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let admin = app.admin_token().await;
    let (chat_id, token) = app.start_chat(Some("Visitor 0")).await;
    app.send(&token, &chat_id, "message 0").await;
    // The first request also reads the admin's row, which is then remembered for a while.
    statements_for_inbox(&app, &admin, 1).await;
    let for_one = statements_for_inbox(&app, &admin, 1).await;

    for n in 1..50 {
        let (chat_id, token) = app.start_chat(Some(&format!("Visitor {n}"))).await;
        app.send(&token, &chat_id, &format!("message {n}")).await;
    }
    // The admin's row is remembered for 5 s, which the 49 chats above can outlast on a busy
    // machine: read it again first, so that both counts are of the inbox alone.
    app.data("{ me { id } }", json!({}), Some(&admin)).await;
    let for_fifty = statements_for_inbox(&app, &admin, 50).await;
    let again = statements_for_inbox(&app, &admin, 50).await;
    println!(
        "{backend:?}: SQL statements for an inbox page of 1 chat: {for_one}, of 50 chats: {for_fifty} (again: {again})"
    );
    assert_eq!(
        (for_fifty, again),
        (for_one, for_one),
        "the inbox runs {for_one} statements for 1 chat but {for_fifty} for 50"
    );
    // The page with its unread counts (and on Postgres its last messages, by LATERAL), the last
    // messages on SQLite, their attachments.
    let expected = match backend {
        Backend::Postgres(_) => 2,
        Backend::Sqlite => 3,
    };
    assert_eq!(for_one, expected, "{for_one} statements for one chat");
}

/// The visitor's two hot paths, in statements (the benchmark's history and send): the token is
/// looked up once and then remembered, a history page brings its attachments in the same
/// statement, and a text send is one statement on Postgres (chat locked, message inserted,
/// chat advanced) and on SQLite an UPDATE of the chat and an INSERT of the message (between
/// BEGIN and COMMIT, which the count leaves out).
async fn a_visitor_reads_in_two_statements_and_writes_in_one_or_two(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let (chat_id, token) = app.start_chat(Some("Counted")).await;
    app.send(&token, &chat_id, "first").await;
    let history = "query($id: UUID!) { chat(id: $id) { id messages(last: 50) { edges { node { \
         id body readAt attachments { id } } } } } }";

    let before = app.query_count();
    let data = app
        .data(history, json!({ "id": chat_id }), Some(&token))
        .await;
    let for_history = app.query_count() - before;
    assert_eq!(
        data["chat"]["messages"]["edges"][0]["node"]["body"], "first",
        "{data}"
    );

    let before = app.query_count();
    let sent = app.send(&token, &chat_id, "second").await;
    let for_send = app.query_count() - before;
    assert_eq!(sent["body"], "second", "{sent}");
    println!(
        "{backend:?}: statements for a history page: {for_history}, for a text send: {for_send}"
    );
    assert_eq!(
        for_history, 2,
        "a history page ran {for_history} statements"
    );
    // (On Postgres the NOTIFY goes out from the event bus's own, uncounted handle.)
    let expected = match backend {
        Backend::Postgres(_) => 1,
        Backend::Sqlite => 2,
    };
    assert_eq!(for_send, expected, "a text send ran {for_send} statements");
}

backend_tests!(
    a_visitor_reads_in_two_statements_and_writes_in_one_or_two,
    the_inbox_lists_newest_activity_first_and_pages_without_gaps,
    filters_and_search_narrow_the_inbox,
    unread_only_keeps_chats_with_unread_visitor_messages,
    the_inbox_costs_the_same_queries_for_1_and_50_chats,
);
