//! Several instances of Chatdesk serving one site (issue 17).
//!
//! - Rate limits shared between instances: on Postgres in the database, with
//!   `CHATDESK_REDIS_URL` in Redis; two instances together allow the configured total, not
//!   twice it. A store that cannot be reached refuses sign-ins and lets the rest through.
//! - The real path: two `chatdesk` processes on one Postgres database and one storage folder,
//!   behind HAProxy with `tests/haproxy/chatdesk.cfg` and behind nginx with
//!   `tests/nginx/chatdesk.conf` (the configurations the README shows), and a visitor and an
//!   admin talking through them.
//!
//! Redis: `TEST_REDIS_URL` (skipped without it unless `CHATDESK_REQUIRE_REDIS=1`). The
//! balancers: the `haproxy` and `nginx` commands (each skipped without it unless
//! `CHATDESK_REQUIRE_HAPROXY=1` / `CHATDESK_REQUIRE_NGINX=1`), Postgres, and the built binary
//! (see `chatdesk_binary`).

use crate::common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use api::limits::RateLimits;
use api::{Application, Settings};
use common::files::{FilePart, upload_at};
use common::ws::subscribe;
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, chatdesk_binary, error_code, free_port,
    graphql_request, json_response, spawn_app_with,
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
const START: &str = "mutation { startChat { chatToken chat { id } } }";
const SEND: &str = "mutation($chatId: UUID!, $body: String, $key: String) { sendMessage(chatId: $chatId, body: $body, clientMessageId: $key) { id body clientMessageId } }";
const INBOX_EVENTS: &str = "subscription { inboxEvents { kind } }";
/// What every instance shares (and the test uses to mint a session).
const JWT_SECRET: &str = "test-secret-that-is-at-least-32-characters";
const CHAT_EVENTS: &str =
    "subscription($chatId: UUID!) { chatEvents(chatId: $chatId) { kind message { body sender } } }";

/// A POST to `{base}/graphql`, as from `forwarded_for` when given; the whole response.
async fn post(
    base: &str,
    forwarded_for: Option<&str>,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> Value {
    let mut request = graphql_request(&reqwest::Client::new(), base, query, variables, token);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    json_response(request).await
}

fn login_vars() -> Value {
    json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })
}

/// Asserts RATE_LIMITED with a retry hint no longer than `max_wait` seconds.
fn assert_limited(response: &Value, max_wait: u64) {
    assert_eq!(error_code(response), Some("RATE_LIMITED"), "{response}");
    let wait = response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterSeconds in {response}"));
    assert!((1..=max_wait).contains(&wait), "retry after {wait} s");
}

fn assert_ok(response: &Value) {
    assert!(response.get("errors").is_none(), "{response}");
}

/// A random client address, so that tests sharing one Redis do not share keys.
fn random_address() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    format!("10.{}.{}.{}", bytes[0], bytes[1], bytes[2].max(1))
}

/// Login 3/min, startChat 4/h, sendMessage 5/min; client addresses from X-Forwarded-For.
fn tight_limits(settings: &mut Settings) {
    settings.rate_login_per_min = 3;
    settings.rate_start_per_hour = 4;
    settings.rate_send_per_min = 5;
    settings.trust_proxy = true;
}

/// A second in-process server on `first`'s database, with its own settings.
struct Another {
    base: String,
    state: api::state::AppState,
    _dir: tempfile::TempDir,
}

async fn another(first: &TestApp, customize: impl FnOnce(&mut Settings)) -> Another {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = common::test_settings(&dir, &first.database_url);
    customize(&mut settings);
    let app = Application::build(settings).await.expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    Another {
        base,
        state,
        _dir: dir,
    }
}

