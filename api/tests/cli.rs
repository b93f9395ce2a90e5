//! The `chatdesk` binary: bad configuration fails with one clear line; admin, seed-demo and purge work.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

fn chatdesk(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatdesk"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("CHATDESK_BIND", "127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("chatdesk starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("chatdesk finishes")
}

fn assert_one_clear_line(output: &Output, expected: &str) {
    assert!(!output.status.success(), "should fail: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("chatdesk: ") && line.contains(expected),
        "stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "stderr: {stderr}"
    );
}

#[test]
fn bad_configuration_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatdesk(
        dir.path(),
        &[("DATABASE_URL", "mysql://u:secret@h/db")],
        &["serve"],
        None,
    );
    assert_one_clear_line(&out, "DATABASE_URL");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));

    let out = chatdesk(
        dir.path(),
        &[("CHATDESK_STORAGE", "ftp://host/x")],
        &["serve"],
        None,
    );
    assert_one_clear_line(&out, "unknown storage scheme");

    let out = chatdesk(
        dir.path(),
        &[("CHATDESK_MAX_FILES", "many")],
        &["serve"],
        None,
    );
    assert_one_clear_line(&out, "CHATDESK_MAX_FILES");

    let out = chatdesk(
        dir.path(),
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
        &["serve"],
        None,
    );
    assert_one_clear_line(&out, "CHATDESK_JWT_SECRET");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let out = chatdesk(
        dir.path(),
        &[("CHATDESK_BIND", bind.as_str())],
        &["serve"],
        None,
    );
    assert_one_clear_line(&out, "cannot listen on");

    // An operator is told the cause, not the clients' "internal error": a half-configured S3
    // (a key id without its secret) names what is missing, under the setting it came from.
    let database = format!("sqlite://{}/chatdesk.db?mode=rwc", dir.path().display());
    let out = chatdesk(
        dir.path(),
        &[
            ("DATABASE_URL", database.as_str()),
            ("CHATDESK_STORAGE", "s3://chatdesk-cli-test"),
            ("AWS_ACCESS_KEY_ID", "an-id-without-its-secret"),
        ],
        &["purge"],
        None,
    );
    assert_one_clear_line(&out, "CHATDESK_STORAGE: ");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SecretAccessKey") && !stderr.contains("internal error"),
        "stderr: {stderr}"
    );
}

#[test]
fn admin_commands_create_list_and_change_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatdesk(
        dir.path(),
        &[],
        &[
            "admin",
            "create",
            "Sam@Example.com",
            "--name",
            "Sam",
            "--password-stdin",
        ],
        Some("a long enough passphrase\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = chatdesk(dir.path(), &[], &["admin", "list"], None);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("sam@example.com\tSam"), "{listed}");

    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "create", "sam@example.com", "--password-stdin"],
        Some("another sturdy passphrase\n"),
    );
    assert_one_clear_line(&out, "exists already");
    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "passwd", "sam@example.com", "--password-stdin"],
        Some("short\n"),
    );
    assert_one_clear_line(&out, "at least 12 characters");
    // Long enough, but common: refused with the reason.
    for weak in ["password1234\n", "            \n", "sam@example.com\n"] {
        let out = chatdesk(
            dir.path(),
            &[],
            &["admin", "passwd", "sam@example.com", "--password-stdin"],
            Some(weak),
        );
        assert!(!out.status.success(), "{weak:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("too easy to guess") || stderr.contains("at least 12"),
            "{weak:?}: {stderr}"
        );
    }
    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "passwd", "sam@example.com", "--password-stdin"],
        Some("a new long passphrase to remember\n"),
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn schema_command_prints_the_sdl() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatdesk(dir.path(), &[], &["schema"], None);
    assert!(out.status.success());
    let sdl = String::from_utf8(out.stdout).unwrap();
    assert!(
        sdl.contains("type Query") && sdl.contains("sendMessage"),
        "{sdl}"
    );
}

