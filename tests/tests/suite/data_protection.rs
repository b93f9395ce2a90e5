//! Data protection end to end: uploads scanned by a real clamd (started here with a signature
//! database made for the test, since there is no internet for real signatures), chats erased
//! (rows and stored files, checked by listing both), transcripts, and chat retention.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::files::scan::ClamdAddress;
use common::browser::widget::{ROOT, open_demo, open_panel, send_text, stored, w, w_all};
use common::browser::{LIVE, WAIT, browser_and_app};
use common::files::{FilePart, Store, spawn_app_on};
use common::{Backend, TestApp, error_code, samples, spawn_app_with};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

// ---- a clamd of our own --------------------------------------------------------------------

/// A clamd child process with its own configuration and signature database, stopped on drop.
struct Clamd {
    child: Option<Child>,
    address: ClamdAddress,
    _dir: tempfile::TempDir,
}

fn clamd_binary() -> Option<PathBuf> {
    let required = std::env::var("CHATDESK_REQUIRE_CLAMD").is_ok_and(|v| v == "1");
    let found = std::env::var_os("CHATDESK_CLAMD_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"].map(PathBuf::from))
        .find(|path| path.is_file());
    match found {
        Some(path) => Some(path),
        None if required => panic!("CHATDESK_REQUIRE_CLAMD=1 but no clamd binary was found"),
        None => {
            eprintln!("skipped: clamd is not installed (apt-get install clamav-daemon)");
            None
        }
    }
}