/// Login, startChat and sendMessage through two instances, alternating: the configured totals
/// hold for the pair.
async fn limits_hold_for_the_pair(first: &str, second: &str) {
    let bases = [first, second];
    let address = random_address();
    let from = Some(address.as_str());
    for attempt in 0..3 {
        let base = bases[attempt % 2];
        assert_ok(&post(base, from, LOGIN, login_vars(), None).await);
    }
    assert_limited(&post(second, from, LOGIN, login_vars(), None).await, 20);
    assert_limited(&post(first, from, LOGIN, login_vars(), None).await, 20);
    // Another address has its own quota.
    let other = random_address();
    assert_ok(&post(first, Some(&other), LOGIN, login_vars(), None).await);

    let mut chats = Vec::new();
    for attempt in 0..4 {
        let response = post(bases[attempt % 2], from, START, json!({}), None).await;
        assert_ok(&response);
        chats.push((
            response["data"]["startChat"]["chat"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            response["data"]["startChat"]["chatToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    // 4 an hour: the next one is 15 minutes away.
    assert_limited(&post(first, from, START, json!({}), None).await, 900);

    // Per chat: 5 a minute whichever instance takes them (from five addresses, so the
    // per-address limit is not what trips).
    let (chat_id, token) = &chats[0];
    for attempt in 0..5 {
        let response = post(
            bases[attempt % 2],
            Some(&random_address()),
            SEND,
            json!({ "chatId": chat_id, "body": format!("message {attempt}") }),
            Some(token),
        )
        .await;
        assert_ok(&response);
    }
    let response = post(
        second,
        Some(&random_address()),
        SEND,
        json!({ "chatId": chat_id, "body": "one too many" }),
        Some(token),
    )
    .await;
    assert_limited(&response, 12);
}

/// Two instances on one Postgres database keep one set of limits there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_limits_hold_across_two_instances() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let first = spawn_app_with(Backend::Postgres(url), tight_limits).await;
    let second = another(&first, tight_limits).await;
    assert_eq!(first.state.limits.store_name(), "postgres");
    assert_eq!(second.state.limits.store_name(), "postgres");
    limits_hold_for_the_pair(&first.address, &second.base).await;

    // The limits live in the database, not in either process.
    assert_eq!(first.state.limits.tracked_keys(), 0);
    let rows = rate_limit_rows(&first).await;
    assert!(rows >= 4, "{rows} rows in rate_limits");
    // Pruning keeps keys whose quota is not whole yet (all of them, a moment later).
    first.state.limits.prune().await;
    let kept = rate_limit_rows(&first).await;
    assert_eq!(kept, rows);
    drop(second);
}

/// The rows of the shared rate limit table (Postgres).
async fn rate_limit_rows(app: &TestApp) -> i64 {
    use sea_orm::ConnectionTrait;
    app.state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS rows FROM rate_limits",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "rows")
        .unwrap()
}

/// One instance on SQLite: governor in memory, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_limits_in_memory() {
    let app = spawn_app_with(Backend::Sqlite, tight_limits).await;
    assert_eq!(app.state.limits.store_name(), "memory");
    for _ in 0..3 {
        assert_ok(&post(&app.address, None, LOGIN, login_vars(), None).await);
    }
    assert_limited(
        &post(&app.address, None, LOGIN, login_vars(), None).await,
        20,
    );
    assert!(app.state.limits.tracked_keys() >= 1);
}

/// The Redis server to test against, if any.
fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let required = std::env::var("CHATDESK_REQUIRE_REDIS").is_ok_and(|v| v == "1");
    match url {
        Some(url) => Some(url),
        None if required => panic!("CHATDESK_REQUIRE_REDIS=1 but TEST_REDIS_URL is not set"),
        None => {
            eprintln!("skipped: TEST_REDIS_URL is not set");
            None
        }
    }
}

/// With `CHATDESK_REDIS_URL`, two instances (here on one SQLite file, where they would
/// otherwise keep the limits in memory each) share the limits through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limits_hold_across_two_instances() {
    let Some(url) = redis_url() else {
        return;
    };
    let with_redis = |settings: &mut Settings| {
        tight_limits(settings);
        settings.redis_url = Some(url.clone());
    };
    let first = spawn_app_with(Backend::Sqlite, with_redis).await;
    let second = another(&first, with_redis).await;
    assert_eq!(first.state.limits.store_name(), "redis");
    assert_eq!(second.state.limits.store_name(), "redis");
    limits_hold_for_the_pair(&first.address, &second.base).await;
    assert_eq!(first.state.limits.tracked_keys(), 0);
}

fn limit_settings() -> Settings {
    Settings::from_lookup(|name| match name {
        "DATABASE_URL" => Some("postgres://unused@127.0.0.1:1/unused".to_owned()),
        "CHATDESK_RATE_LOGIN_PER_MIN" => Some("3".to_owned()),
        _ => None,
    })
    .expect("settings")
}

/// The store is gone: sign-ins are refused (fail closed), chats and messages go through (fail
/// open, under the instance's own limits), and no request waits for the store each time.
async fn store_down(limits: &RateLimits) {
    let address: IpAddr = "192.0.2.7".parse().unwrap();
    let chat = uuid::Uuid::new_v4();
    let started = Instant::now();
    for _ in 0..20 {
        match limits.login(address).await {
            Err(api::error::Error::RateLimited {
                retry_after_seconds,
            }) => assert!((1..=5).contains(&retry_after_seconds)),
            other => panic!("a sign-in went through without its limit: {other:?}"),
        }
        limits
            .start_chat(address)
            .await
            .expect("startChat fails open");
        limits
            .send_message(address, chat)
            .await
            .expect("sendMessage fails open");
    }
    // The first failure is waited for once; the rest skip the store.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_refuses_sign_ins_and_lets_messages_through() {
    let mut settings = limit_settings();
    // Nothing listens on port 1.
    settings.redis_url = Some("redis://127.0.0.1:1".to_owned());
    let limits = RateLimits::connect(&settings).await.unwrap();
    assert_eq!(limits.store_name(), "redis");
    store_down(&limits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_refuses_sign_ins_and_lets_messages_through() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let limits = RateLimits::new(&limit_settings(), &db).unwrap();
    assert_eq!(limits.store_name(), "postgres");
    // Every connection of the limiter's pool is gone.
    db.close().await.unwrap();
    store_down(&limits).await;
}

/// The log lines of the current thread, for checking what is logged and how often.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

fn start_redis(port: u16) -> std::process::Child {
    let child = std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Redis did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A Redis of its own is stopped and started again: while it is down sign-ins are refused and
/// sends go through, the outage is logged once (not once per request), and so is its end.
/// (Current-thread runtime: every task logs to this thread's subscriber.)
#[tokio::test(flavor = "current_thread")]
async fn a_redis_outage_is_logged_once_and_its_end_too() {
    if redis_url().is_none() {
        return;
    }
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    // Other tests in this process may have met the limiter's log lines while no subscriber of
    // theirs wanted them, and tracing caches that per line: ask every line again, now that
    // this thread has one.
    tracing::callsite::rebuild_interest_cache();

    let port = free_port();
    let mut redis = start_redis(port);
    let mut settings = limit_settings();
    settings.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let limits = RateLimits::connect(&settings).await.unwrap();
    let address: IpAddr = "192.0.2.8".parse().unwrap();
    let chat = uuid::Uuid::new_v4();
    limits.login(address).await.expect("Redis is up");

    redis.kill().expect("stop Redis");
    redis.wait().ok();
    for _ in 0..10 {
        assert!(limits.login(address).await.is_err(), "login fails closed");
        limits
            .send_message(address, chat)
            .await
            .expect("sendMessage fails open");
    }
    assert_eq!(log.count("store is unreachable"), 1, "{}", log.text());

    let mut redis = start_redis(port);
    // The store is left alone for 5 s after a failure.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    limits.login(address).await.expect("Redis is back");
    limits.login(address).await.expect("Redis is back");
    assert_eq!(log.count("store answers again"), 1);
    assert_eq!(log.count("store is unreachable"), 1, "{}", log.text());
    redis.kill().ok();
    redis.wait().ok();
}

/// A busy visitor's sends through two instances that lease tokens ahead (a quota of 160 a
/// minute: leases of up to 20): together they allow at most the quota (plus what it earns back
/// while the test runs), and lose at most a lease's worth per instance to tokens that lapse.
async fn leases_keep_the_total(first: &RateLimits, second: &RateLimits) {
    const QUOTA: u32 = 160;
    let address: IpAddr = random_address().parse().unwrap();
    let chat = uuid::Uuid::new_v4();
    let started = Instant::now();
    let mut allowed = 0u32;
    for attempt in 0..2 * QUOTA {
        let limits = if attempt % 2 == 0 { first } else { second };
        match limits.send_message(address, chat).await {
            Ok(()) => allowed += 1,
            Err(api::error::Error::RateLimited { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    // One token every 375 ms comes back.
    let earned = u32::try_from(started.elapsed().as_millis() / 375).unwrap() + 1;
    assert!(
        allowed <= QUOTA + earned,
        "{allowed} allowed of {QUOTA} (+{earned})"
    );
    assert!(allowed >= QUOTA - 2 * 20, "{allowed} allowed of {QUOTA}");
    eprintln!("leases: {allowed} sends allowed of {QUOTA} a minute through two instances");
}

fn leasing_settings() -> Settings {
    let mut settings = limit_settings();
    settings.rate_send_per_min = 160;
    settings
}

/// A new database with the migrations applied, for limiters of its own: its URL, a connection
/// and its name (to drop afterwards).
async fn limits_database(server_url: &str) -> (String, sea_orm::DatabaseConnection, String) {
    let (url, name) = common::postgres_database(server_url).await;
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    use migration::MigratorTrait;
    migration::Migrator::up(&db, None).await.unwrap();
    (url, db, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_keep_the_total_across_two_instances() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let (database_url, db, name) = limits_database(&url).await;
    let mut settings = leasing_settings();
    settings.database_url = database_url;
    let first = RateLimits::connect(&settings).await.unwrap();
    let second = RateLimits::connect(&settings).await.unwrap();
    assert_eq!(first.store_name(), "postgres");
    leases_keep_the_total(&first, &second).await;
    db.close().await.ok();
    common::drop_database(&url, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_leases_keep_the_total_across_two_instances() {
    let Some(url) = redis_url() else {
        return;
    };
    let mut settings = leasing_settings();
    settings.redis_url = Some(url);
    let first = RateLimits::connect(&settings).await.unwrap();
    let second = RateLimits::connect(&settings).await.unwrap();
    assert_eq!(first.store_name(), "redis");
    leases_keep_the_total(&first, &second).await;
}

/// What a send's check (per chat and per address, together) costs, printed (not asserted: the
/// machine is shared): for keys seen for the first time, one round trip each; for one busy
/// visitor, whose tokens come in leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_of_a_shared_check() {
    const SENDS: u32 = 1000;
    let mut settings = limit_settings();
    settings.rate_send_per_min = 1_000_000;
    async fn time(limits: &RateLimits) -> String {
        let started = Instant::now();
        for _ in 0..SENDS {
            let address: IpAddr = random_address().parse().unwrap();
            limits
                .send_message(address, uuid::Uuid::new_v4())
                .await
                .unwrap();
        }
        let cold = started.elapsed().as_secs_f64() * 1e6 / f64::from(SENDS);
        let address: IpAddr = "192.0.2.9".parse().unwrap();
        let chat = uuid::Uuid::new_v4();
        let started = Instant::now();
        for _ in 0..SENDS {
            limits.send_message(address, chat).await.unwrap();
        }
        let busy = started.elapsed().as_secs_f64() * 1e6 / f64::from(SENDS);
        format!("{cold:.1} µs per send for new keys, {busy:.1} µs for a busy visitor")
    }
    let memory = RateLimits::in_memory(&settings);
    eprintln!("rate-limit check in memory: {}", time(&memory).await);
    if let Some(url) = common::postgres_url() {
        let (database_url, db, name) = limits_database(&url).await;
        settings.database_url = database_url;
        // As the server does it: on the limiter's own pool.
        let limits = RateLimits::connect(&settings).await.unwrap();
        eprintln!("rate-limit check on Postgres: {}", time(&limits).await);
        use sea_orm::ConnectionTrait;
        let started = Instant::now();
        for _ in 0..SENDS {
            db.execute_unprepared("SELECT 1").await.unwrap();
        }
        eprintln!(
            "for comparison, SELECT 1 on Postgres: {:.0} µs",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(SENDS)
        );
        db.close().await.ok();
        common::drop_database(&url, &name).await;
    }
    if let Some(url) = redis_url() {
        settings.redis_url = Some(url);
        let limits = RateLimits::connect(&settings).await.unwrap();
        eprintln!("rate-limit check on Redis: {}", time(&limits).await);
    }
}

// ---- two processes behind HAProxy -----------------------------------------------------------

/// Whether `command` (HAProxy, nginx) can be run; with `require` set to 1 its absence fails
/// the test.
fn available(command: &str, require: &str) -> bool {
    let found = std::process::Command::new(command)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            !std::env::var(require).is_ok_and(|v| v == "1"),
            "{require}=1 but `{command}` cannot be run (apt-get install {command})"
        );
        eprintln!("skipped: `{command}` is not installed");
    }
    found
}

/// A child process (a `chatdesk serve` or HAProxy) with its log file.
struct Process {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Process {
    /// Runs `command` with its output in `log`; waits until it answers `/readyz` on `port`.
    async fn start(command: &mut Command, port: u16, log: PathBuf, what: &str) -> Process {
        let file = std::fs::File::create(&log).expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{what} does not start: {error}"));
        let mut process = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        process.wait_until_up("/readyz").await;
        process
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_until_up(&mut self, path: &str) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}{path}", self.base)).send().await
                && response.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}: {}", self.base, self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not come up: {}",
                self.base,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and the process must exit cleanly (it drains in-flight requests first).
    async fn terminate(mut self) {
        let pid = self.child.id().expect("running") as libc::pid_t;
        // SAFETY: `kill` on our own child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the instance exits within 20 s of SIGTERM")
            .expect("wait");
        assert!(status.success(), "{status}: {}", self.log());
    }
}

const INSTANCE_LOGIN_PER_MIN: usize = 4;
const INSTANCE_START_PER_HOUR: usize = 5;

async fn start_instance(
    binary: &Path,
    dir: &Path,
    storage: &Path,
    database_url: &str,
    public_url: &str,
) -> Process {
    std::fs::create_dir_all(dir).expect("data folder");
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env("CHATDESK_BIND", format!("127.0.0.1:{port}"))
        // What must match between instances: the public URL (file links), the storage, the
        // JWT secret (tokens and file signatures).
        .env("CHATDESK_PUBLIC_URL", public_url)
        .env("CHATDESK_STORAGE", storage)
        .env("CHATDESK_JWT_SECRET", JWT_SECRET)
        .env("CHATDESK_TRUST_PROXY", "true")
        .env("CHATDESK_DATA_DIR", dir)
        .env("CHATDESK_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CHATDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "CHATDESK_RATE_START_PER_HOUR",
            INSTANCE_START_PER_HOUR.to_string(),
        )
        .env("CHATDESK_RATE_SEND_PER_MIN", "10000")
        .env(
            "CHATDESK_RATE_LOGIN_PER_MIN",
            INSTANCE_LOGIN_PER_MIN.to_string(),
        );
    Process::start(&mut command, port, dir.join("server.log"), "chatdesk").await
}

#[derive(Clone, Copy, Debug)]
enum Balancer {
    HAProxy,
    Nginx,
}

/// The balancer on `port` in front of `one` and `two`, with the configuration the README shows.
async fn start_balancer(
    balancer: Balancer,
    dir: &Path,
    port: u16,
    one: &str,
    two: &str,
) -> Process {
    let (one, two) = (
        one.trim_start_matches("http://"),
        two.trim_start_matches("http://"),
    );
    let mut command = match balancer {
        // tests/haproxy/chatdesk.cfg as it is, its addresses from the environment.
        Balancer::HAProxy => {
            let mut command = Command::new("haproxy");
            command
                .args([
                    "-db",
                    "-f",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/haproxy/chatdesk.cfg"),
                ])
                .env("CHATDESK_LISTEN", format!("127.0.0.1:{port}"))
                .env("CHATDESK_ONE", one)
                .env("CHATDESK_TWO", two);
            command
        }
        // tests/nginx/chatdesk.conf with the test's addresses, in a minimal nginx.conf.
        Balancer::Nginx => {
            let site = std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/nginx/chatdesk.conf"
            ))
            .expect("tests/nginx/chatdesk.conf");
            let site = site
                .replace("10.0.0.11:8080", one)
                .replace("10.0.0.12:8080", two)
                .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
            let prefix = dir.join("nginx");
            std::fs::create_dir_all(&prefix).expect("nginx folder");
            std::fs::write(prefix.join("chatdesk.conf"), site).expect("site");
            let p = prefix.display();
            let main = format!(
                "daemon off;\nuser root;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/body;\n\
                 proxy_temp_path {p}/proxy;\n  include {p}/chatdesk.conf;\n}}\n"
            );
            std::fs::write(prefix.join("nginx.conf"), main).expect("nginx.conf");
            let mut command = Command::new("nginx");
            command
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(prefix.join("nginx.conf"));
            command
        }
    };
    Process::start(&mut command, port, dir.join("balancer.log"), "the balancer").await
}

/// Requests an instance has answered on `route`, by its own /metrics (each process has its
/// own counters).
async fn served(instance: &str, route: &str) -> u64 {
    let text = reqwest::get(format!("{instance}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let label = format!("route=\"{route}\"");
    text.lines()
        .filter(|line| line.starts_with("http_requests_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Which of `instances` answered `request` (sent through the balancer), by their counters.
async fn answered_by<T>(
    instances: &[&str],
    route: &str,
    request: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let mut before = Vec::new();
    for instance in instances {
        before.push(served(instance, route).await);
    }
    let answer = request.await;
    let mut by = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        if served(instance, route).await > before[index] {
            by.push(index);
        }
    }
    assert_eq!(by.len(), 1, "answered by {by:?}");
    (answer, by[0])
}

const HISTORY: &str = "query($id: UUID!) { chat(id: $id) { messages(last: 100) { edges { node { id body sender clientMessageId attachments { name sizeBytes url thumbnailUrl } } } } } }";

async fn history(base: &str, token: &str, chat_id: &str) -> Vec<Value> {
    let response = post(base, None, HISTORY, json!({ "id": chat_id }), Some(token)).await;
    assert_ok(&response);
    response["data"]["chat"]["messages"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

/// sendMessage with files, as a browser's multipart request.
async fn upload(base: &str, token: &str, chat_id: &str, files: &[(&str, Vec<u8>, &str)]) -> Value {
    let files: Vec<FilePart> = files
        .iter()
        .map(|(name, bytes, content_type)| (*name, bytes.as_slice(), *content_type))
        .collect();
    upload_at(
        &reqwest::Client::new(),
        base,
        token,
        "mutation($chatId: UUID!, $body: String, $attachments: [Upload!]) { sendMessage(chatId: $chatId, body: $body, attachments: $attachments) { id attachments { name sizeBytes url thumbnailUrl } } }",
        json!({ "chatId": chat_id, "body": "files" }),
        &files,
    )
    .await
}

/// A send that is retried (same clientMessageId) until it is acknowledged, as the widget's
/// outbox does: the id of the stored message.
async fn send_until_acknowledged(base: &str, token: &str, chat_id: &str, key: &str) -> String {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": SEND, "variables": { "chatId": chat_id, "body": key, "key": key } }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = answer
            && let Ok(body) = response.json::<Value>().await
            && let Some(id) = body["data"]["sendMessage"]["id"].as_str()
        {
            return id.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{key} never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole path through HAProxy with tests/haproxy/chatdesk.cfg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_haproxy() {
    if available("haproxy", "CHATDESK_REQUIRE_HAPROXY") {
        two_instances_behind(Balancer::HAProxy).await;
    }
}

/// The same through nginx with tests/nginx/chatdesk.conf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_nginx() {
    if available("nginx", "CHATDESK_REQUIRE_NGINX") {
        two_instances_behind(Balancer::Nginx).await;
    }
}

/// The whole path through a real load balancer: two `chatdesk` processes on one Postgres
/// database and one storage folder, the balancer in front.
async fn two_instances_behind(balancer: Balancer) {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let Some(binary) = chatdesk_binary() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, name) = common::postgres_database(&server).await;
    let storage = dir.path().join("uploads");
    let lb_port = free_port();
    let public_url = format!("http://127.0.0.1:{lb_port}");
    // One after the other: the first runs the migrations.
    let one = start_instance(
        &binary,
        &dir.path().join("one"),
        &storage,
        &database_url,
        &public_url,
    )
    .await;
    let two = start_instance(
        &binary,
        &dir.path().join("two"),
        &storage,
        &database_url,
        &public_url,
    )
    .await;
    let balancer = start_balancer(balancer, dir.path(), lb_port, &one.base, &two.base).await;
    let lb = balancer.base.clone();
    let instances = [one.base.as_str(), two.base.as_str()];

    // ---- limits: the configured totals through the balancer, not twice them ---------------
    let mut by = [0usize; 2];
    let mut admin = String::new();
    for attempt in 0..INSTANCE_LOGIN_PER_MIN {
        let (response, index) = answered_by(
            &instances,
            "/graphql",
            post(&lb, None, LOGIN, login_vars(), None),
        )
        .await;
        assert_ok(&response);
        by[index] += 1;
        if attempt == 0 {
            admin = response["data"]["login"]["token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    assert_eq!(by, [2, 2], "round robin: requests alternate");
    assert_limited(&post(&lb, None, LOGIN, login_vars(), None).await, 20);
    assert_limited(&post(&lb, None, LOGIN, login_vars(), None).await, 20);
    // An X-Forwarded-For of the client's own making does not buy a new quota: the balancer
    // appends the real address and the instances take the last one.
    assert_limited(
        &post(&lb, Some("203.0.113.50"), LOGIN, login_vars(), None).await,
        20,
    );
    let mut chats = Vec::new();
    for _ in 0..INSTANCE_START_PER_HOUR {
        let response = post(&lb, None, START, json!({}), None).await;
        assert_ok(&response);
        let chat = &response["data"]["startChat"];
        chats.push((
            chat["chat"]["id"].as_str().unwrap().to_owned(),
            chat["chatToken"].as_str().unwrap().to_owned(),
        ));
    }
    assert_limited(&post(&lb, None, START, json!({}), None).await, 3600);
    assert_limited(
        &post(&lb, Some("203.0.113.51"), START, json!({}), None).await,
        3600,
    );

    // ---- a visitor's conversation, its requests alternating between the instances --------
    let (chat_id, visitor) = chats[0].clone();
    let mut by = [0usize; 2];
    for turn in 0..6 {
        for (who, token) in [("visitor", &visitor), ("admin", &admin)] {
            let (response, index) = answered_by(
                &instances,
                "/graphql",
                post(
                    &lb,
                    None,
                    SEND,
                    json!({ "chatId": chat_id, "body": format!("{who} {turn}") }),
                    Some(token),
                ),
            )
            .await;
            assert_ok(&response);
            by[index] += 1;
        }
    }
    assert_eq!(by, [6, 6], "round robin: requests alternate");
    let png = common::samples::png(64, 48);
    let pdf = common::samples::pdf();
    let mut uploaded = Vec::new();
    for round in 0..2 {
        let (response, index) = answered_by(
            &instances,
            "/graphql",
            upload(
                &lb,
                &visitor,
                &chat_id,
                &[
                    ("photo.png", png.clone(), "image/png"),
                    ("terms.pdf", pdf.clone(), "application/pdf"),
                ],
            ),
        )
        .await;
        assert_ok(&response);
        eprintln!("upload {round} stored by instance {index}");
        uploaded.push(index);
        let attachments = response["data"]["sendMessage"]["attachments"]
            .as_array()
            .expect("attachments")
            .clone();
        assert_eq!(attachments.len(), 2, "{response}");
        // Signed links made by the instance that stored the files work through the
        // balancer and on each instance, whichever stored them.
        let pdf_url = attachments[1]["url"].as_str().expect("url");
        let path = pdf_url
            .strip_prefix(&public_url)
            .unwrap_or_else(|| panic!("{pdf_url} is not under {public_url}"));
        // Twice through the balancer (so once through each instance), and once on each.
        for base in [lb.as_str(), lb.as_str(), instances[0], instances[1]] {
            let response = reqwest::get(format!("{base}{path}")).await.expect("GET");
            assert_eq!(response.status(), 200, "{base}{path}");
            assert_eq!(response.bytes().await.unwrap().as_ref(), pdf.as_slice());
        }
        let thumbnail = attachments[0]["thumbnailUrl"].as_str().expect("thumbnail");
        let path = thumbnail.strip_prefix(&public_url).unwrap();
        for base in [instances[0], instances[1]] {
            let response = reqwest::get(format!("{base}{path}")).await.expect("GET");
            assert_eq!(response.status(), 200, "{base}{path}");
        }
    }
    assert_ne!(uploaded[0], uploaded[1], "uploads went to both instances");
    // The admin reads it all back, through either instance.
    for _ in 0..2 {
        let messages = history(&lb, &admin, &chat_id).await;
        assert_eq!(messages.len(), 14);
        let files: Vec<&Value> = messages
            .iter()
            .flat_map(|m| m["attachments"].as_array().into_iter().flatten())
            .collect();
        assert_eq!(files.len(), 4);
        for file in files {
            let url = file["url"].as_str().unwrap();
            let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            assert_eq!(bytes.len() as u64, file["sizeBytes"].as_u64().unwrap());
        }
    }

    // ---- a subscription on one instance hears messages sent through the other --------------
    let (mut socket, holder) = answered_by(
        &instances,
        "/graphql/ws",
        subscribe(
            lb_port,
            Some(&visitor),
            CHAT_EVENTS,
            json!({ "chatId": chat_id }),
        ),
    )
    .await;
    let mut by = [0usize; 2];
    for turn in 0..4 {
        let body = format!("heard {turn}");
        let (response, index) = answered_by(
            &instances,
            "/graphql",
            post(
                &lb,
                None,
                SEND,
                json!({ "chatId": chat_id, "body": body }),
                Some(&admin),
            ),
        )
        .await;
        assert_ok(&response);
        by[index] += 1;
        let event = socket.expect_kind("chatEvents", "MESSAGE_ADDED").await;
        assert_eq!(event["message"]["body"], body.as_str());
    }
    assert_eq!(by, [2, 2]);

    // ---- `chatdesk admin passwd` ends the admin's sockets on both instances ---------------
    let mut admin_sockets = Vec::new();
    let mut on = [false; 2];
    for _ in 0..12 {
        if on == [true, true] {
            break;
        }
        let (socket, index) = answered_by(
            &instances,
            "/graphql/ws",
            subscribe(lb_port, Some(&admin), INBOX_EVENTS, json!({})),
        )
        .await;
        if !on[index] {
            on[index] = true;
            admin_sockets.push(socket);
        }
    }
    assert_eq!(
        on,
        [true, true],
        "no admin socket landed on one of the instances"
    );
    let passwd = std::process::Command::new(&binary)
        .args(["admin", "passwd", ADMIN_EMAIL, "--password-stdin"])
        .env("DATABASE_URL", &database_url)
        .env("CHATDESK_JWT_SECRET", JWT_SECRET)
        .env("CHATDESK_DATA_DIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"a changed passphrase for tests\n")?;
            }
            child.wait_with_output()
        })
        .expect("chatdesk admin passwd runs");
    assert!(passwd.status.success(), "{passwd:?}");
    let changed = Instant::now();
    for mut socket in admin_sockets {
        assert!(
            socket.closed_within(Duration::from_secs(10)).await,
            "an admin socket outlived the password change"
        );
    }
    eprintln!("both admin sockets closed within {:?}", changed.elapsed());
    for instance in instances {
        let refused = post(instance, None, "{ me { email } }", json!({}), Some(&admin)).await;
        assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    }
    // A new session for the rest (sign-ins through the balancer are spent for this minute).
    let admin = {
        let db = sea_orm::Database::connect(&database_url)
            .await
            .expect("database");
        let row = api::service::admins::list(&db)
            .await
            .map_err(|error| error.message())
            .expect("admins")
            .remove(0);
        api::auth::jwt::JwtKeys::new(JWT_SECRET.as_bytes())
            .issue(row.id, row.password_changed_at, chrono::Utc::now())
            .map_err(|error| error.message())
            .expect("a token")
            .0
    };

    // ---- the socket's instance stops (SIGTERM) mid-conversation ------------------------------
    let (stopping, staying) = if holder == 0 { (one, two) } else { (two, one) };
    let staying_base = staying.base.clone();
    let (chat_id, visitor) = chats[1].clone();
    let sender = {
        let (lb, visitor, chat_id) = (lb.clone(), visitor.clone(), chat_id.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..40 {
                let key = format!("during-stop-{n}");
                let id = send_until_acknowledged(&lb, &visitor, &chat_id, &key).await;
                acknowledged.push((key, id));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stopping.terminate().await;
    assert!(
        socket.closed_within(Duration::from_secs(10)).await,
        "the stopped instance's socket stays open"
    );
    // The widget reconnects: through the balancer, to the instance still up.
    let (_, chat_token) = chats[0].clone();
    let mut socket = subscribe(
        lb_port,
        Some(&chat_token),
        CHAT_EVENTS,
        json!({ "chatId": chats[0].0 }),
    )
    .await;
    let acknowledged = sender.await.expect("the sender");
    let stored = history(&lb, &visitor, &chat_id).await;
    for (key, id) in &acknowledged {
        let copies: Vec<&Value> = stored
            .iter()
            .filter(|message| message["clientMessageId"] == key.as_str())
            .collect();
        assert_eq!(copies.len(), 1, "{key}: {copies:?}");
        assert_eq!(copies[0]["id"], id.as_str(), "{key}");
    }
    assert_eq!(stored.len(), 40);
    let response = post(
        &lb,
        None,
        SEND,
        json!({ "chatId": chats[0].0, "body": "after the restart" }),
        Some(&admin),
    )
    .await;
    assert_ok(&response);
    let event = socket.expect_kind("chatEvents", "MESSAGE_ADDED").await;
    assert_eq!(event["message"]["body"], "after the restart");
    assert!(served(&staying_base, "/graphql/ws").await >= 1);

    drop(balancer);
    drop(staying);
    common::drop_database(&server, &name).await;
}

/// The README shows the configurations this file tests, character for character.
#[test]
fn the_readme_shows_the_tested_configurations() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    for (language, file) in [
        ("haproxy", "tests/haproxy/chatdesk.cfg"),
        ("nginx", "tests/nginx/chatdesk.conf"),
    ] {
        let config = std::fs::read_to_string(format!("{root}/{file}")).expect("the config");
        assert!(
            readme.contains(&format!("```{language}\n{config}```")),
            "README.md's {language} block differs from {file}"
        );
    }
}
