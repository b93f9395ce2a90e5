//! Data protection end to end: uploads scanned by a real clamd (started here with a signature
//! database made for the test, since there is no internet for real signatures), chats erased
//! (rows and stored files, checked by listing both), transcripts, and chat retention.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::files::scan::ClamdAddress;
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
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
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
    let big = "0123456789abcdef"
        .repeat(10 * 1024 * 1024 / 16)
        .into_bytes();
    let file: [FilePart; 1] = [("big.txt", &big, "text/plain")];
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
            app.upload_ok(&token, &chat_id, &file).await;
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[2]);
    }
    eprintln!(
        "10 MiB upload: {:?} unscanned, {:?} scanned: the scan adds {:?}",
        medians[0],
        medians[1],
        medians[1].saturating_sub(medians[0])
    );
}

storage_tests!(
    malware_is_refused_and_clean_files_pass,
    a_stopped_clamd_fails_closed_unless_told_otherwise,
);