impl Clamd {
    /// Starts clamd knowing `samples` (name, bytes) as malware, by their SHA-256, listening on
    /// a Unix socket, or on a free loopback TCP port with `tcp`.
    fn start(samples: &[(&str, &[u8])], tcp: bool) -> Option<Self> {
        let binary = clamd_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("db");
        std::fs::create_dir(&database).expect("db folder");
        let signatures: String = samples
            .iter()
            .map(|(name, bytes)| {
                let hash: String = Sha256::digest(bytes)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                format!("{hash}:{}:Chatdesk.Test.{name}\n", bytes.len())
            })
            .collect();
        std::fs::write(database.join("chatdesk-test.hsb"), signatures).expect("signatures");
        let (listen, address) = if tcp {
            let port = common::free_port();
            (
                format!("TCPSocket {port}\nTCPAddr 127.0.0.1\n"),
                ClamdAddress::Tcp(format!("127.0.0.1:{port}")),
            )
        } else {
            let socket = dir.path().join("clamd.sock");
            (
                format!("LocalSocket {}\n", socket.display()),
                ClamdAddress::Unix(socket),
            )
        };
        let config = dir.path().join("clamd.conf");
        std::fs::write(
            &config,
            format!(
                "Foreground yes\n{listen}DatabaseDirectory {}\nLogFile {}\n\
                 ScanArchive yes\nStreamMaxLength 64M\nMaxThreads 4\n",
                database.display(),
                dir.path().join("clamd.log").display()
            ),
        )
        .expect("config");
        let child = Command::new(binary)
            .arg("--config-file")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd starts");
        let clamd = Self {
            child: Some(child),
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while clamd.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "clamd did not answer within a minute"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(clamd)
    }

    fn ping(&self) -> std::io::Result<()> {
        let mut settings = common::test_settings(&tempfile::tempdir()?, "sqlite::memory:");
        settings.clamd_url = Some(self.address.clone());
        api::files::scan::Scanner::from_settings(&settings)
            .ok_or_else(|| std::io::Error::other("no scanner"))?
            .ping()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Word document with `payload` as one more part of its ZIP.
fn docx_carrying(payload: &[u8]) -> Vec<u8> {
    samples::zip(&[
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>"),
        ("_rels/.rels", b"<?xml version=\"1.0\"?><Relationships/>"),
        ("word/document.xml", b"<?xml version=\"1.0\"?><w:document/>"),
        ("word/media/readme.txt", payload),
    ])
}

async fn scanning_app(backend: Backend, store: &Store, clamd: &Clamd, fail_open: bool) -> TestApp {
    let address = clamd.address.clone();
    spawn_app_on(backend, store, move |settings| {
        settings.clamd_url = Some(address);
        settings.clamd_fail_open = fail_open;
        settings.clamd_timeout_secs = 5;
    })
    .await
}

// ---- scanning ------------------------------------------------------------------------------

async fn malware_is_refused_and_clean_files_pass(backend: Backend, store: Store) {
    // A sample of the test's own making, known to this clamd only.
    let sample = format!("quarterly figures {}\n", uuid::Uuid::new_v4()).repeat(20);
    let Some(clamd) = Clamd::start(&[("EICAR", EICAR), ("Sample", sample.as_bytes())], false)
    else {
        return;
    };
    let app = scanning_app(backend, &store, &clamd, false).await;
    let policy = app
        .data("{ uploadPolicy { virusScanned } }", json!({}), None)
        .await;
    assert_eq!(policy["uploadPolicy"]["virusScanned"], true);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["clamd"], "ok", "{ready}");

    let (chat_id, token) = app.start_chat(Some("Ada")).await;
    let admin = app.admin_token().await;
    let infected_docx = docx_carrying(EICAR);
    let pdf = samples::pdf();
    let refused: [(&str, Vec<FilePart>); 5] = [
        ("eicar.txt", vec![("eicar.txt", EICAR, "text/plain")]),
        ("report.docx", vec![("report.docx", &infected_docx, DOCX)]),
        (
            "figures.txt",
            vec![("figures.txt", sample.as_bytes(), "text/plain")],
        ),
        // One bad file refuses the whole message: the clean one is not kept either.
        (
            "eicar.txt",
            vec![
                ("fine.pdf", &pdf, "application/pdf"),
                ("eicar.txt", EICAR, "text/plain"),
            ],
        ),
        ("eicar.txt", vec![("eicar.txt", EICAR, "text/plain")]),
    ];
    for (index, (named, files)) in refused.iter().enumerate() {
        // The last one goes as the admin: admins' uploads are scanned too.
        let sender = if index == 4 { &admin } else { &token };
        let response = app.upload(sender, &chat_id, files, None).await;
        assert_eq!(error_code(&response), Some("VIRUS_DETECTED"), "{response}");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
        assert!(
            !message.contains("Chatdesk.Test") && !message.contains("EICAR"),
            "the signature stays in the log: {message}"
        );
        assert!(app.stored_objects().await.is_empty(), "nothing stored");
        assert_eq!(app.row_counts(&chat_id).await, (0, 0), "no rows");
    }

    let clean_docx = samples::docx();
    let png = samples::png(40, 30);
    let message = app
        .upload_ok(
            &token,
            &chat_id,
            &[
                ("notes.txt", &samples::text(), "text/plain"),
                ("letter.docx", &clean_docx, DOCX),
                ("photo.png", &png, "image/png"),
            ],
        )
        .await;
    assert_eq!(message["attachments"].as_array().unwrap().len(), 3);
    assert_eq!(app.row_counts(&chat_id).await, (1, 3));
}

async fn a_stopped_clamd_fails_closed_unless_told_otherwise(backend: Backend, store: Store) {
    let Some(mut clamd) = Clamd::start(&[("EICAR", EICAR)], true) else {
        return;
    };
    let closed = scanning_app(backend.clone(), &store, &clamd, false).await;
    let open = scanning_app(backend, &store, &clamd, true).await;
    let text = samples::text();
    let file: [FilePart; 1] = [("notes.txt", &text, "text/plain")];
    for app in [&closed, &open] {
        let (chat_id, token) = app.start_chat(None).await;
        app.upload_ok(&token, &chat_id, &file).await;
    }

    clamd.stop();
    let (chat_id, token) = closed.start_chat(None).await;
    let response = closed.upload(&token, &chat_id, &file, None).await;
    assert_eq!(error_code(&response), Some("UNAVAILABLE"), "{response}");
    assert_eq!(closed.row_counts(&chat_id).await.0, 0);
    assert_eq!(
        closed.stored_objects().await.len(),
        1,
        "only the earlier file"
    );
    let ready = closed.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["clamd"], "unavailable", "{ready}");
    // Text still goes through: only files need the scanner.
    closed.send(&token, &chat_id, "still here").await;

    let (chat_id, token) = open.start_chat(None).await;
    open.upload_ok(&token, &chat_id, &file).await;
    assert_eq!(open.stored_objects().await.len(), 2, "stored unscanned");
    let ready = open.get("/readyz").await;
    assert_eq!(ready.status(), 200, "fail-open uploads still work");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["clamd"], "unavailable", "{ready}");
}

