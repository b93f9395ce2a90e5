//! Issue 14: webhooks on the Standard Webhooks convention, received by a real receiver that
//! verifies every delivery with npm's `standardwebhooks` (the reference library), run by
//! `tests/webhook-receiver/receiver.js`.
//!
//! Without node and that package installed (`npm ci --prefix tests/webhook-receiver`) these
//! tests say so and skip, unless `CHATDESK_REQUIRE_NODE_WEBHOOKS=1` (as `.ci/run` sets).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::Settings;
use common::{Backend, TestApp, error_code, expect_data, free_port, graphql_at, spawn_app_with};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---- the receiver ------------------------------------------------------------------------

fn receiver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-receiver")
}

fn node_available() -> bool {
    let installed = receiver_dir()
        .join("node_modules/standardwebhooks/package.json")
        .exists();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed && node {
        return true;
    }
    if std::env::var("CHATDESK_REQUIRE_NODE_WEBHOOKS").as_deref() == Ok("1") {
        panic!(
            "node or the standardwebhooks package is missing (npm ci --prefix tests/webhook-receiver)"
        );
    }
    eprintln!(
        "skipping: node or npm's standardwebhooks is missing (npm ci --prefix tests/webhook-receiver)"
    );
    false
}

/// A node process listening on loopback; what it verified is in `deliveries()`.
struct Receiver {
    child: Option<Child>,
    host: String,
    port: u16,
    dir: TempDir,
}

