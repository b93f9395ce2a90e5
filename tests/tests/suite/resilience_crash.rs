//! Crash consistency (issue 9, point 2), with the real `chatdesk` binary in a child process:
//!
//! - SIGKILL in the middle of uploads, then a restart on the same data folder and database: no
//!   attachment row points at a missing (or different) file, every acknowledged message is there
//!   with its files, and the orphan sweep (`retention::run_once`, on files older than an hour)
//!   removes exactly the files no row names: what the kill left and what a crash mid-write
//!   leaves (`.<uuid>.tmp`).
//! - SIGTERM during a slowly streamed upload: the upload finishes with 200 and is stored, new
//!   connections are refused meanwhile, and the process exits cleanly.
//!
//! The binary is `target/debug/chatdesk`, found beside this test's own executable. `cargo test
//! --workspace` builds it (the `api` package has integration tests that need it); a lone
//! `cargo test -p tests` may leave it missing or older than the `api` library, and then these
//! tests say so and skip, unless `CI` is set (as `.ci/run` runs), where they fail.

use crate::common;
use crate::common::resilience_support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, chatdesk_binary, expect_data, graphql_at};
use resilience_support::{
    connect, consistency, multipart, read_response, request_head, start_chatdesk, upload_parts,
    upload_to,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(binary: &Path, dir: &Path, database_url: &str) -> Self {
        let (child, base) = start_chatdesk(
            binary,
            dir,
            database_url,
            &[
                ("CHATDESK_RATE_START_PER_HOUR", "10000"),
                ("CHATDESK_RATE_SEND_PER_MIN", "10000"),
                ("CHATDESK_RATE_LOGIN_PER_MIN", "10000"),
            ],
        )
        .await;
        Self { child, base }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }
}

/// A request that must succeed, on a client of its own (the servers here get killed).
async fn gql(base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    expect_data(graphql_at(&reqwest::Client::new(), base, query, variables, token).await)
}

async fn start_chat(base: &str) -> (String, String) {
    let data = gql(
        base,
        "mutation { startChat { chatToken chat { id } } }",
        json!({}),
        None,
    )
    .await;
    (
        data["startChat"]["chat"]["id"].as_str().unwrap().to_owned(),
        data["startChat"]["chatToken"].as_str().unwrap().to_owned(),
    )
}

fn set_age(path: &Path, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open a stored file");
    file.set_modified(SystemTime::now() - age)
        .expect("backdate a stored file");
}