/// Not a benchmark: one figure for the README, the time a 10 MiB upload takes with and
/// without the scan (median of five, same server, local storage, SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_cost_per_10_mib_upload() {
    let Some(clamd) = Clamd::start(&[("EICAR", EICAR)], false) else {
        return;
    };
    // Text, and a Word file whose 10 MiB part clamd unpacks and scans too; the text varies
    // (hex of a counter's hash), so nothing compresses or repeats its way to a fast scan.
    let mut text = Vec::with_capacity(10 * 1024 * 1024);
    let mut counter = 0u64;
    while text.len() < 10 * 1024 * 1024 - 64 {
        let hash = Sha256::digest(counter.to_le_bytes());
        text.extend(
            hash.iter()
                .flat_map(|byte| format!("{byte:02x}").into_bytes()),
        );
        counter += 1;
    }
    let docx = docx_carrying(&text[..10 * 1024 * 1024 - 4096]);
    let cases: [(&str, FilePart); 2] = [
        ("text", ("big.txt", &text, "text/plain")),
        ("docx", ("big.docx", &docx, DOCX)),
    ];
    for (label, file) in cases {
        let mut medians = Vec::new();
        for scanned in [false, true] {
            let address = clamd.address.clone();
            let app = spawn_app_with(Backend::Sqlite, move |settings| {
                if scanned {
                    settings.clamd_url = Some(address);
                }
            })
            .await;
            let (chat_id, token) = app.start_chat(None).await;
            let mut times = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                app.upload_ok(&token, &chat_id, std::slice::from_ref(&file))
                    .await;
                times.push(started.elapsed());
            }
            times.sort();
            medians.push(times[2]);
        }
        eprintln!(
            "10 MiB {label} upload: {:?} unscanned, {:?} scanned: the scan adds {:?}",
            medians[0],
            medians[1],
            medians[1].saturating_sub(medians[0])
        );
    }
}

// ---- erasure -------------------------------------------------------------------------------

const DELETE_CHAT: &str = "mutation($id: UUID!) { deleteChat(id: $id) }";
const INBOX_EVENTS: &str = "subscription { inboxEvents { kind chat { id } } }";

/// Every table of the database but the migrations' own.
async fn tables(app: &TestApp) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = &app.state.db;
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    };
    let mut names: Vec<String> = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .filter(|name| name != "seaql_migrations")
        .collect();
    names.sort();
    names
}

async fn columns(app: &TestApp, table: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1",
            [table.into()],
        ),
        _ => Statement::from_string(
            backend,
            format!("SELECT name FROM pragma_table_info('{table}')"),
        ),
    };
    db.query_all_raw(statement)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

/// Rows, in any table, that name one of `ids` in any id-like column (`id`, `*_id`). The audit
/// table is left out: it names the erased chat on purpose.
async fn rows_naming(app: &TestApp, ids: &[uuid::Uuid]) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let mut found = Vec::new();
    for table in tables(app).await {
        if table == "chat_erasures" {
            continue;
        }
        for column in columns(app, &table).await {
            if column != "id" && !column.ends_with("_id") {
                continue;
            }
            for id in ids {
                let placeholder = if backend == sea_orm::DbBackend::Postgres {
                    "$1"
                } else {
                    "?"
                };
                let count = db
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = {placeholder}"),
                        [(*id).into()],
                    ))
                    .await;
                // A column of another type (an admin's text id, say) cannot hold a UUID.
                let Ok(Some(row)) = count else { continue };
                if row.try_get::<i64>("", "n").unwrap_or(0) > 0 {
                    found.push(format!("{table}.{column} = {id}"));
                }
            }
        }
    }
    found
}

/// A chat with text, a photo (file and thumbnail) and a PDF, from both sides: the ids of the
/// chat, its messages and its attachments.
async fn busy_chat(app: &TestApp, admin: &str, name: &str) -> (String, String, Vec<uuid::Uuid>) {
    let (chat_id, token) = app.start_chat(Some(name)).await;
    app.send(&token, &chat_id, &format!("{name}'s order number is 4821"))
        .await;
    let png = samples::png(60, 40);
    let pdf = samples::pdf();
    let sent = app
        .upload_ok(
            &token,
            &chat_id,
            &[
                ("photo.png", &png, "image/png"),
                ("invoice.pdf", &pdf, "application/pdf"),
            ],
        )
        .await;
    let reply = app.send(admin, &chat_id, "thanks, looking").await;
    app.data(
        "mutation($id: UUID!) { markChatRead(chatId: $id) { id } }",
        json!({ "id": chat_id }),
        Some(admin),
    )
    .await;
    let mut ids = vec![
        chat_id.parse().unwrap(),
        sent["id"].as_str().unwrap().parse().unwrap(),
        reply["id"].as_str().unwrap().parse().unwrap(),
    ];
    for attachment in sent["attachments"].as_array().unwrap() {
        ids.push(attachment["id"].as_str().unwrap().parse().unwrap());
    }
    (chat_id, token, ids)
}

