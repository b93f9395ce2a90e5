//! Plan guard (Postgres): the inbox, history and search statements must each have an index
//! path, so a later change cannot silently bring back a full scan of 100k chats or 1M
//! messages. The statements are the services' own, captured as they run (SeaORM's metric
//! callback) on a small data set, and explained with `enable_seqscan = off` (and sorts off where
//! an index must give the order, plain index scans off where the trigram indexes must serve a
//! search): with so few rows those would win on cost anyway, so only a plan that has no other
//! way keeps one. A disabled node shows as a cost of 10^10, which fails the check too.

use crate::common;

use std::sync::{Arc, Mutex};

use api::auth::viewer::{AdminViewer, Side, Viewer};
use api::service::chats::{self, ChatFilter};
use api::service::cursor::Cursor;
use api::service::messages::{self, PageArgs};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

/// The planner adds this to the cost of a disabled node it could not avoid.
const DISABLED_COST: f64 = 1.0e9;

/// What the inbox asks for with each page: unread counts and (on Postgres, by `LATERAL`) the
/// newest message, both in the page's statement.
const WITH_PAGE: chats::PageFields = chats::PageFields {
    unread: true,
    last_message: true,
};

const SEED: &[&str] = &[
    "INSERT INTO chats (id, visitor_name, visitor_email, visitor_phone, chat_token_hash, status, \
       last_message_at, admin_last_read_at, created_at, updated_at) \
     SELECT gen_random_uuid(), 'Visitor ' || i, 'visitor' || i || '@example.com', '+1 555 ' || i, \
       md5(i::text) || md5((i + 1)::text), (ARRAY['open', 'pending', 'closed'])[1 + i % 3], \
       CASE WHEN i % 10 = 0 THEN NULL ELSE now() - i * interval '1 minute' END, \
       now() - i * interval '1 minute' - interval '5 minutes', \
       now() - i * interval '1 minute' - interval '1 hour', now() - i * interval '1 minute' \
     FROM generate_series(1, 500) i",
    "INSERT INTO chat_messages (id, chat_id, sender_type, sender_label, message, created_at) \
     SELECT gen_random_uuid(), c.id, CASE WHEN k % 2 = 0 THEN 'visitor' ELSE 'admin' END, 'x', \
       'message ' || k || ' about a refund for order #' || (k * 7919 % 100000), \
       c.updated_at - (12 - k) * interval '1 minute' \
     FROM chats c, generate_series(1, 12) k WHERE c.last_message_at IS NOT NULL",
    "UPDATE chat_messages SET message = 'a chargeback was filed' \
     WHERE id = (SELECT id FROM chat_messages ORDER BY created_at LIMIT 1)",
    "ANALYZE",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_history_and_search_have_index_paths() {
    let Some(server_url) = common::postgres_url() else {
        return;
    };
    let (url, name) = common::postgres_database(&server_url).await;
    let result = tokio::spawn(async move { check_plans(&url).await }).await;
    common::drop_database(&server_url, &name).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn check_plans(url: &str) {
    let mut db = Database::connect(url).await.expect("connect");
    Migrator::up(&db, None).await.expect("migrations");
    for statement in SEED {
        db.execute_unprepared(statement).await.expect("seed");
    }

    let captured: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let sink = captured.clone();
    db.set_metric_callback(move |info| {
        if let Ok(mut statements) = sink.lock() {
            statements.push(info.statement.clone());
        }
    });
    let admin = Viewer::Admin(AdminViewer {
        id: Uuid::now_v7(),
        email: "admin@example.com".into(),
        name: None,
        session: None,
    });
    let take = || std::mem::take(&mut *captured.lock().unwrap());

    // The inbox: first page, the next page by cursor, a status tab; then what the page
    // fetches for its chats (unread counts, last messages).
    let (page, _) = chats::list(&db, &admin, &ChatFilter::default(), 50, None, WITH_PAGE)
        .await
        .expect("inbox");
    let last = &page.last().expect("chats").chat;
    let cursor = Cursor {
        at: chats::activity_of(last),
        id: last.id,
    };
    chats::list(
        &db,
        &admin,
        &ChatFilter::default(),
        50,
        Some(cursor),
        WITH_PAGE,
    )
    .await
    .expect("inbox page 2");
    let open = ChatFilter {
        statuses: vec![entity::chat::ChatStatus::Open],
        ..ChatFilter::default()
    };
    chats::list(&db, &admin, &open, 50, None, WITH_PAGE)
        .await
        .expect("inbox tab");
    let ordered = take();
    let ids: Vec<Uuid> = page.iter().map(|listed| listed.chat.id).collect();
    chats::unread_counts(&db, Side::Admin, &ids)
        .await
        .expect("unread counts");
    messages::last_messages(&db, &ids)
        .await
        .expect("last messages");
    let per_chat = take();

    // History: the newest 50 of a thread, then older ones.
    let chat_id = page[0].chat.id;
    let newest = messages::page(
        &db,
        chat_id,
        PageArgs {
            last: Some(50),
            ..PageArgs::default()
        },
        true,
    )
    .await
    .expect("history");
    let oldest = newest.messages.first().expect("messages");
    messages::page(
        &db,
        chat_id,
        PageArgs {
            last: Some(50),
            before: Some(messages::cursor_of(oldest)),
            ..PageArgs::default()
        },
        true,
    )
    .await
    .expect("history, older");
    let history = take();

    // Search for rare terms (one message, one visitor), which must come from the trigram
    // indexes rather than from probing every chat.
    for term in ["chargeback", "visitor42@example"] {
        let filter = ChatFilter {
            search: Some(term.into()),
            ..ChatFilter::default()
        };
        chats::list(&db, &admin, &filter, 50, None, WITH_PAGE)
            .await
            .expect("search");
    }
    let search = take();

    assert_eq!(ordered.len(), 3, "inbox statements: {ordered:#?}");
    assert!(
        !per_chat.is_empty(),
        "no unread count or last message statement"
    );
    assert!(!history.is_empty(), "no history statement");
    assert!(search.len() >= 2, "search statements: {search:#?}");
    let mut failures = Vec::new();
    for (label, statements, check) in [
        ("inbox", ordered, Check::OrderFromIndex),
        ("inbox page fields", per_chat, Check::IndexPath),
        ("history", history, Check::OrderFromIndex),
        ("search", search, Check::Trigram),
    ] {
        for statement in statements {
            let plan = explain(&db, &statement, check).await;
            let mut problems = Vec::new();
            walk(&plan["Plan"], &mut |node| {
                let kind = node["Node Type"].as_str().unwrap_or_default();
                if kind == "Seq Scan" {
                    problems.push(format!(
                        "a sequential scan of {}",
                        node["Relation Name"].as_str().unwrap_or("?")
                    ));
                }
                if check == Check::OrderFromIndex && (kind == "Sort" || kind == "Incremental Sort")
                {
                    problems.push("a sort where the index should give the order".to_owned());
                }
            });
            // GIN indexes are read through bitmap scans only.
            let mut bitmap = false;
            walk(&plan["Plan"], &mut |node| {
                bitmap |= node["Node Type"] == "Bitmap Index Scan";
            });
            if check == Check::Trigram && !bitmap {
                problems.push("a rare term not taken from a trigram index".to_owned());
            }
            let cost = plan["Plan"]["Total Cost"].as_f64().unwrap_or(f64::MAX);
            if cost >= DISABLED_COST {
                problems.push(format!("a disabled plan node (cost {cost})"));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{label}: {}\n  SQL: {}\n  plan: {}",
                    problems.join(", "),
                    statement.sql,
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                ));
            }
        }
    }
    db.close().await.ok();
    assert!(
        failures.is_empty(),
        "statements without an index path:\n{}",
        failures.join("\n\n")
    );
}