async fn a_killed_server_leaves_no_row_without_its_file(backend: Backend) {
    let Some(binary) = chatdesk_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (database_url, cleanup) = common::test_database(&backend, dir.path()).await;
    let uploads = dir.path().join("uploads");
    let server = Server::start(&binary, dir.path(), &database_url).await;
    let (chat_id, token) = start_chat(&server.base).await;

    // Uploaders send messages of two files each, as fast as they can, until the server dies.
    let photo = common::samples::png(900, 600);
    let document = [common::samples::small_pdf(), vec![b' '; 512 * 1024]].concat();
    let mut uploaders = Vec::new();
    for n in 0..6 {
        let (base, chat_id, token) = (server.base.clone(), chat_id.clone(), token.clone());
        let files = vec![
            ("photo.png", photo.clone()),
            ("terms.pdf", document.clone()),
        ];
        uploaders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for seq in 0..500 {
                let key = format!("u{n}-{seq}");
                match upload_to(&client, &base, &token, &chat_id, Some(&key), &files).await {
                    Ok((200, answer)) if answer["errors"].is_null() => {
                        acknowledged.push(answer["data"]["sendMessage"].clone());
                    }
                    Ok((status, answer)) => panic!("an upload failed: {status} {answer}"),
                    // The server is gone: this request was in flight.
                    Err(_) => return (acknowledged, true),
                }
            }
            (acknowledged, false)
        }));
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    server.kill().await;
    let mut acknowledged = Vec::new();
    let mut cut = 0;
    for uploader in uploaders {
        let (mine, interrupted) = uploader.await.expect("an uploader");
        acknowledged.extend(mine);
        cut += usize::from(interrupted);
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing was uploaded before the kill"
    );
    assert!(cut > 0, "no upload was in flight when the server died");

    // What a crash in the middle of a write leaves, so the sweep surely has work: a temp file
    // and a finished file whose row never came.
    let month = uploads.join("chat/2020/01");
    std::fs::create_dir_all(&month).unwrap();
    let planted = [
        month.join(uuid::Uuid::new_v4().to_string()),
        month.join(format!(".{}.tmp", uuid::Uuid::new_v4())),
    ];
    for path in &planted {
        std::fs::write(path, b"left behind").unwrap();
    }

    let server = Server::start(&binary, dir.path(), &database_url).await;
    let db = sea_orm::Database::connect(&database_url)
        .await
        .expect("connect to the database");
    let report = consistency(&db, &uploads).await;
    println!(
        "{} acknowledged, {cut} in flight at the kill; {} rows; {} files without a row",
        acknowledged.len(),
        report.rows,
        report.unnamed.len()
    );
    assert!(report.missing.is_empty(), "rows without files: {report:?}");
    assert!(
        report.corrupt.is_empty(),
        "rows with other bytes: {report:?}"
    );
    let admin = gql(
        &server.base,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
        None,
    )
    .await["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    for message in &acknowledged {
        let attachments = message["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 2, "{message}");
        let id = uuid::Uuid::parse_str(message["id"].as_str().unwrap()).unwrap();
        let rows = entity::chat_attachment::Entity::find()
            .filter(entity::chat_attachment::Column::ChatMessageId.eq(id))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "acknowledged {id} lost its attachments");
        for attachment in attachments {
            let response = client
                .get(format!(
                    "{}/api/chat/files/{}",
                    server.base,
                    attachment["id"].as_str().unwrap()
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{attachment}");
        }
    }

    // The sweep: everything is an hour old now; exactly the files no row names go.
    let before = resilience_support::stored_keys(&uploads);
    for key in &before {
        set_age(&uploads.join(key), Duration::from_secs(2 * 3600));
    }
    let storage = api::storage::LocalStorage::new(&uploads);
    let swept = api::service::retention::run_once(&db, &storage, 0)
        .await
        .map_err(|error| error.message())
        .expect("the sweep runs");
    assert_eq!(
        swept.removed_orphans,
        report.unnamed.len(),
        "{swept:?} {report:?}"
    );
    assert!(report.unnamed.len() >= planted.len());
    for path in &planted {
        assert!(!path.exists(), "{} survived the sweep", path.display());
    }
    let after = consistency(&db, &uploads).await;
    assert!(
        after.missing.is_empty() && after.unnamed.is_empty() && after.rows == report.rows,
        "{after:?}"
    );

    // And the restarted server takes uploads as before.
    let (status, answer) = upload_to(
        &client,
        &server.base,
        &token,
        &chat_id,
        None,
        &[("again.png", common::samples::png(10, 10))],
    )
    .await
    .expect("an upload after the restart");
    assert_eq!(status, 200, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
    server.kill().await;
    db.close().await.ok();
    if let Some((server, name)) = cleanup {
        common::drop_database(&server, &name).await;
    }
}

async fn sigterm_lets_an_inflight_upload_finish(backend: Backend) {
    let Some(binary) = chatdesk_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (database_url, cleanup) = common::test_database(&backend, dir.path()).await;
    let mut server = Server::start(&binary, dir.path(), &database_url).await;
    let (chat_id, token) = start_chat(&server.base).await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();

    let document = [common::samples::small_pdf(), vec![b' '; 256 * 1024]].concat();
    let (content_type, body) = multipart(&upload_parts(
        &chat_id,
        Some("sent through a shutdown"),
        Some("graceful-1"),
        &[("slow.pdf", document)],
    ));
    let mut stream = connect(port).await;
    let auth = format!("Bearer {token}");
    stream
        .write_all(&request_head(
            port,
            &content_type,
            Some(body.len()),
            &[("Authorization", &auth)],
        ))
        .await
        .unwrap();
    let chunks: Vec<&[u8]> = body.chunks(body.len() / 10 + 1).collect();
    stream.write_all(chunks[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .await
        .expect("kill -TERM");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Shutting down: no new connections, while the one in flight goes on.
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during shutdown"
    );

    for chunk in &chunks[1..] {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, text) = read_response(&mut stream, Duration::from_secs(30))
        .await
        .expect("the in-flight upload is answered");
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    assert!(answer["errors"].is_null(), "{answer}");
    drop(stream);

    let exit = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("the server exits after its last request")
        .expect("wait");
    assert!(exit.success(), "exit status {exit}");

    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let stored = entity::chat_message::Entity::find()
        .filter(entity::chat_message::Column::ClientMessageId.eq("graceful-1"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let report = consistency(&db, &dir.path().join("uploads")).await;
    assert_eq!(report.rows, 1);
    assert!(
        report.missing.is_empty() && report.unnamed.is_empty(),
        "{report:?}"
    );
    db.close().await.ok();
    if let Some((server, name)) = cleanup {
        common::drop_database(&server, &name).await;
    }
}

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

backend_tests!(
    a_killed_server_leaves_no_row_without_its_file,
    sigterm_lets_an_inflight_upload_finish,
);