async fn audit_lines(app: &TestApp) -> Vec<entity::chat_erasure::Model> {
    use sea_orm::{EntityTrait, QueryOrder};
    entity::chat_erasure::Entity::find()
        .order_by_asc(entity::chat_erasure::Column::ErasedAt)
        .all(&app.state.db)
        .await
        .unwrap()
}

async fn erasure_leaves_nothing_behind(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let admin = app.admin_token().await;
    let (mine, token, my_ids) = busy_chat(&app, &admin, "Ada").await;
    let before_mine = app.stored_objects().await;
    assert_eq!(before_mine.len(), 3, "photo, its thumbnail, PDF");
    let (theirs, other_token, their_ids) = busy_chat(&app, &admin, "Grace").await;
    let theirs_objects: Vec<String> = app
        .stored_objects()
        .await
        .into_iter()
        .filter(|key| !before_mine.contains(key))
        .collect();
    let mut inbox = common::ws::subscribe(app.port, Some(&admin), INBOX_EVENTS, json!({})).await;

    // Nobody may erase someone else's chat.
    let response = app
        .graphql(DELETE_CHAT, json!({ "id": theirs }), Some(&token))
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    let response = app
        .graphql(DELETE_CHAT, json!({ "id": theirs }), None)
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");

    // The visitor erases its own chat.
    let data = app
        .data(DELETE_CHAT, json!({ "id": mine }), Some(&token))
        .await;
    assert_eq!(data["deleteChat"], true);
    let event = inbox.expect_kind("inboxEvents", "CHAT_DELETED").await;
    assert_eq!(event["chat"]["id"], mine.as_str());
    assert_eq!(rows_naming(&app, &my_ids).await, Vec::<String>::new());
    assert!(!rows_naming(&app, &their_ids).await.is_empty());
    // Nor does the search index (FTS5 tables on SQLite) still know the words or the name.
    for term in ["Ada's order number", "Ada"] {
        let found = app
            .data(
                "query($q: String) { chats(filter: { search: $q }) { edges { node { id } } } }",
                json!({ "q": term }),
                Some(&admin),
            )
            .await;
        assert_eq!(found["chats"]["edges"], json!([]), "{term}");
    }
    assert_eq!(
        app.stored_objects().await,
        theirs_objects,
        "only the other chat's files"
    );
    // The token is dead.
    let response = app
        .graphql(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": mine }),
            Some(&token),
        )
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    let response = app
        .graphql(DELETE_CHAT, json!({ "id": mine }), Some(&admin))
        .await;
    assert_eq!(error_code(&response), Some("NOT_FOUND"), "{response}");

    // An admin erases any chat.
    let data = app
        .data(DELETE_CHAT, json!({ "id": theirs }), Some(&admin))
        .await;
    assert_eq!(data["deleteChat"], true);
    assert_eq!(rows_naming(&app, &their_ids).await, Vec::<String>::new());
    assert!(app.stored_objects().await.is_empty());
    let response = app
        .graphql(
            "mutation($id: UUID!) { markChatRead(chatId: $id) { id } }",
            json!({ "id": theirs }),
            Some(&other_token),
        )
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");

    // The audit lines: who, which chat, when, how much; no content.
    let lines = audit_lines(&app).await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].chat_id.to_string(), mine);
    assert_eq!(lines[0].erased_by, entity::chat_erasure::ErasedBy::Visitor);
    assert_eq!(lines[0].admin_id, None);
    assert_eq!((lines[0].message_count, lines[0].file_count), (3, 2));
    assert_eq!(lines[1].chat_id.to_string(), theirs);
    assert_eq!(lines[1].erased_by, entity::chat_erasure::ErasedBy::Admin);
    let me = app.data("{ me { id } }", json!({}), Some(&admin)).await;
    assert_eq!(
        lines[1].admin_id.map(|id| id.to_string()).as_deref(),
        me["me"]["id"].as_str()
    );
    assert_eq!(
        columns(&app, "chat_erasures").await.len(),
        7,
        "no column was added that could hold content"
    );
}