impl Receiver {
    async fn start(host: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), "{}").unwrap();
        let mut receiver = Self {
            child: None,
            host: host.to_owned(),
            port,
            dir,
        };
        receiver.listen().await;
        receiver
    }

    async fn listen(&mut self) {
        let mut child = Command::new("node")
            .arg(receiver_dir().join("receiver.js"))
            .args(["--host", &self.host, "--port", &self.port.to_string()])
            .arg("--secrets")
            .arg(self.dir.path().join("secrets.json"))
            .arg("--out")
            .arg(self.dir.path().join("deliveries.jsonl"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        self.port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, mode: &str, name: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}/{mode}/{name}", self.port)
    }

    fn set_secrets(&self, name: &str, secrets: &[&str]) {
        let path = self.dir.path().join("secrets.json");
        let mut all: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        all[name] = json!(secrets);
        std::fs::write(&path, all.to_string()).unwrap();
    }

    fn deliveries(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("deliveries.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn for_name(&self, name: &str) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(|delivery| delivery["name"] == name)
            .collect()
    }

    /// Waits until `name` got at least `count` requests.
    async fn wait_for(&self, name: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.for_name(name);
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- the server --------------------------------------------------------------------------

/// Loopback receivers, plain HTTP, quick retries.
fn for_tests(settings: &mut Settings) {
    settings.webhook_allow_http = true;
    settings.webhook_allow_private = true;
    settings.webhook_retry_schedule = vec![Duration::from_secs(1); 3];
    settings.outbox_poll = Duration::from_millis(100);
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, for_tests).await
}

const WEBHOOK_FIELDS: &str = "id url events enabled disabledReason description";

/// Registers an endpoint; returns its id and secret.
async fn create(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> (String, String) {
    let data = app
        .data(
            &format!(
                "mutation($i: CreateWebhookInput!) {{ createWebhook(input: $i) {{ webhook {{ {WEBHOOK_FIELDS} }} secret }} }}"
            ),
            json!({ "i": { "url": url, "events": events, "description": "test receiver" } }),
            Some(admin),
        )
        .await;
    let created = &data["createWebhook"];
    assert_eq!(created["webhook"]["enabled"], true);
    assert_eq!(created["webhook"]["url"], url);
    (
        created["webhook"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn log(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    let data = app
        .data(
            "{ webhooks { id enabled disabledReason failingSince deliveries { id messageId eventType attempt success statusCode durationMs error responseBody payload } } }",
            json!({}),
            Some(admin),
        )
        .await;
    data["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|webhook| webhook["id"] == id)
        .map(|webhook| webhook["deliveries"].as_array().unwrap().clone())
        .unwrap_or_default()
}

async fn wait_for_log(app: &TestApp, admin: &str, id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entries = log(app, admin, id).await;
        if entries.len() >= count || Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const ALL_EVENTS: [&str; 5] = [
    "chat.started",
    "message.created",
    "chat.status_changed",
    "chat.read",
    "visitor.updated",
];

// ---- the tests ---------------------------------------------------------------------------

/// Every event type reaches the receiver, and the reference library verifies each; the
/// payloads carry what the README says; a rotated secret signs with old and new.
async fn every_event_type_is_delivered_signed(backend: Backend) {
    if !node_available() {
        return;
    }
    let receiver = Receiver::start("127.0.0.1", 0).await;
    let app = app(backend).await;
    let admin = app.admin_token().await;

    // Admins only.
    let (chat_for_auth, visitor_for_auth) = app.start_chat(None).await;
    let _ = chat_for_auth;
    let denied = app
        .graphql("{ webhooks { id } }", json!({}), Some(&visitor_for_auth))
        .await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"), "{denied}");
    let denied = app.graphql("{ webhooks { id } }", json!({}), None).await;
    assert_eq!(error_code(&denied), Some("UNAUTHENTICATED"), "{denied}");
    let create_as_visitor = app
        .graphql(
            "mutation { createWebhook(input: {url: \"http://127.0.0.1:1/x\", events: [\"chat.started\"]}) { secret } }",
            json!({}),
            Some(&visitor_for_auth),
        )
        .await;
    assert_eq!(
        error_code(&create_as_visitor),
        Some("FORBIDDEN"),
        "{create_as_visitor}"
    );
    assert!(create_as_visitor["data"].is_null(), "{create_as_visitor}");
    let bad = app
        .graphql(
            "mutation { createWebhook(input: {url: \"http://127.0.0.1:1/x\", events: [\"message.deleted\"]}) { secret } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");

    let mut events = ALL_EVENTS.to_vec();
    events.push("chat.deleted");
    let (id, secret) = create(&app, &admin, &receiver.url("ok", "all"), &events).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.set_secrets("all", &[&secret]);

    // chat.started, visitor.updated, message.created (with a file), chat.read,
    // chat.status_changed, and the test event.
    let (chat_id, visitor) = app.start_chat(Some("Ada")).await;
    app.data(
        "mutation($c: UUID!) { updateVisitor(chatId: $c, input: {email: \"ada@example.com\"}) { id } }",
        json!({ "c": chat_id }),
        Some(&visitor),
    )
    .await;
    let png = common::samples::png(4, 3);
    app.upload_with_body(
        &visitor,
        &chat_id,
        Some("Hello with a picture"),
        &[("pixel.png", &png, "image/png")],
        None,
    )
    .await;
    app.data(
        "mutation($c: UUID!) { markChatRead(chatId: $c) { id } }",
        json!({ "c": chat_id }),
        Some(&admin),
    )
    .await;
    app.data(
        "mutation($c: UUID!) { setChatStatus(chatId: $c, status: CLOSED) { id } }",
        json!({ "c": chat_id }),
        Some(&admin),
    )
    .await;
    app.data(
        "mutation($w: UUID!) { sendTestWebhook(id: $w) }",
        json!({ "w": id }),
        Some(&admin),
    )
    .await;

    let got = receiver.wait_for("all", 6, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 6, "{got:#?}");
    for delivery in &got {
        assert_eq!(delivery["verified"], true, "{delivery:#}");
        assert!(delivery["body"]["timestamp"].is_string());
    }
    let by_type: HashMap<&str, &Value> = got
        .iter()
        .map(|delivery| (delivery["type"].as_str().unwrap(), &delivery["body"]))
        .collect();
    let mut types: Vec<&str> = by_type.keys().copied().collect();
    types.sort();
    assert_eq!(
        types,
        [
            "chat.read",
            "chat.started",
            "chat.status_changed",
            "message.created",
            "visitor.updated",
            "webhook.test"
        ]
    );
    assert_eq!(
        by_type["chat.started"]["data"]["chat"]["visitor"]["name"],
        "Ada"
    );
    assert_eq!(
        by_type["visitor.updated"]["data"]["visitor"]["email"],
        "ada@example.com"
    );
    assert_eq!(by_type["chat.read"]["data"]["by"], "admin");
    assert_eq!(by_type["chat.status_changed"]["data"]["to"], "closed");
    let message = &by_type["message.created"]["data"]["message"];
    assert_eq!(message["text"], "Hello with a picture");
    assert_eq!(message["sender"]["type"], "visitor");
    let file = &message["attachments"][0];
    assert_eq!(file["name"], "pixel.png");
    assert_eq!(file["type"], "image/png");
    // The signed link works for someone who only has the webhook (images are stored with
    // their metadata stripped, so the size is the stored file's).
    let link = app.local_url(file["url"].as_str().unwrap());
    let download = reqwest::get(&link).await.unwrap();
    assert_eq!(download.status(), 200, "{link}");
    let bytes = download.bytes().await.unwrap();
    assert_eq!(file["size"], bytes.len());
    assert!(bytes.starts_with(b"\x89PNG"));

    // The log shows each, as delivered.
    let entries = wait_for_log(&app, &admin, &id, 6).await;
    assert_eq!(entries.len(), 6);
    assert!(
        entries
            .iter()
            .all(|entry| entry["success"] == true && entry["statusCode"] == 200)
    );
    assert!(
        entries[0]["responseBody"]
            .as_str()
            .unwrap()
            .starts_with("ok all")
    );

    // Rotation: for 24 h both secrets sign, so a receiver still on the old one verifies, and
    // one on the new one too.
    let rotated = app
        .data(
            "mutation($w: UUID!) { rotateWebhookSecret(id: $w) { secret webhook { id } } }",
            json!({ "w": id }),
            Some(&admin),
        )
        .await;
    let new_secret = rotated["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    app.send(&visitor, &chat_id, "after the rotation").await;
    let got = receiver.wait_for("all", 7, Duration::from_secs(20)).await;
    assert_eq!(got[6]["verified"], true, "old secret: {:#}", got[6]);
    assert_eq!(got[6]["signatures"], 2);
    receiver.set_secrets("all", &[&new_secret]);
    app.send(&visitor, &chat_id, "new secret only").await;
    let got = receiver.wait_for("all", 8, Duration::from_secs(20)).await;
    assert_eq!(got[7]["verified"], true, "new secret: {:#}", got[7]);
    // chat.deleted: the erasure is announced, naming the chat and who erased it, nothing more.
    app.data(
        "mutation($c: UUID!) { deleteChat(id: $c) }",
        json!({ "c": chat_id }),
        Some(&admin),
    )
    .await;
    // The visitor's message after the close reopened the chat: one more status change before.
    let got = receiver.wait_for("all", 10, Duration::from_secs(20)).await;
    // Deliveries of one chat may arrive in any order (receivers sort by timestamp).
    let deleted = got
        .iter()
        .find(|delivery| delivery["type"] == "chat.deleted")
        .unwrap_or_else(|| panic!("no chat.deleted among {got:#?}"));
    assert_eq!(deleted["verified"], true, "{deleted:#}");
    assert_eq!(deleted["body"]["data"]["chatId"], chat_id.as_str());
    assert!(
        deleted["body"]["data"]["actor"]
            .as_str()
            .is_some_and(|actor| actor.starts_with("admin:")),
        "{deleted:#}"
    );
    assert!(deleted["body"]["data"].get("visitor").is_none());
    // Nothing that failed verification, ever.
    assert!(receiver.deliveries().iter().all(|d| d["verified"] == true));
}

/// 500 then 200: delivered again under the same webhook-id, both attempts in the log; a
/// redelivery sends it once more; a redirect is not followed; an endpoint failing past
/// `webhook_disable_after` is disabled with a reason.
async fn failures_are_retried_logged_and_redelivered(backend: Backend) {
    if !node_available() {
        return;
    }
    let receiver = Receiver::start("127.0.0.1", 0).await;
    let app = spawn_app_with(backend, |settings| {
        for_tests(settings);
        settings.webhook_disable_after = Duration::from_secs(1);
    })
    .await;
    let admin = app.admin_token().await;
    let (flaky, flaky_secret) = create(
        &app,
        &admin,
        &receiver.url("fail-once", "flaky"),
        &["message.created"],
    )
    .await;
    receiver.set_secrets("flaky", &[&flaky_secret]);
    let (redirect, redirect_secret) = create(
        &app,
        &admin,
        &receiver.url("redirect", "redirect"),
        &["message.created"],
    )
    .await;
    receiver.set_secrets("redirect", &[&redirect_secret]);
    receiver.set_secrets("redirected", &[&redirect_secret]);
    let closed_port = free_port();
    let (dead, _) = create(
        &app,
        &admin,
        &format!("http://127.0.0.1:{closed_port}/ok/dead"),
        &["message.created"],
    )
    .await;

    let (chat_id, visitor) = app.start_chat(None).await;
    app.send(&visitor, &chat_id, "retry me").await;

    let got = receiver.wait_for("flaky", 2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0]["answered"], 500);
    assert_eq!(got[1]["answered"], 200);
    assert_eq!(
        got[0]["id"], got[1]["id"],
        "webhook-id is stable across retries"
    );
    assert!(got.iter().all(|d| d["verified"] == true));
    let entries = wait_for_log(&app, &admin, &flaky, 2).await;
    assert_eq!(entries.len(), 2, "{entries:#?}");
    // Newest first.
    assert_eq!(entries[1]["attempt"], 1);
    assert_eq!(entries[1]["success"], false);
    assert_eq!(entries[1]["statusCode"], 500);
    assert!(
        entries[1]["responseBody"]
            .as_str()
            .unwrap()
            .contains("failing on purpose")
    );
    assert_eq!(entries[0]["attempt"], 2);
    assert_eq!(entries[0]["success"], true);
    assert_eq!(entries[0]["eventType"], "message.created");

    // Redeliver the failed attempt's event: once more, same id.
    app.data(
        "mutation($d: UUID!) { redeliverWebhook(deliveryId: $d) }",
        json!({ "d": entries[1]["id"] }),
        Some(&admin),
    )
    .await;
    let got = receiver.wait_for("flaky", 3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2]["id"], got[0]["id"]);
    assert_eq!(got[2]["verified"], true);

    // The redirect was answered, never followed (retries included).
    let entries = wait_for_log(&app, &admin, &redirect, 4).await;
    assert!(entries.len() >= 2, "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e["statusCode"] == 302 && e["success"] == false)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.for_name("redirected").is_empty(),
        "a redirect was followed"
    );

    // Nobody listens: failing, then disabled with the reason shown.
    let deadline = Instant::now() + Duration::from_secs(20);
    let disabled = loop {
        let data = app
            .data(
                "{ webhooks { id enabled disabledReason } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let webhook = data["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == dead)
            .cloned()
            .unwrap();
        if webhook["enabled"] == false || Instant::now() > deadline {
            break webhook;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert!(
        disabled["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{disabled}"
    );
    let entries = log(&app, &admin, &dead).await;
    assert!(
        entries
            .iter()
            .all(|e| e["success"] == false && e["statusCode"].is_null())
    );
    // Enabling it again clears the reason.
    let data = app
        .data(
            "mutation($w: UUID!) { updateWebhook(id: $w, input: {enabled: true}) { enabled disabledReason } }",
            json!({ "w": dead }),
            Some(&admin),
        )
        .await;
    assert_eq!(data["updateWebhook"]["enabled"], true);
    assert!(data["updateWebhook"]["disabledReason"].is_null());
}

/// The receiver is down while Chatdesk restarts: the event waits in the outbox and arrives
/// after both are back.
async fn a_receiver_down_across_a_restart_gets_the_event_after(backend: Backend) {
    if !node_available() {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (database_url, postgres) = common::test_database(&backend, dir.path()).await;
    let settings = |dir: &TempDir| {
        let mut settings = common::test_settings(dir, &database_url);
        for_tests(&mut settings);
        // Long enough that the retry is pending when the first instance stops.
        settings.webhook_retry_schedule = vec![Duration::from_secs(3); 3];
        settings
    };
    let first = api::Application::build(settings(&dir)).await.unwrap();
    let address = format!("http://127.0.0.1:{}", first.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let call = |query: &'static str, variables: Value, token: Option<String>| {
        let client = client.clone();
        let address = address.clone();
        async move {
            expect_data(graphql_at(&client, &address, query, variables, token.as_deref()).await)
        }
    };
    let login = call(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": common::ADMIN_EMAIL, "p": common::ADMIN_PASSWORD }),
        None,
    )
    .await;
    let admin = login["login"]["token"].as_str().unwrap().to_owned();
    let url = format!("http://127.0.0.1:{port}/ok/later");
    let created = call(
        "mutation($u: String!) { createWebhook(input: {url: $u, events: [\"chat.started\"]}) { secret } }",
        json!({ "u": url }),
        Some(admin.clone()),
    )
    .await;
    let secret = created["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "mutation { startChat(input: {visitorName: \"Later\"}) { chatToken } }",
        json!({}),
        None,
    )
    .await;
    // The first attempt fails (nothing listens), then the instance stops.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    let receiver = Receiver::start("127.0.0.1", port).await;
    receiver.set_secrets("later", &[&secret]);
    let dir2 = tempfile::tempdir().unwrap();
    let second = api::Application::build(settings(&dir2)).await.unwrap();
    let (stop_second, second_stopped) = tokio::sync::oneshot::channel::<()>();
    let second_handle = tokio::spawn(second.run_until(async move {
        let _ = second_stopped.await;
    }));
    let got = receiver.wait_for("later", 1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["type"], "chat.started");
    assert_eq!(got[0]["verified"], true);
    assert_eq!(got[0]["body"]["data"]["chat"]["visitor"]["name"], "Later");
    let _ = stop_second.send(());
    let _ = second_handle.await;
    if let Some((server, name)) = postgres {
        common::drop_database(&server, &name).await;
    }
}

/// Two instances on one database: every event once. Prints throughput and the delay from
/// commit to the receiver (not asserted).
async fn two_instances_deliver_each_event_once(backend: Backend) {
    if !node_available() {
        return;
    }
    let receiver = Receiver::start("127.0.0.1", 0).await;
    let app = app(backend.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(&dir, &app.database_url);
    for_tests(&mut settings);
    let other = api::Application::build(settings).await.unwrap();
    let other_address = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until_stopped());
    let admin = app.admin_token().await;
    let (_, secret) = create(
        &app,
        &admin,
        &receiver.url("ok", "both"),
        &["message.created"],
    )
    .await;
    receiver.set_secrets("both", &[&secret]);
    // The other instance learns of the endpoint within its view's refresh.
    tokio::time::sleep(api::webhooks::VIEW_TTL + Duration::from_millis(500)).await;

    let (chat_id, visitor) = app.start_chat(None).await;
    let count = 200;
    let started = Instant::now();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut committed = HashMap::new();
    const SEND: &str =
        "mutation($c: UUID!, $b: String) { sendMessage(chatId: $c, body: $b) { id } }";
    let sends = (0..count).map(|n| {
        let address = if n % 2 == 0 {
            app.address.clone()
        } else {
            other_address.clone()
        };
        let (client, visitor, chat_id) = (app.client.clone(), visitor.clone(), chat_id.clone());
        async move {
            let variables = json!({ "c": chat_id, "b": format!("message {n}") });
            expect_data(graphql_at(&client, &address, SEND, variables, Some(&visitor)).await);
            (
                format!("message {n}"),
                epoch + started.elapsed().as_secs_f64(),
            )
        }
    });
    // Eight at a time, as a few busy visitors and admins would.
    use futures_util::StreamExt;
    let results: Vec<(String, f64)> = futures_util::stream::iter(sends)
        .buffer_unordered(8)
        .collect()
        .await;
    committed.extend(results);
    let got = receiver
        .wait_for("both", count, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = receiver.for_name("both");
    assert_eq!(got_after.len(), got.len(), "late duplicates");
    assert_eq!(got.len(), count, "each event once");
    let ids: HashSet<&str> = got.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), count, "no event twice");
    assert!(got.iter().all(|d| d["verified"] == true));

    let mut delays: Vec<f64> = got
        .iter()
        .map(|d| {
            let text = d["body"]["data"]["message"]["text"].as_str().unwrap();
            d["received_at"].as_f64().unwrap() - committed[text]
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let p = |q: f64| delays[((delays.len() as f64 - 1.0) * q).round() as usize];
    let last = got
        .iter()
        .map(|d| d["received_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    eprintln!(
        "webhooks ({backend:?}): {count} events through 2 instances; commit to receipt p50 {:.0} ms, p99 {:.0} ms; {:.0} events/s end to end",
        p(0.5) * 1000.0,
        p(0.99) * 1000.0,
        count as f64 / (last - epoch)
    );

    // A backlog written in one transaction (as after an outage), drained by both instances:
    // the delivery throughput itself.
    use sea_orm::TransactionTrait;
    let backlog = 500;
    let txn = app.state.db.begin().await.unwrap();
    for n in 0..backlog {
        app.state
            .hooks
            .emit(
                &txn,
                api::webhooks::EventType::MessageCreated,
                None,
                || json!({ "backlog": n }),
            )
            .await
            .unwrap();
    }
    let committed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    txn.commit().await.unwrap();
    app.state.hooks.committed();
    let got = receiver
        .wait_for("both", count + backlog, Duration::from_secs(120))
        .await;
    assert_eq!(got.len(), count + backlog);
    let ids: HashSet<&str> = got.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), count + backlog, "no event twice");
    let last = got
        .iter()
        .map(|d| d["received_at"].as_f64().unwrap())
        .fold(0.0, f64::max);
    eprintln!(
        "webhooks ({backend:?}): a backlog of {backlog} events delivered by 2 instances in {:.1} s: {:.0} deliveries/s",
        last - committed_at,
        backlog as f64 / (last - committed_at)
    );
}

/// A receiver that takes 30 s to answer does not hold up another endpoint.
async fn a_slow_receiver_does_not_hold_up_another(backend: Backend) {
    if !node_available() {
        return;
    }
    let receiver = Receiver::start("127.0.0.1", 0).await;
    let app = app(backend).await;
    let admin = app.admin_token().await;
    let (_, slow_secret) = create(
        &app,
        &admin,
        &receiver.url("slow", "slow"),
        &["message.created"],
    )
    .await;
    receiver.set_secrets("slow", &[&slow_secret]);
    let (_, fast_secret) = create(
        &app,
        &admin,
        &receiver.url("ok", "fast"),
        &["message.created"],
    )
    .await;
    receiver.set_secrets("fast", &[&fast_secret]);
    let (chat_id, visitor) = app.start_chat(None).await;
    let started = Instant::now();
    for n in 0..10 {
        app.send(&visitor, &chat_id, &format!("message {n}")).await;
    }
    let fast = receiver.wait_for("fast", 10, Duration::from_secs(8)).await;
    assert_eq!(
        fast.len(),
        10,
        "the fast endpoint got {} of 10 in {:?}",
        fast.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(fast.iter().all(|d| d["verified"] == true));
    // The slow one got them too, and is still answering.
    let slow = receiver.wait_for("slow", 10, Duration::from_secs(5)).await;
    assert_eq!(slow.len(), 10);
}

/// With `CHATDESK_WEBHOOK_ALLOW_PRIVATE` off: loopback literals are refused at creation; a name
/// that resolves to loopback is refused at connect time, after DNS, and logged; real
/// receivers on 127.0.0.1 and [::1] get nothing.
async fn private_addresses_are_refused(backend: Backend) {
    if !node_available() {
        return;
    }
    let v4 = Receiver::start("127.0.0.1", 0).await;
    let v6_available = std::net::TcpListener::bind("[::1]:0").is_ok();
    let v6 = if v6_available {
        Some(Receiver::start("::1", 0).await)
    } else {
        eprintln!("no IPv6 loopback here: the [::1] receiver is left out");
        None
    };
    let app = spawn_app_with(backend, |settings| {
        for_tests(settings);
        settings.webhook_allow_private = false;
    })
    .await;
    let admin = app.admin_token().await;
    let mut literals = vec![
        v4.url("ok", "v4"),
        "http://[::ffff:127.0.0.1]:9/ok/mapped".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
    ];
    if let Some(v6) = &v6 {
        literals.push(v6.url("ok", "v6"));
    } else {
        literals.push("http://[::1]:9/ok/v6".to_owned());
    }
    for url in &literals {
        let refused = app
            .graphql(
                "mutation($u: String!) { createWebhook(input: {url: $u, events: [\"chat.started\"]}) { secret } }",
                json!({ "u": url }),
                Some(&admin),
            )
            .await;
        assert_eq!(
            error_code(&refused),
            Some("BAD_USER_INPUT"),
            "{url}: {refused}"
        );
    }
    // A name is taken (it may resolve elsewhere later), but it is checked after DNS.
    let (by_name, secret) = create(
        &app,
        &admin,
        &format!("http://localhost:{}/ok/byname", v4.port),
        &["chat.started"],
    )
    .await;
    v4.set_secrets("byname", &[&secret]);
    app.start_chat(None).await;
    let entries = wait_for_log(&app, &admin, &by_name, 1).await;
    assert!(!entries.is_empty(), "the attempt is logged");
    assert_eq!(entries[0]["success"], false);
    assert!(entries[0]["statusCode"].is_null());
    assert!(
        entries[0]["error"].as_str().unwrap().contains("refused"),
        "{:#}",
        entries[0]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(v4.deliveries().is_empty(), "{:#?}", v4.deliveries());
    if let Some(v6) = &v6 {
        assert!(v6.deliveries().is_empty(), "{:#?}", v6.deliveries());
    }
}

/// The admin page: add an endpoint (the secret is shown once), send a test, see it in the log,
/// redeliver it; the receiver verifies both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_an_endpoint_in_the_admin_page() {
    use common::browser::admin::{send_sign_in, t};
    use common::browser::{WAIT, browser_and_app_with, screenshot_dir};
    if !node_available() {
        return;
    }
    let receiver = Receiver::start("127.0.0.1", 0).await;
    let Some((app, browser)) = browser_and_app_with(for_tests).await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("admin/integrations");

    send_sign_in(
        &page,
        &app,
        "/admin666/#integrations",
        common::ADMIN_PASSWORD,
    )
    .await;
    page.wait_for("!document.getElementById('app').hidden", WAIT)
        .await;
    page.click(&t("nav-integrations")).await;
    page.wait_for(&format!("{} !== null", t("webhook-url")), WAIT)
        .await;
    page.click(&t("webhook-url")).await;
    page.type_text(&receiver.url("ok", "page")).await;
    page.click(&t("webhook-create-submit")).await;
    page.wait_for(&format!("{} !== null", t("webhook-secret")), WAIT)
        .await;
    let secret = page
        .eval(&format!("{}.textContent", t("webhook-secret")))
        .await;
    let secret = secret.as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.set_secrets("page", &[&secret]);
    page.screenshot(&shots.join("1-created.png")).await;

    page.click(&t("webhook-test")).await;
    let got = receiver.wait_for("page", 1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "webhook.test");
    assert_eq!(got[0]["verified"], true);
    page.wait_for(
        &format!(
            "{} !== null && {}.textContent.includes('200')",
            t("webhook-delivery"),
            t("webhook-delivery")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("2-log.png")).await;
    page.click(&t("webhook-redeliver")).await;
    let got = receiver.wait_for("page", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["id"], got[0]["id"]);
    assert_eq!(got[1]["verified"], true);
    // Back to the chats.
    page.click(&t("nav-chats")).await;
    page.wait_for(
        "document.getElementById('integrations-view').hidden && document.querySelector('.list-pane').offsetParent !== null",
        WAIT,
    )
    .await;
    page.assert_no_script_errors();
}

backend_tests!(
    every_event_type_is_delivered_signed,
    failures_are_retried_logged_and_redelivered,
    a_receiver_down_across_a_restart_gets_the_event_after,
    two_instances_deliver_each_event_once,
    a_slow_receiver_does_not_hold_up_another,
    private_addresses_are_refused,
);