#[test]
fn seed_demo_creates_chats_with_both_sides_talking() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatdesk(dir.path(), &[], &["seed-demo"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created 6 demo chats"));
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("data/chatdesk.db").display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
        let db = Database::connect(&url).await.unwrap();
        let count = |sql: &'static str| {
            let db = &db;
            async move {
                db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await
                    .unwrap()
                    .unwrap()
                    .try_get_by_index::<i64>(0)
                    .unwrap()
            }
        };
        assert_eq!(count("SELECT count(*) FROM chats").await, 6);
        assert_eq!(
            count("SELECT count(DISTINCT sender_type) FROM chat_messages").await,
            2
        );
        assert_eq!(count("SELECT count(DISTINCT status) FROM chats").await, 3);
        assert_eq!(
            count("SELECT count(*) FROM chats WHERE visitor_name IS NOT NULL").await,
            5
        );
        // The oldest chat's photo is past retention: its row stays, its files are gone.
        assert_eq!(
            count("SELECT count(*) FROM chat_attachments WHERE purged_at IS NOT NULL").await,
            1
        );

        // The demo files went through the upload path: sniffed, re-encoded, stored, hashed.
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT original_name, mime_type, size_bytes, sha256, storage_path, \
                 thumbnail_path, width, height FROM chat_attachments WHERE purged_at IS NULL \
                 ORDER BY mime_type",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let uploads = dir.path().join("data/uploads");
        for row in &rows {
            let name: String = row.try_get_by_index(0).unwrap();
            let mime: String = row.try_get_by_index(1).unwrap();
            let size: i64 = row.try_get_by_index(2).unwrap();
            let sha256: String = row.try_get_by_index(3).unwrap();
            let path: String = row.try_get_by_index(4).unwrap();
            let thumbnail: Option<String> = row.try_get_by_index(5).unwrap();
            let width: Option<i32> = row.try_get_by_index(6).unwrap();
            let height: Option<i32> = row.try_get_by_index(7).unwrap();
            assert!(path.starts_with("chat/") && !path.contains(&name), "{path}");
            let stored = std::fs::read(uploads.join(&path)).unwrap();
            assert_eq!(stored.len() as i64, size);
            assert_eq!(hex(&Sha256::digest(&stored)), sha256);
            match mime.as_str() {
                "application/pdf" => {
                    assert_eq!(name, "carrier-trace-4821.pdf");
                    assert!(stored.starts_with(b"%PDF-") && stored.ends_with(b"%%EOF\n"));
                    assert_eq!((thumbnail, width, height), (None, None, None));
                }
                "image/png" => {
                    assert_eq!(name, "tracking-4821.png");
                    assert_eq!((width, height), (Some(480), Some(300)));
                    let thumbnail = std::fs::read(uploads.join(thumbnail.unwrap())).unwrap();
                    let thumbnail = image::load_from_memory(&thumbnail).unwrap();
                    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 200));
                }
                other => panic!("unexpected demo attachment type {other}"),
            }
        }
        assert_eq!(
            count(
                "SELECT count(*) FROM chat_attachments a JOIN chat_messages m \
                 ON m.id = a.chat_message_id WHERE m.message IS NOT NULL"
            )
            .await,
            3,
            "each file comes with a line of text"
        );
    });
}