/// The state a crash between the erasure's commit and its file deletions leaves: rows gone,
/// files kept. The orphan sweep removes those files once they are an hour old.
async fn files_of_a_crashed_erasure_are_swept(backend: Backend, store: Store) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let admin = app.admin_token().await;
    let (chat_id, _, _) = busy_chat(&app, &admin, "Ada").await;
    let objects = app.stored_objects().await;
    assert_eq!(objects.len(), 3);
    entity::chat::Entity::delete_many()
        .filter(entity::chat::Column::Id.eq(chat_id.parse::<uuid::Uuid>().unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(app.row_counts(&chat_id).await, (0, 0), "cascaded");
    for key in &objects {
        if !app.backdate(key, Duration::from_secs(2 * 3600)) {
            eprintln!("S3 without CHATDESK_TEST_S3_DATA: objects cannot be backdated");
            return;
        }
    }
    let report = api::service::retention::run_once(&app.state.db, app.state.storage.as_ref(), 0)
        .await
        .unwrap();
    assert_eq!(report.removed_orphans, 3);
    assert!(app.stored_objects().await.is_empty());
}

/// On Postgres, a token another instance has already confirmed (and memoized) stops working
/// there too once the chat is erased here.
async fn an_erased_token_dies_on_every_instance(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // One instance per SQLite file.
    }
    let first = common::spawn_app(backend).await;
    let second = first.spawn_another().await;
    let (chat_id, token) = first.start_chat(None).await;
    let read = "query($id: UUID!) { chat(id: $id) { id } }";
    second
        .data(read, json!({ "id": chat_id }), Some(&token))
        .await;
    first
        .data(DELETE_CHAT, json!({ "id": chat_id }), Some(&token))
        .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = second
            .graphql(read, json!({ "id": chat_id }), Some(&token))
            .await;
        if error_code(&response) == Some("UNAUTHENTICATED") {
            break;
        }
        assert!(Instant::now() < deadline, "still answered: {response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- chat retention ------------------------------------------------------------------------

async fn chat_retention_erases_inactive_chats(backend: Backend, store: Store) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app_on(backend, &store, |settings| {
        settings.chat_retention_days = 30
    })
    .await;
    let admin = app.admin_token().await;
    let (old, old_token, old_ids) = busy_chat(&app, &admin, "Old").await;
    let old_objects = app.stored_objects().await;
    let (fresh, _, fresh_ids) = busy_chat(&app, &admin, "Fresh").await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(31);
    entity::chat::Entity::update_many()
        .col_expr(entity::chat::Column::UpdatedAt, Expr::value(long_ago))
        .col_expr(entity::chat::Column::LastMessageAt, Expr::value(long_ago))
        .col_expr(entity::chat::Column::CreatedAt, Expr::value(long_ago))
        .filter(entity::chat::Column::Id.eq(old.parse::<uuid::Uuid>().unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    let report = api::service::retention::run_jobs(
        &app.state.db,
        app.state.storage.as_ref(),
        &app.state.bus,
        &app.state.hooks,
        0,
        app.state.settings.chat_retention_days,
    )
    .await
    .unwrap();
    assert_eq!(report.erased_chats, 1, "{report:?}");
    assert_eq!(rows_naming(&app, &old_ids).await, Vec::<String>::new());
    for id in &fresh_ids {
        assert!(!rows_naming(&app, &[*id]).await.is_empty(), "{id} kept");
    }
    let left = app.stored_objects().await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|key| !old_objects.contains(key)));
    let lines = audit_lines(&app).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].erased_by,
        entity::chat_erasure::ErasedBy::Retention
    );
    let response = app
        .graphql(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": old }),
            Some(&old_token),
        )
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    app.data(
        "query($id: UUID!) { chat(id: $id) { id } }",
        json!({ "id": fresh }),
        Some(&admin),
    )
    .await;
    // Off by default: nothing is erased at 0.
    let report = api::service::retention::run_jobs(
        &app.state.db,
        app.state.storage.as_ref(),
        &app.state.bus,
        &app.state.hooks,
        0,
        0,
    )
    .await
    .unwrap();
    assert_eq!(report.erased_chats, 0);
}

storage_tests!(
    malware_is_refused_and_clean_files_pass,
    a_stopped_clamd_fails_closed_unless_told_otherwise,
    erasure_leaves_nothing_behind,
    files_of_a_crashed_erasure_are_swept,
    chat_retention_erases_inactive_chats,
);

// ---- transcripts ---------------------------------------------------------------------------