/// What a statement's plan must show.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Some index path, no sequential scan.
    IndexPath,
    /// And the order from the index: no sort.
    OrderFromIndex,
    /// Rows from the trigram indexes. Plain index scans are disabled too, which leaves bitmap
    /// scans, and those need an index condition: without a trigram index for the ILIKE, only a
    /// disabled plan remains.
    Trigram,
}

/// `EXPLAIN (FORMAT JSON)` of the statement with its own values and the alternatives to the
/// wanted path disabled: on a few hundred rows a sequential scan, a sort or a walk of the whole
/// activity index would win on cost anyway, so only a plan that has no other way keeps one.
async fn explain(db: &DatabaseConnection, statement: &Statement, check: Check) -> Value {
    let txn = db.begin().await.expect("begin");
    let mut settings = vec!["SET LOCAL enable_seqscan = off"];
    match check {
        Check::IndexPath => {}
        Check::OrderFromIndex => settings.extend([
            "SET LOCAL enable_sort = off",
            "SET LOCAL enable_incremental_sort = off",
        ]),
        Check::Trigram => settings.extend([
            "SET LOCAL enable_indexscan = off",
            "SET LOCAL enable_indexonlyscan = off",
        ]),
    }
    for setting in settings {
        txn.execute_unprepared(setting).await.expect("set");
    }
    let explain = Statement {
        sql: format!("EXPLAIN (FORMAT JSON) {}", statement.sql),
        values: statement.values.clone(),
        db_backend: DbBackend::Postgres,
    };
    let row = txn
        .query_one_raw(explain)
        .await
        .expect("explain")
        .expect("a plan");
    txn.rollback().await.ok();
    let plan: Value = row.try_get_by_index(0).expect("plan json");
    plan[0].clone()
}

fn walk(node: &Value, visit: &mut impl FnMut(&Value)) {
    visit(node);
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            walk(child, visit);
        }
    }
}