#[test]
fn purge_removes_old_files_and_orphans_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatdesk(dir.path(), &[], &["seed-demo"], None);
    assert!(out.status.success(), "{out:?}");
    let out = chatdesk(dir.path(), &[], &["purge"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "purged 0 attachment(s) older than 90 days; removed 0 orphaned file(s)\n"
    );

    // An orphan from two hours ago (a crash between file and row), and one just written,
    // whose row may still be on its way.
    let uploads = dir.path().join("data/uploads");
    let month = uploads.join("chat/2020/01");
    std::fs::create_dir_all(&month).unwrap();
    let old_orphan = month.join("7f1b6d0e-0000-4000-8000-000000000001");
    std::fs::write(&old_orphan, b"left behind").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old_orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600))
        .unwrap();
    let fresh_orphan = month.join("7f1b6d0e-0000-4000-8000-000000000002");
    std::fs::write(&fresh_orphan, b"just written").unwrap();

    let url = format!(
        "sqlite://{}?mode=rw",
        dir.path().join("data/chatdesk.db").display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stored: Vec<String> = runtime.block_on(async {
        use entity::chat_attachment::{Column, Entity};
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
        let db = Database::connect(&url).await.unwrap();
        // The demo's attachments, made 100 days old (one, the expired photo, is purged already).
        Entity::update_many()
            .col_expr(
                Column::CreatedAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::days(100)),
            )
            .exec(&db)
            .await
            .unwrap();
        Entity::find()
            .filter(Column::PurgedAt.is_null())
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|row| std::iter::once(row.storage_path).chain(row.thumbnail_path))
            .collect()
    });
    assert_eq!(stored.len(), 3, "a PDF, an image and its thumbnail");

    // Retention off keeps every file; the sweep still runs.
    let out = chatdesk(
        dir.path(),
        &[("CHATDESK_RETENTION_DAYS", "0")],
        &["purge"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "retention is off (CHATDESK_RETENTION_DAYS=0); removed 1 orphaned file(s)\n"
    );
    for key in &stored {
        assert!(uploads.join(key).exists(), "{key}");
    }
    assert!(!old_orphan.exists());
    assert!(
        fresh_orphan.exists(),
        "an object under an hour old is left alone"
    );

    let out = chatdesk(dir.path(), &[], &["purge"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "purged 2 attachment(s) older than 90 days; removed 0 orphaned file(s)\n"
    );
    for key in &stored {
        assert!(!uploads.join(key).exists(), "{key} was purged");
    }
    assert!(fresh_orphan.exists());
    let purged = runtime.block_on(async {
        use entity::chat_attachment::{Column, Entity};
        use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
        let db = Database::connect(&url).await.unwrap();
        Entity::find()
            .filter(Column::PurgedAt.is_not_null())
            .count(&db)
            .await
            .unwrap()
    });
    assert_eq!(
        purged, 3,
        "the rows stay, marked purged (with the demo's expired photo)"
    );
}

/// The demo's files go to whatever `CHATDESK_STORAGE` names: here a real S3-compatible server
/// (`eval "$(.ci/start-s3.sh)"`; skipped without one unless `CHATDESK_REQUIRE_S3=1`).
#[test]
fn seed_demo_stores_its_files_on_s3() {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let Some(bucket) = var("CHATDESK_TEST_S3_BUCKET") else {
        assert!(
            var("CHATDESK_REQUIRE_S3").as_deref() != Some("1"),
            "CHATDESK_REQUIRE_S3=1 but CHATDESK_TEST_S3_BUCKET is not set: eval \"$(.ci/start-s3.sh)\""
        );
        eprintln!("skipped: no S3 server (see .ci/start-s3.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let storage = format!("s3://{bucket}/{prefix}");
    let aws: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .collect();
    let mut env: Vec<(&str, &str)> = aws
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    env.push(("CHATDESK_STORAGE", storage.as_str()));
    let out = chatdesk(dir.path(), &env, &["seed-demo"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !dir.path().join("data/uploads").exists(),
        "nothing went to the local folder"
    );

    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("data/chatdesk.db").display()
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use futures_util::TryStreamExt;
        use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
        let db = Database::connect(&url).await.unwrap();
        let rows = entity::chat_attachment::Entity::find()
            .filter(entity::chat_attachment::Column::PurgedAt.is_null())
            .all(&db)
            .await
            .unwrap();
        assert_eq!(
            rows.len(),
            2,
            "the files of the demo chats that are not expired"
        );
        // Read back with the server's own S3 client, configured from the same AWS_* variables.
        let store =
            api::storage::from_settings(&api::config::StorageLocation::S3 { bucket, prefix })
                .unwrap();
        for row in rows {
            let object = store.get(&row.storage_path, None).await.unwrap().unwrap();
            let chunks: Vec<bytes::Bytes> = object.body.try_collect().await.unwrap();
            assert_eq!(hex(&Sha256::digest(chunks.concat())), row.sha256);
            if let Some(thumbnail) = row.thumbnail_path {
                assert!(store.get(&thumbnail, None).await.unwrap().is_some());
            }
        }
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