async fn transcript(
    app: &TestApp,
    chat_id: &str,
    json: bool,
    token: Option<&str>,
) -> reqwest::Response {
    let suffix = if json { "/json" } else { "" };
    let mut request = app
        .client
        .get(app.url(&format!("/api/chat/transcripts/{chat_id}{suffix}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn transcripts_are_inert_and_guarded(backend: Backend) {
    let app = common::spawn_app(backend).await;
    let admin = app.admin_token().await;
    let (chat_id, token) = app.start_chat(Some("<img src=x onerror=alert(1)>")).await;
    app.send(&token, &chat_id, "<script>alert(\"owned\")</script> & more")
        .await;
    let pdf = samples::pdf();
    let sent = app
        .upload_ok(
            &token,
            &chat_id,
            &[("invoice.pdf", &pdf, "application/pdf")],
        )
        .await;
    let attachment_id = sent["attachments"][0]["id"].as_str().unwrap().to_owned();
    app.send(&admin, &chat_id, "Here is what we found").await;

    for who in [&token, &admin] {
        let response = transcript(&app, &chat_id, false, Some(who)).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("sandbox") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert_eq!(headers["cache-control"], "no-store");
        let page = response.text().await.unwrap();
        let lower = page.to_ascii_lowercase();
        assert!(!lower.contains("<script"), "{page}");
        assert!(!lower.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; &amp; more"));
        assert!(page.contains("Here is what we found"));
        assert!(
            page.contains(&format!("invoice.pdf</a> ({})", human(pdf.len()))),
            "{page}"
        );
        // The signed link serves the file without a credential.
        let start = page.find("href=\"").unwrap() + 6;
        let link = page[start..start + page[start..].find('"').unwrap()].replace("&amp;", "&");
        assert!(link.contains(&attachment_id), "{link}");
        assert_eq!(app.download(&link).await, pdf);
    }

    let response = transcript(&app, &chat_id, true, Some(&admin)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["chat"]["id"], chat_id.as_str());
    assert_eq!(
        body["chat"]["visitor"]["name"],
        "<img src=x onerror=alert(1)>"
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["sender"], "VISITOR");
    assert_eq!(messages[1]["attachments"][0]["name"], "invoice.pdf");
    assert_eq!(messages[1]["attachments"][0]["sizeBytes"], pdf.len());
    assert_eq!(messages[2]["sender"], "ADMIN");

    // Everyone else gets the same 404.
    let (other_chat, other_token) = app.start_chat(None).await;
    for (chat, json, who) in [
        (chat_id.as_str(), true, Some(token.as_str())),
        (chat_id.as_str(), false, Some(other_token.as_str())),
        (other_chat.as_str(), false, Some(token.as_str())),
        (chat_id.as_str(), false, None),
        (chat_id.as_str(), false, Some("vt_made-up")),
        ("not-a-uuid", false, Some(admin.as_str())),
        (
            &uuid::Uuid::now_v7().to_string(),
            false,
            Some(admin.as_str()),
        ),
    ] {
        let response = transcript(&app, chat, json, who).await;
        assert_eq!(response.status(), 404, "{chat} {json} {who:?}");
    }
    app.data(DELETE_CHAT, json!({ "id": chat_id }), Some(&admin))
        .await;
    assert_eq!(
        transcript(&app, &chat_id, false, Some(&admin))
            .await
            .status(),
        404
    );
}

fn human(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

backend_tests!(
    an_erased_token_dies_on_every_instance,
    transcripts_are_inert_and_guarded
);

// ---- in the browser ------------------------------------------------------------------------

/// The widget saves a transcript that, opened in the browser, runs nothing; then deletes the
/// conversation after a confirmation, which the server forgets entirely, and a new message
/// starts a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_saves_a_transcript_and_deletes_the_conversation() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    open_demo(&page, &app).await;
    open_panel(&page).await;
    let hostile =
        "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> hello";
    send_text(&page, hostile).await;
    let record = stored(&page).await;
    let chat_id = record["chatId"].as_str().unwrap().to_owned();
    let token = record["token"].as_str().unwrap().to_owned();
    let admin = app.admin_token().await;
    app.send(&admin, &chat_id, "Answer from support").await;

    // Download transcript: the saved blob is captured on its way to the download link.
    page.eval(
        "window.__blobs = []; { const make = URL.createObjectURL.bind(URL); \
         URL.createObjectURL = b => { window.__blobs.push(b); return make(b); }; } true",
    )
    .await;
    page.click(&w("chatdesk-menu-button")).await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-menu")), WAIT)
        .await;
    page.click(&w("chatdesk-transcript")).await;
    page.wait_for("window.__blobs.length === 1", WAIT).await;
    let saved = page.eval("window.__blobs[0].text()").await;
    let saved = saved.as_str().unwrap();
    assert!(!saved.to_ascii_lowercase().contains("<script"), "{saved}");
    assert!(saved.contains("Answer from support"), "{saved}");

    // The transcript opened in the browser: the text shows as text, nothing runs.
    let viewer = browser.page(1000, 800).await;
    viewer.call("Network.enable", json!({})).await;
    viewer
        .call(
            "Network.setExtraHTTPHeaders",
            json!({ "headers": { "Authorization": format!("Bearer {token}") } }),
        )
        .await;
    viewer
        .goto(&app.url(&format!("/api/chat/transcripts/{chat_id}")))
        .await;
    let opened = viewer
        .eval(
            "({ scripts: document.scripts.length, images: document.images.length, \
               pwned: window.__pwned ?? null, origin: self.origin, \
               text: document.body.innerText })",
        )
        .await;
    assert_eq!(opened["scripts"], 0, "{opened}");
    assert_eq!(opened["images"], 0, "{opened}");
    assert_eq!(opened["pwned"], Value::Null, "{opened}");
    assert_eq!(opened["origin"], "null", "sandboxed: {opened}");
    let text = opened["text"].as_str().unwrap();
    assert!(text.contains(hostile), "{text}");
    assert!(text.contains("Answer from support"), "{text}");

    // Delete this conversation: asks first.
    let axe = common::browser::axe_source();
    page.click(&w("chatdesk-menu-button")).await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-menu")), WAIT)
        .await;
    if let Some(axe) = &axe {
        let found = common::browser::serious_accessibility_violations(&page, axe).await;
        assert!(found.is_empty(), "with the menu open: {found:#?}");
    }
    let shots = common::browser::screenshot_dir("widget/data-protection");
    page.screenshot(&shots.join("1-menu.png")).await;
    page.click(&w("chatdesk-delete")).await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-delete-bar")), WAIT)
        .await;
    if let Some(axe) = &axe {
        let found = common::browser::serious_accessibility_violations(&page, axe).await;
        assert!(found.is_empty(), "with the confirmation open: {found:#?}");
    }
    page.screenshot(&shots.join("2-confirm-delete.png")).await;
    assert!(
        app.data(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": chat_id }),
            Some(&admin)
        )
        .await["chat"]
            .is_object(),
        "nothing is deleted before the confirmation"
    );
    page.click(&w("chatdesk-delete-confirm")).await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-deleted-note")), WAIT)
        .await;
    page.screenshot(&shots.join("3-deleted.png")).await;
    assert_eq!(
        page.eval("localStorage.getItem('chatdesk:' + location.origin + '/')")
            .await,
        Value::Null
    );
    assert_eq!(
        page.eval(&format!(
            "{ROOT}.querySelectorAll('[data-testid=\"chatdesk-message\"]').length"
        ))
        .await,
        0
    );
    let gone = app
        .data(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    assert_eq!(gone["chat"], Value::Null);
    let response = app
        .graphql(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": chat_id }),
            Some(&token),
        )
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));

    // Writing again starts a new conversation.
    page.click(&w("chatdesk-input")).await;
    send_text(&page, "one more question").await;
    let record = stored(&page).await;
    assert_ne!(record["chatId"].as_str().unwrap(), chat_id);
    page.assert_no_script_errors();
}

/// The admin page: the chat view saves a transcript and deletes the chat after a confirmation;
/// another admin's list drops the chat live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_saves_a_transcript_and_deletes_a_chat_from_the_chat_view() {
    use common::browser::admin::{row, sign_in, t};
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let (chat_id, token) = app.start_chat(Some("Ada")).await;
    app.send(
        &token,
        &chat_id,
        "<script>window.__pwned = 1</script> please delete me",
    )
    .await;
    let (kept, _) = app.start_chat(Some("Grace")).await;
    let page = browser.page(1280, 900).await;
    let other = browser.page(1280, 900).await;
    sign_in(&page, &app).await;
    sign_in(&other, &app).await;
    for admin_page in [&page, &other] {
        admin_page.wait_for(&row(&chat_id), WAIT).await;
    }

    page.click(&row(&chat_id)).await;
    page.wait_for(
        &format!(
            "!{}.hidden && {}.textContent.includes('Ada')",
            t("chat-view"),
            t("chat-title")
        ),
        WAIT,
    )
    .await;
    page.eval(
        "window.__blobs = []; { const make = URL.createObjectURL.bind(URL); \
         URL.createObjectURL = b => { window.__blobs.push(b); return make(b); }; } true",
    )
    .await;
    page.click(&t("transcript-download")).await;
    page.wait_for("window.__blobs.length === 1", WAIT).await;
    let saved = page.eval("window.__blobs[0].text()").await;
    let saved = saved.as_str().unwrap();
    assert!(saved.contains("please delete me"), "{saved}");
    assert!(!saved.to_ascii_lowercase().contains("<script"), "{saved}");

    page.click(&t("delete-chat")).await;
    page.wait_for(&format!("!{}.hidden", t("delete-bar")), WAIT)
        .await;
    page.click(&t("delete-cancel")).await;
    page.wait_for(&format!("{}.hidden", t("delete-bar")), WAIT)
        .await;
    page.click(&t("delete-chat")).await;
    page.click(&t("delete-confirm")).await;
    page.wait_for(
        &format!("{}.hidden && !{}", t("chat-view"), row(&chat_id)),
        WAIT,
    )
    .await;
    other.wait_for(&format!("!{}", row(&chat_id)), LIVE).await;
    assert_eq!(
        other.eval(&format!("!!{}", row(&kept))).await,
        true,
        "only that chat left the list"
    );
    let admin = app.admin_token().await;
    let gone = app
        .data(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    assert_eq!(gone["chat"], Value::Null);
    page.assert_no_script_errors();
    other.assert_no_script_errors();
}

/// With scanning on, the widget says "Scanning…" once a file is up, until it is stored; a file
/// clamd refuses shows the server's reason under the message, to remove, not to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_says_scanning_and_shows_a_refused_file() {
    use common::browser::{browser_and_app_with, write_file};
    let Some(clamd) = Clamd::start(&[("EICAR", EICAR)], false) else {
        return;
    };
    let address = clamd.address.clone();
    let Some((app, browser)) =
        browser_and_app_with(move |settings| settings.clamd_url = Some(address)).await
    else {
        return;
    };
    let page = browser.page(1280, 900).await;
    open_demo(&page, &app).await;
    page.click(&w("chatdesk-launcher")).await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    // Every status label the messages show, in order.
    page.eval(&format!(
        "window.__statuses = []; new MutationObserver(() => {{ \
           for (const s of {ROOT}.querySelectorAll('[data-testid=\"chatdesk-status\"]')) {{ \
             if (window.__statuses.at(-1) !== s.textContent) window.__statuses.push(s.textContent); }} \
         }}).observe({ROOT}, {{ subtree: true, childList: true, characterData: true }}); true"
    ))
    .await;
    let files = tempfile::tempdir().unwrap();
    let messages = w_all("chatdesk-message");
    for (index, (name, bytes)) in [
        (
            "notes.txt",
            "a clean line of notes\n".repeat(100_000).into_bytes(),
        ),
        ("eicar.txt", EICAR.to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        let path = write_file(files.path(), name, &bytes);
        page.set_files(&w("chatdesk-file-input"), &[&path]).await;
        page.wait_for(
            &format!(
                "{ROOT}.querySelectorAll('[data-testid=\"chatdesk-pending-file\"]').length === 1"
            ),
            WAIT,
        )
        .await;
        page.click(&w("chatdesk-send")).await;
        page.wait_for(
            &format!(
                "{messages}.length === {} && ['sent', 'read', 'failed'].includes({messages}.at(-1).dataset.state)",
                index + 1
            ),
            WAIT,
        )
        .await;
    }
    let statuses = page.eval("window.__statuses").await;
    let statuses: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let scanning = statuses.iter().position(|s| *s == "Scanning…");
    let sent = statuses.iter().position(|s| *s == "Sent");
    assert!(
        matches!((scanning, sent), (Some(a), Some(b)) if a < b),
        "Scanning… then Sent: {statuses:?}"
    );
    let last = page
        .eval(&format!(
            "(m => ({{ state: m.dataset.state, \
               error: m.querySelector('[data-testid=chatdesk-message-error]')?.textContent, \
               retry: !!m.querySelector('[data-testid=chatdesk-retry]') }}))({messages}.at(-1))"
        ))
        .await;
    assert_eq!(last["state"], "failed", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains("eicar.txt") && error.contains("virus"),
        "{error}"
    );
    assert_eq!(last["retry"], false, "{last}");
    assert_eq!(app.stored_objects().await.len(), 1, "only the clean file");
    page.assert_no_script_errors();
}
