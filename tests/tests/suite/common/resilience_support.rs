//! Shared by the resilience tests (database, crash, storage, hostile input, authorization,
//! load, fuzzing): multipart bodies built byte by byte (so a test can also build broken ones),
//! raw HTTP over TCP, sample files both honest and hostile, a throwaway Postgres cluster, and
//! the check that attachment rows and stored files agree.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, free_port};

/// A hostile or faulty request must still be answered within this.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// `sendMessage` with files, as the widget sends it.
pub const SEND_WITH_FILES: &str = "mutation($chatId: UUID!, $body: String, $files: [Upload!], $key: String) { \
     sendMessage(chatId: $chatId, body: $body, attachments: $files, clientMessageId: $key) { \
     id body clientMessageId attachments { id name mimeType sizeBytes width height url thumbnailUrl } } }";

// ---- multipart ------------------------------------------------------------------------------

/// One part of a multipart body; every field is raw so tests can put anything in it.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn field(name: &str, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            filename: None,
            content_type: None,
            body: value.into(),
        }
    }

    pub fn file(name: &str, filename: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            filename: Some(filename.to_owned()),
            content_type: Some("application/octet-stream".to_owned()),
            body: body.into(),
        }
    }
}

pub const BOUNDARY: &str = "chatdesk-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body: (content type, bytes).
pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    multipart_with(BOUNDARY, parts, true)
}

