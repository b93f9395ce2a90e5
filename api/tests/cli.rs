//! The `chatdesk` binary: bad configuration fails with one clear line, admin commands work.

use std::io::Write;
use std::process::{Command, Output, Stdio};

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
        Some("a long password\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = chatdesk(dir.path(), &[], &["admin", "list"], None);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("sam@example.com\tSam"), "{listed}");

    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "create", "sam@example.com", "--password-stdin"],
        Some("another password\n"),
    );
    assert_one_clear_line(&out, "exists already");
    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "passwd", "sam@example.com", "--password-stdin"],
        Some("short\n"),
    );
    assert_one_clear_line(&out, "at least 8 characters");
    let out = chatdesk(
        dir.path(),
        &[],
        &["admin", "passwd", "sam@example.com", "--password-stdin"],
        Some("a new long password\n"),
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("created 4 demo chats"));
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
        assert_eq!(count("SELECT count(*) FROM chats").await, 4);
        assert_eq!(
            count("SELECT count(DISTINCT sender_type) FROM chat_messages").await,
            2
        );
        assert_eq!(count("SELECT count(DISTINCT status) FROM chats").await, 3);
        assert_eq!(
            count("SELECT count(*) FROM chats WHERE visitor_name IS NOT NULL").await,
            3
        );
    });
}
