//! `spawn_app()`: the real server on a free port, with its own data folder and its own
//! database (SQLite file, or a fresh Postgres database when `TEST_DATABASE_URL` is set).
#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

use api::{Application, Settings};
use serde_json::{Value, json};
use tempfile::TempDir;

pub mod browser;
#[macro_use]
pub mod files;
pub mod helpers;
pub mod resilience_support;
pub mod samples;
pub mod ws;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// The Postgres server to test against, if any. With `CHATDESK_REQUIRE_POSTGRES=1` a missing
/// or unreachable one fails the test instead of skipping it.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let required = std::env::var("CHATDESK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    match url {
        Some(url) => Some(url),
        None if required => panic!("CHATDESK_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"),
        None => {
            eprintln!("skipped on Postgres: TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// Runs each listed `async fn name(backend: Backend)` as a test on SQLite, and on Postgres.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(url) = $crate::common::postgres_url() {
                        super::$name($crate::common::Backend::Postgres(url)).await
                    }
                }
            )*
        }
    };
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: api::state::AppState,
    pub dir: TempDir,
    pub database_url: String,
    postgres: Option<(String, String)>,
}

/// Settings for a test server: a free port, a temp folder, generous rate limits.
pub fn test_settings(dir: &TempDir, database_url: &str) -> Settings {
    let data = dir.path().to_string_lossy().into_owned();
    let vars = [
        ("DATABASE_URL", database_url.to_owned()),
        ("CHATDESK_BIND", "127.0.0.1:0".to_owned()),
        ("CHATDESK_DATA_DIR", data.clone()),
        ("CHATDESK_STORAGE", format!("{data}/uploads")),
        (
            "CHATDESK_JWT_SECRET",
            "test-secret-that-is-at-least-32-characters".to_owned(),
        ),
        ("CHATDESK_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("CHATDESK_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("CHATDESK_RATE_START_PER_HOUR", "10000".to_owned()),
        ("CHATDESK_RATE_SEND_PER_MIN", "10000".to_owned()),
        ("CHATDESK_RATE_LOGIN_PER_MIN", "10000".to_owned()),
        // Every test client is 127.0.0.1; the load test alone holds 200 connections.
        ("CHATDESK_MAX_CONNECTIONS_PER_ADDRESS", "10000".to_owned()),
    ];
    Settings::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings parse")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like `spawn_app`, with a chance to change the settings first.
pub async fn spawn_app_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, postgres) = test_database(&backend, dir.path()).await;
    let mut settings = test_settings(&dir, &database_url);
    customize(&mut settings);
    serve(settings, dir, database_url, postgres).await
}

/// A fresh database for one test: a SQLite file in `dir`, or a new database on the Postgres
/// server. (Its URL, and for Postgres the server and the name to drop afterwards.)
pub async fn test_database(
    backend: &Backend,
    dir: &std::path::Path,
) -> (String, Option<(String, String)>) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}/chatdesk.db?mode=rwc", dir.display()),
            None,
        ),
        Backend::Postgres(server_url) => {
            let (url, name) = postgres_database(server_url).await;
            (url, Some((server_url.clone(), name)))
        }
    }
}

/// A new database on the Postgres server: its URL and its name (to drop afterwards).
pub async fn postgres_database(server_url: &str) -> (String, String) {
    let name = format!("chatdesk_test_{}", uuid::Uuid::new_v4().simple());
    create_database(server_url, &name).await;
    (with_database(server_url, &name), name)
}

/// Builds and starts the server; `postgres` names a database to drop with the app.
async fn serve(
    settings: Settings,
    dir: TempDir,
    database_url: String,
    postgres: Option<(String, String)>,
) -> TestApp {
    let app = Application::build(settings).await.expect("the app builds");
    let port = app.port();
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        state,
        dir,
        database_url,
        postgres,
    }
}

/// `server_url` with its database replaced by `name`.
pub fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin_connection(server_url: &str) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("Postgres at TEST_DATABASE_URL is unreachable: {e}"))
}

pub async fn create_database(server_url: &str, name: &str) {
    use sea_orm::ConnectionTrait;
    let db = admin_connection(server_url).await;
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    db.close().await.ok();
}