/// The same with a chosen boundary, and optionally without the closing delimiter.
pub fn multipart_with(boundary: &str, parts: &[Part], close: bool) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(filename) = &part.filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = &part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.body);
        body.extend_from_slice(b"\r\n");
    }
    if close {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The parts of a well-formed `sendMessage` upload of `files` (name, bytes).
pub fn upload_parts(
    chat_id: &str,
    body: Option<&str>,
    key: Option<&str>,
    files: &[(&str, Vec<u8>)],
) -> Vec<Part> {
    let operations = json!({
        "query": SEND_WITH_FILES,
        "variables": {
            "chatId": chat_id,
            "body": body,
            "key": key,
            "files": vec![Value::Null; files.len()],
        }
    });
    let map: serde_json::Map<String, Value> = (0..files.len())
        .map(|index| {
            (
                index.to_string(),
                json!([format!("variables.files.{index}")]),
            )
        })
        .collect();
    let mut parts = vec![
        Part::field("operations", operations.to_string()),
        Part::field("map", Value::Object(map).to_string()),
    ];
    for (index, (name, bytes)) in files.iter().enumerate() {
        parts.push(Part::file(&index.to_string(), name, bytes.clone()));
    }
    parts
}

/// Posts a multipart body to /graphql with the CSRF preflight header: (status, JSON body, or
/// the text as a JSON string).
pub async fn post_multipart(
    app: &TestApp,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    post_graphql(app, Some(content_type), true, token, body).await
}

/// A POST to /graphql with the given content type (and the CSRF preflight header, with
/// `preflight`), answered in time: (status, JSON body, or the text as a JSON string).
pub async fn post_graphql(
    app: &TestApp,
    content_type: Option<&str>,
    preflight: bool,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app.client.post(app.url("/graphql")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if preflight {
        request = request.header("apollo-require-preflight", "true");
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(ANSWER_WITHIN, request.send())
        .await
        .expect("the server answers in time")
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends a message with files the way the widget does.
pub async fn upload(
    app: &TestApp,
    token: &str,
    chat_id: &str,
    body: Option<&str>,
    files: &[(&str, Vec<u8>)],
) -> (u16, Value) {
    let (content_type, bytes) = multipart(&upload_parts(chat_id, body, None, files));
    post_multipart(app, Some(token), &content_type, bytes).await
}

/// The same against any base address (a server in a child process).
pub async fn upload_to(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    chat_id: &str,
    key: Option<&str>,
    files: &[(&str, Vec<u8>)],
) -> Result<(u16, Value), String> {
    let (content_type, bytes) = multipart(&upload_parts(chat_id, None, key, files));
    let response = client
        .post(format!("{base}/graphql"))
        .header("content-type", content_type)
        .header("apollo-require-preflight", "true")
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|error| error.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

// ---- raw HTTP -------------------------------------------------------------------------------

pub async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the test server")
}

/// A POST /graphql request head. `content_length: None` leaves the header out.
pub fn request_head(
    port: u16,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut head = format!(
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n\
         Apollo-Require-Preflight: true\r\n"
    );
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads one HTTP response (by Content-Length, chunked, or until close): (status, body).
/// None when the connection closes before a status line, or nothing complete arrives in `wait`.
pub async fn read_response(stream: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(response) = complete_response(&buffer) {
            return Some(response);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return closed_response(&buffer),
            Ok(Ok(read)) => buffer.extend_from_slice(&chunk[..read]),
            Err(_) => return None,
        }
    }
}

fn split_head(buffer: &[u8]) -> Option<(u16, String, &[u8])> {
    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), &buffer[end + 4..]))
}

fn complete_response(buffer: &[u8]) -> Option<(u16, String)> {
    let (status, head, body) = split_head(buffer)?;
    if let Some(length) = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
    {
        return (body.len() >= length).then(|| {
            (
                status,
                String::from_utf8_lossy(&body[..length]).into_owned(),
            )
        });
    }
    if head.contains("transfer-encoding: chunked") {
        return body
            .ends_with(b"0\r\n\r\n")
            .then(|| (status, dechunk(body)));
    }
    None
}

fn closed_response(buffer: &[u8]) -> Option<(u16, String)> {
    let (status, _, body) = split_head(buffer)?;
    Some((status, String::from_utf8_lossy(body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> String {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `chatdesk serve` (the real binary, see `chatdesk_binary`) as a child process on a free port,
/// in `dir` (its data folder; its output goes to `dir/server.log`), with the test admin and JWT
/// secret and `env` on top. Waits until `/healthz` answers: (the child, its base URL).
pub async fn start_chatdesk(
    binary: &Path,
    dir: &Path,
    database_url: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("a log file");
    let data = dir.to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(binary)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", database_url)
        .env("CHATDESK_BIND", format!("127.0.0.1:{port}"))
        .env("CHATDESK_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("CHATDESK_DATA_DIR", &data)
        .env("CHATDESK_STORAGE", format!("{data}/uploads"))
        .env(
            "CHATDESK_JWT_SECRET",
            "test-secret-that-is-at-least-32-characters",
        )
        .env("CHATDESK_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CHATDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("chatdesk starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status() == 200
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "chatdesk exited with {status}: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "chatdesk did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, base)
}

// ---- sample files ---------------------------------------------------------------------------

// The plain ones are `samples`' (one maker of each); here only the hostile ones.
use super::samples::{crc32, png};

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

pub const POLYGLOT_SCRIPT: &str = "<script>alert(document.cookie)</script>";

/// A valid PNG that also carries script: in a text chunk before the end, and after the end.
pub fn png_polyglot() -> Vec<u8> {
    let png = png(40, 30);
    let iend = png.len() - 12;
    let mut out = png[..iend].to_vec();
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(format!("<html><body>{POLYGLOT_SCRIPT}</body></html>").as_bytes());
    out.extend_from_slice(&png_chunk(b"tEXt", &text));
    out.extend_from_slice(&png[iend..]);
    out.extend_from_slice(POLYGLOT_SCRIPT.as_bytes());
    out
}

/// A small PNG (about 2 MB) that inflates to 9000 x 9000 RGBA, 324 MB of pixels: a valid
/// zlib stream of back-references (fixed Huffman codes, written here bit by bit).
pub fn png_bomb() -> Vec<u8> {
    const SIDE: u32 = 9000;
    let raw_len: u64 = u64::from(SIDE) * (1 + u64::from(SIDE) * 4);
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman codes
    let literal_zero = (0x30u32, 8u32);
    let length_258 = (0xC5u32, 8u32); // symbol 285
    bits.code(literal_zero.0, literal_zero.1);
    let references = (raw_len - 1) / 258;
    let rest = (raw_len - 1) % 258;
    for _ in 0..references {
        bits.code(length_258.0, length_258.1);
        bits.put(0, 5); // distance code 0: distance 1
    }
    for _ in 0..rest {
        bits.code(literal_zero.0, literal_zero.1);
    }
    bits.code(0, 7); // end of block
    let mut zlib = vec![0x78, 0x01];
    zlib.extend_from_slice(&bits.finish());
    // Adler-32 of all zeros: a = 1, b = n mod 65521.
    let adler = (((raw_len % 65521) as u32) << 16) | 1;
    zlib.extend_from_slice(&adler.to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    png.extend_from_slice(&png_chunk(b"IDAT", &zlib));
    png.extend_from_slice(&png_chunk(b"IEND", b""));
    png
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    current: u32,
    filled: u32,
}

impl BitWriter {
    /// Data bits, least significant first.
    fn put(&mut self, value: u32, count: u32) {
        for bit in 0..count {
            self.current |= ((value >> bit) & 1) << self.filled;
            self.filled += 1;
            if self.filled == 8 {
                self.out.push(self.current as u8);
                self.current = 0;
                self.filled = 0;
            }
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, length: u32) {
        for bit in (0..length).rev() {
            self.put((code >> bit) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.out.push(self.current as u8);
        }
        self.out
    }
}

pub fn elf() -> Vec<u8> {
    let mut elf = b"\x7FELF\x02\x01\x01\x00".to_vec();
    elf.resize(4096, 0);
    elf
}

pub fn windows_exe() -> Vec<u8> {
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xFF\xFF".to_vec();
    exe.resize(0x3C, 0);
    exe.extend_from_slice(&0x80u32.to_le_bytes());
    exe.resize(0x80, 0);
    exe.extend_from_slice(b"PE\0\0");
    exe.resize(2048, 0);
    exe
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

// ---- rows and files -------------------------------------------------------------------------

/// Every regular file under `root`, as a storage key (`chat/2026/11/<uuid>`), sorted.
pub fn stored_keys(root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.is_file()
                && let Ok(relative) = path.strip_prefix(root)
            {
                keys.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    keys.sort();
    keys
}

/// How attachment rows and the files of a local storage folder relate.
#[derive(Debug, Default)]
pub struct Consistency {
    pub rows: usize,
    /// Keys rows name (originals and thumbnails) that have no file.
    pub missing: Vec<String>,
    /// Rows whose stored file has another size or hash than the row says.
    pub corrupt: Vec<String>,
    /// Files under `chat/` that no row names.
    pub unnamed: Vec<String>,
}

pub async fn consistency(db: &DatabaseConnection, root: &Path) -> Consistency {
    let rows = entity::chat_attachment::Entity::find()
        .all(db)
        .await
        .expect("read attachment rows");
    let mut report = Consistency {
        rows: rows.len(),
        ..Consistency::default()
    };
    let mut named = std::collections::HashSet::new();
    for row in rows.iter().filter(|row| row.purged_at.is_none()) {
        for key in std::iter::once(&row.storage_path).chain(row.thumbnail_path.as_ref()) {
            named.insert(key.clone());
            if !root.join(key).is_file() {
                report.missing.push(key.clone());
            }
        }
        if let Ok(bytes) = std::fs::read(root.join(&row.storage_path))
            && (bytes.len() as i64 != row.size_bytes || sha256_hex(&bytes) != row.sha256)
        {
            report.corrupt.push(row.storage_path.clone());
        }
    }
    report.unnamed = stored_keys(root)
        .into_iter()
        .filter(|key| key.starts_with("chat/") && !named.contains(key))
        .collect();
    report
}

/// A link the API handed out (built on the configured public URL), pointed at the test server.
pub fn local_url(app: &TestApp, url: &str) -> String {
    let public = app.state.settings.public_url.trim_end_matches('/');
    match url.strip_prefix(public) {
        Some(path) => app.url(path),
        None => url.to_owned(),
    }
}

/// The local storage folder of a test app.
pub fn uploads_dir(app: &TestApp) -> PathBuf {
    app.dir.path().join("uploads")
}

pub async fn message_count(db: &DatabaseConnection, chat_id: &str) -> u64 {
    entity::chat_message::Entity::find()
        .filter(
            entity::chat_message::Column::ChatId.eq(uuid::Uuid::parse_str(chat_id).expect("uuid")),
        )
        .count(db)
        .await
        .expect("count messages")
}

pub async fn attachment_count(db: &DatabaseConnection) -> u64 {
    entity::chat_attachment::Entity::find()
        .count(db)
        .await
        .expect("count attachments")
}

// ---- a throwaway Postgres cluster -----------------------------------------------------------

/// A Postgres cluster of the test's own (initdb into a temp folder, as the `postgres` user, on a
/// free port, trust auth), which the test may stop and start at will. Stopped on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// None, after a skip line, when the Postgres binaries or the `postgres` user are missing;
    /// with `CHATDESK_REQUIRE_POSTGRES=1` that fails the test instead.
    pub async fn create() -> Option<Self> {
        let required = std::env::var("CHATDESK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .max();
        let user = std::process::Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .is_ok_and(|out| out.status.success());
        let Some(bin) = bin.filter(|_| user) else {
            let why = "a throwaway Postgres cluster needs /usr/lib/postgresql/*/bin/initdb and a `postgres` OS user";
            assert!(!required, "CHATDESK_REQUIRE_POSTGRES=1 but {why}");
            eprintln!("skipped: {why}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("chatdesk-pg-")
            .tempdir()
            .expect("temp dir");
        let status = tokio::process::Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir.path())
            .status()
            .await
            .expect("chown");
        assert!(status.success(), "chown of the cluster folder failed");
        let cluster = Self {
            bin,
            port: free_port(),
            dir,
        };
        let data = cluster.data();
        cluster
            .as_postgres(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            .await;
        cluster.start().await;
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn as_postgres(&self, program: &str, args: &[&str]) {
        let output = tokio::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .await
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub async fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").to_string_lossy().into_owned();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await;
    }

    /// `mode`: `fast` (clean shutdown) or `immediate` (like a crash: recovery on start).
    pub async fn stop(&self, mode: &str) {
        self.as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        )
        .await;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