pub async fn drop_database(server_url: &str, name: &str) {
    use sea_orm::ConnectionTrait;
    let db = admin_connection(server_url).await;
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    db.close().await.ok();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((server_url, name)) = self.postgres.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(drop_database(&server_url, &name));
                }
            })
            .join();
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The whole GraphQL response.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        graphql_at(&self.client, &self.address, query, variables, token).await
    }

    /// The `data` of a response that must have no errors.
    pub async fn data(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        expect_data(self.graphql(query, variables, token).await)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// A GET that asks for `accept` (a browser asks for `text/html`).
    pub async fn get_accepting(&self, path: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept", accept)
            .send()
            .await
            .expect("request sent")
    }

    /// Starts a chat as a visitor: (chat id, visitor token).
    pub async fn start_chat(&self, name: Option<&str>) -> (String, String) {
        let data = self
            .data(
                "mutation($input: StartChatInput) { startChat(input: $input) { chatToken chat { id } } }",
                json!({ "input": { "visitorName": name } }),
                None,
            )
            .await;
        (
            data["startChat"]["chat"]["id"].as_str().unwrap().to_owned(),
            data["startChat"]["chatToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn send(&self, token: &str, chat_id: &str, body: &str) -> Value {
        let data = self
            .data(
                "mutation($chatId: UUID!, $body: String) { sendMessage(chatId: $chatId, body: $body) { id body sender createdAt readAt clientMessageId } }",
                json!({ "chatId": chat_id, "body": body }),
                Some(token),
            )
            .await;
        data["sendMessage"].clone()
    }

    pub async fn admin_token(&self) -> String {
        let data = self
            .data(
                "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }",
                json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
                None,
            )
            .await;
        data["login"]["token"].as_str().unwrap().to_owned()
    }

    /// A second server on the same database, as behind a load balancer.
    pub async fn spawn_another(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = test_settings(&dir, &self.database_url);
        serve(settings, dir, self.database_url.clone(), None).await
    }

    pub fn query_count(&self) -> u64 {
        self.state
            .query_count
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A GraphQL request to the server at `base` (`http://host:port`: another instance, the real
/// binary); the whole response.
pub async fn graphql_at(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> Value {
    json_response(graphql_request(client, base, query, variables, token)).await
}

/// The POST of a GraphQL request to `base`, to send as it is or with more headers.
pub fn graphql_request(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Sends `request`; its answer, which must be JSON.
pub async fn json_response(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("request sent");
    response.json().await.expect("a JSON response")
}

/// The `data` of a response that must have no errors.
#[track_caller]
pub fn expect_data(response: Value) -> Value {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response}"
    );
    response["data"].clone()
}

/// The `extensions.code` of the first error.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// A free port on the loopback interface (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// `target/debug/chatdesk`, if it is there and at least as new as the `api` library, for the
/// tests that run the real binary; skipped otherwise, and a failure when `CI` is set.
pub fn chatdesk_binary() -> Option<std::path::PathBuf> {
    let required = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let exe = std::env::current_exe().expect("the test executable");
    let deps = exe.parent().expect("target/debug/deps");
    let binary = deps
        .parent()
        .expect("target/debug")
        .join(format!("chatdesk{}", std::env::consts::EXE_SUFFIX));
    let modified = |path: &std::path::Path| path.metadata().and_then(|m| m.modified()).ok();
    let library = std::fs::read_dir(deps)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libapi-") && name.ends_with(".rlib"))
        })
        .filter_map(|path| modified(&path))
        .max();
    let problem = match (modified(&binary), library) {
        (None, _) => Some("is missing"),
        (Some(built), Some(library)) if built < library => Some("is older than the api library"),
        _ => None,
    };
    match problem {
        None => Some(binary),
        Some(problem) => {
            let message = format!(
                "{} {problem}: run `cargo build -p api` (cargo test --workspace builds it)",
                binary.display()
            );
            assert!(!required, "{message}");
            eprintln!("skipped: {message}");
            None
        }
    }
}

/// Waits until `check` is true, polling; false if it never was within `wait`.
pub async fn eventually<F, Fut>(wait: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(wait, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `check` every 100 ms until it gives a value; None if it gave none within `wait`.
pub async fn eventually_some<T, F, Fut>(wait: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
