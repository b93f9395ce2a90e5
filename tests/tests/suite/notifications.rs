//! Issue 13: the outbox and email notifications, against a real SMTP server (PyPI's `aiosmtpd`,
//! run by `tests/support/smtp_sink.py`, which writes every accepted message as a JSON file).
//!
//! Without Python's aiosmtpd these tests say so and skip, unless `CHATDESK_REQUIRE_SMTP=1` (as
//! `.ci/run` sets), where they fail.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::Settings;
use api::config::Secret;
use common::resilience_support::start_chatdesk;
use common::{
    ADMIN_EMAIL, Backend, TestApp, chatdesk_binary, error_code, expect_data, free_port, graphql_at,
    spawn_app_with,
};
use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
use serde_json::{Value, json};
use tempfile::TempDir;

// ---- the SMTP server ---------------------------------------------------------------------

fn smtp_required() -> bool {
    std::env::var("CHATDESK_REQUIRE_SMTP").is_ok_and(|v| v == "1")
}

/// Whether python3 with aiosmtpd is there; skips (or fails when required) otherwise.
fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ok {
        assert!(
            !smtp_required(),
            "CHATDESK_REQUIRE_SMTP=1 but python3 cannot import aiosmtpd (pip install aiosmtpd)"
        );
        eprintln!("skipped: python3 with aiosmtpd is not installed (pip install aiosmtpd)");
    }
    ok
}

struct SmtpSink {
    port: u16,
    folder: TempDir,
    child: Option<Child>,
    /// More arguments for smtp_sink.py (TLS, credentials).
    options: Vec<String>,
}

impl SmtpSink {
    /// A sink on a free port, not started yet (connections are refused until `start`).
    fn new() -> Self {
        Self {
            port: free_port(),
            folder: tempfile::tempdir().expect("temp dir"),
            child: None,
            options: Vec::new(),
        }
    }

    async fn started() -> Self {
        let mut sink = Self::new();
        sink.start().await;
        sink
    }

    async fn start(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/smtp_sink.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(self.folder.path())
            .arg(self.port.to_string())
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the SMTP sink did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<Value> {
        read_messages(self.folder.path())
    }

    /// Waits until at least `count` messages are there, then a moment longer to see that no
    /// more come, and returns them all.
    async fn wait_for(&self, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} messages, got {}: {messages:#?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_messages(folder: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .filter(|path| {
                    !path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|path| {
            serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
        })
        .collect()
}

fn header<'a>(message: &'a Value, name: &str) -> Option<&'a str> {
    message["headers"][name][0].as_str()
}

fn recipients(messages: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = messages
        .iter()
        .flat_map(|m| m["rcpt_tos"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    all.sort();
    all
}

// ---- the app -----------------------------------------------------------------------------

fn with_email(settings: &mut Settings, smtp_url: &str) {
    settings.smtp_url = Some(Secret::new(smtp_url));
    settings.mail_from = Some("Example Support <support@example.com>".into());
    settings.notify_delay = Duration::from_millis(600);
    settings.outbox_poll = Duration::from_millis(50);
    settings.outbox_retry_base = Duration::from_millis(200);
    settings.outbox_max_attempts = 4;
}

async fn app_with_email(backend: Backend, smtp_url: &str) -> TestApp {
    let url = smtp_url.to_owned();
    spawn_app_with(backend, move |settings| with_email(settings, &url)).await
}

/// The admin's token, with the admin's own emails off: the sink gets only the visitor's.
async fn admin_without_email(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    app.data(
        "mutation { setEmailPreference(preference: NEVER) { emailPreference } }",
        json!({}),
        Some(&admin),
    )
    .await;
    admin
}

async fn start_chat(app: &TestApp, input: Value) -> (String, String) {
    let data = app
        .data(
            "mutation($input: StartChatInput) { startChat(input: $input) { chatToken chat { id } } }",
            json!({ "input": input }),
            None,
        )
        .await;
    (
        data["startChat"]["chat"]["id"].as_str().unwrap().to_owned(),
        data["startChat"]["chatToken"].as_str().unwrap().to_owned(),
    )
}

async fn mark_read(app: &TestApp, token: &str, chat_id: &str) {
    app.data(
        "mutation($id: UUID!) { markChatRead(chatId: $id) { id } }",
        json!({ "id": chat_id }),
        Some(token),
    )
    .await;
}

async fn outbox_count(app: &TestApp) -> u64 {
    entity::outbox_job::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count")
}

async fn second_admin(app: &TestApp, email: &str) -> String {
    api::service::admins::create(
        &app.state.db,
        email,
        Some("Second"),
        "another good password",
    )
    .await
    .expect("admin created");
    let data = app
        .data(
            "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }",
            json!({ "email": email, "password": "another good password" }),
            None,
        )
        .await;
    data["login"]["token"].as_str().unwrap().to_owned()
}

// ---- the tests ---------------------------------------------------------------------------

/// A burst of visitor messages nobody reads is one email per admin (as each admin's preference
/// allows), with the chat's thread headers, escaped HTML and a link to the chat; a message read
/// within the delay emails nobody.
async fn unread_visitor_messages_email_the_admins_once_per_burst(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let app = app_with_email(backend, &sink.url()).await;
    let admin = app.admin_token().await;
    let quiet = second_admin(&app, "quiet@example.com").await;
    let settings = app
        .data(
            "mutation { setEmailPreference(preference: NEVER) { emailEnabled emailPreference } }",
            json!({}),
            Some(&quiet),
        )
        .await;
    assert_eq!(
        settings["setEmailPreference"],
        json!({ "emailEnabled": true, "emailPreference": "NEVER" })
    );
    let (chat_id, visitor) = start_chat(
        &app,
        json!({ "visitorName": "Ann <b>Bold</b>", "visitorEmail": "ann@example.org", "sourcePage": "https://shop.example/p/1" }),
    )
    .await;
    app.send(&visitor, &chat_id, "Hello, is anyone there?")
        .await;
    app.send(
        &visitor,
        &chat_id,
        "My order <script>alert(1)</script> & more",
    )
    .await;
    app.send(&visitor, &chat_id, "Third line").await;

    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        recipients(&messages),
        vec![ADMIN_EMAIL.to_owned()],
        "{messages:#?}"
    );
    let email = &messages[0];
    assert_eq!(
        header(email, "subject"),
        Some("New chat from Ann <b>Bold</b> <ann@example.org>")
    );
    assert!(
        header(email, "from")
            .unwrap()
            .contains("support@example.com"),
        "{email:#}"
    );
    let thread = format!("<chat-{chat_id}@example.com>");
    assert_eq!(header(email, "in-reply-to"), Some(thread.as_str()));
    assert_eq!(header(email, "references"), Some(thread.as_str()));
    assert!(header(email, "message-id").is_some_and(|id| id.ends_with("@example.com>")));
    assert!(header(email, "list-unsubscribe").is_some());
    let text = email["text"].as_str().unwrap();
    for line in [
        "Hello, is anyone there?",
        "My order <script>alert(1)</script> & more",
        "Third line",
    ] {
        assert!(text.contains(line), "{text}");
    }
    assert!(text.contains("https://shop.example/p/1"), "{text}");
    let link = format!(
        "{}/admin666/?status=all&chat={chat_id}",
        app.state.settings.public_url
    );
    assert!(text.contains(&link), "{text}");
    let html = email["html"].as_str().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{html}"
    );
    assert!(html.contains("Ann &lt;b&gt;Bold&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<img"), "no remote images: {html}");

    // A later message the admin reads within the delay: no email.
    app.send(&visitor, &chat_id, "One more thing").await;
    mark_read(&app, &admin, &chat_id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.messages().len(), 1, "{:#?}", sink.messages());

    // A later unread message: a second email in the same thread, no longer a "new chat".
    app.send(&visitor, &chat_id, "Still waiting").await;
    let messages = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        header(&messages[1], "subject"),
        Some("New message from Ann <b>Bold</b> <ann@example.org>")
    );
    assert_eq!(header(&messages[1], "references"), Some(thread.as_str()));
    let text = messages[1]["text"].as_str().unwrap();
    assert!(
        text.contains("Still waiting") && !text.contains("One more thing"),
        "{text}"
    );

    // The outbox reports itself on /metrics.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "outbox_queue_depth",
        "outbox_jobs_sent_total{kind=\"email\"}",
        "outbox_jobs_sent_total{kind=\"admin_notify\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
}

/// An admin reply the visitor does not read within the delay is emailed to the visitor, with a
/// one-time resume link and an unsubscribe link that works.
async fn unread_replies_email_the_visitor_with_a_resume_link(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let app = app_with_email(backend, &sink.url()).await;
    let admin = admin_without_email(&app).await;
    let (chat_id, visitor) = start_chat(
        &app,
        json!({ "visitorName": "Bob", "visitorEmail": "bob@example.org", "sourcePage": "https://shop.example/help#faq" }),
    )
    .await;
    app.send(&visitor, &chat_id, "Where is my parcel?").await;
    app.send(&admin, &chat_id, "It left <today> & arrives tomorrow.")
        .await;
    app.send(&admin, &chat_id, "Anything else?").await;
    app.upload_ok(
        &admin,
        &chat_id,
        &[("tracking <number>.txt", b"track 123", "text/plain")],
    )
    .await;

    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(recipients(&messages), vec!["bob@example.org".to_owned()]);
    let email = &messages[0];
    let text = email["text"].as_str().unwrap();
    assert!(text.contains("[files: tracking <number>.txt]"), "{text}");
    assert!(
        email["html"]
            .as_str()
            .unwrap()
            .contains("Files: tracking &lt;number&gt;.txt"),
        "{email}"
    );
    assert!(
        text.contains("It left <today> & arrives tomorrow.") && text.contains("Anything else?"),
        "{text}"
    );
    let html = email["html"].as_str().unwrap();
    assert!(
        html.contains("It left &lt;today&gt; &amp; arrives tomorrow."),
        "{html}"
    );
    assert_eq!(
        header(email, "list-unsubscribe-post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        header(email, "references"),
        Some(format!("<chat-{chat_id}@example.com>").as_str())
    );
    let code = text
        .split("https://shop.example/help#chatdesk-resume=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a resume link in {text}"))
        .to_owned();

    // The code gives the chat back with a fresh token, once.
    let resume = "mutation($code: String!) { resumeChat(code: $code) { chatToken chat { id messages(last: 10) { edges { node { body } } } } } }";
    let data = app.data(resume, json!({ "code": code }), None).await;
    assert_eq!(data["resumeChat"]["chat"]["id"], json!(chat_id));
    let token = data["resumeChat"]["chatToken"].as_str().unwrap().to_owned();
    let bodies: Vec<&str> = data["resumeChat"]["chat"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|edge| edge["node"]["body"].as_str())
        .collect();
    assert!(bodies.contains(&"Anything else?"), "{data}");
    let sent = app.send(&token, &chat_id, "Thanks, resumed!").await;
    assert_eq!(sent["body"], json!("Thanks, resumed!"));
    let again = app.graphql(resume, json!({ "code": code }), None).await;
    assert_eq!(error_code(&again), Some("BAD_USER_INPUT"), "{again}");
    let made_up = app
        .graphql(resume, json!({ "code": "nope\r\n" }), None)
        .await;
    assert_eq!(error_code(&made_up), Some("BAD_USER_INPUT"), "{made_up}");

    // Unsubscribe: GET only asks, POST does it; then replies email nobody.
    let unsubscribe = text
        .split_whitespace()
        .find(|word| word.contains("/api/notify/unsubscribe?"))
        .expect("an unsubscribe link")
        // The link is on the public URL; this server listens on its own port.
        .replace(&app.state.settings.public_url, &app.address);
    let page = app.client.get(&unsubscribe).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let forged = unsubscribe.replace("sig=", "sig=0");
    assert_eq!(app.client.post(&forged).send().await.unwrap().status(), 404);
    assert_eq!(
        app.client.post(&unsubscribe).send().await.unwrap().status(),
        200
    );
    app.send(&admin, &chat_id, "A reply after the unsubscribe")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages().len(), 1, "{:#?}", sink.messages());
}

/// The job is written in the change's transaction: rolled back, there is no job.
async fn a_rolled_back_transaction_writes_no_job(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let db = &app.state.db;
    let job = || api::notify::outbox::NewJob::now("email", json!({ "to": "x@example.org" }));
    let txn = db.begin().await.unwrap();
    assert!(api::notify::outbox::enqueue(&txn, job()).await.unwrap());
    txn.rollback().await.unwrap();
    assert_eq!(outbox_count(&app).await, 0);

    let txn = db.begin().await.unwrap();
    api::notify::outbox::enqueue(&txn, job()).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(outbox_count(&app).await, 1);

    // A dedupe key keeps one job waiting.
    let keyed = || {
        let mut job = job();
        job.dedupe_key = Some("burst:1".into());
        job
    };
    assert!(api::notify::outbox::enqueue(db, keyed()).await.unwrap());
    assert!(!api::notify::outbox::enqueue(db, keyed()).await.unwrap());
    assert_eq!(outbox_count(&app).await, 2);

    // Erasing a chat takes its jobs with it (issue 21 calls this).
    let chat_id = uuid::Uuid::now_v7();
    let mut about_chat = job();
    about_chat.chat_id = Some(chat_id);
    api::notify::outbox::enqueue(db, about_chat).await.unwrap();
    assert_eq!(outbox_count(&app).await, 3);
    assert_eq!(
        api::notify::outbox::delete_for_chat(db, chat_id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(outbox_count(&app).await, 2);
}

/// With email off, a send writes no job (the send path stays as it was).
async fn without_smtp_nothing_is_queued(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(Some("Cy")).await;
    app.send(&visitor, &chat_id, "hi").await;
    assert_eq!(outbox_count(&app).await, 0);
    let admin = app.admin_token().await;
    let data = app
        .data(
            "{ notificationSettings { emailEnabled emailPreference } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        data["notificationSettings"],
        json!({ "emailEnabled": false, "emailPreference": "ALL" })
    );
    let denied = app
        .graphql(
            "{ notificationSettings { emailEnabled } }",
            json!({}),
            Some(&visitor),
        )
        .await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"), "{denied}");
}

/// The SMTP server down (connection refused) when the email is due, then up: it arrives, once.
async fn smtp_down_then_up_delivers_once(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let mut sink = SmtpSink::new();
    let app = spawn_app_with(backend, {
        let url = sink.url();
        move |settings| {
            with_email(settings, &url);
            settings.outbox_max_attempts = 10;
        }
    })
    .await;
    let (chat_id, visitor) = start_chat(&app, json!({ "visitorName": "Dee" })).await;
    app.send(&visitor, &chat_id, "Anyone?").await;
    // Let a few attempts fail against the closed port.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failed = entity::outbox_job::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .into_iter()
            .any(|job| job.kind == "email" && job.attempts >= 2 && job.last_error.is_some());
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.start().await;
    let messages = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(recipients(&messages), vec![ADMIN_EMAIL.to_owned()]);
    assert!(messages[0]["text"].as_str().unwrap().contains("Anyone?"));
}

/// A job written by an instance that stops before sending it is sent by the next instance on
/// the same database. (The first instance's worker is made to look only once, at its start:
/// from then on it is as good as dead; `tests/tests/suite/notifications.rs` has no process to kill.)
async fn a_job_written_before_a_crash_is_sent_after_restart(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let first = spawn_app_with(backend, {
        let url = sink.url();
        move |settings| {
            with_email(settings, &url);
            settings.outbox_poll = Duration::from_secs(3600);
        }
    })
    .await;
    let (chat_id, visitor) = start_chat(&first, json!({ "visitorName": "Eve" })).await;
    first
        .send(&visitor, &chat_id, "Written before the crash")
        .await;
    assert_eq!(outbox_count(&first).await, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sink.messages().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(&dir, &first.database_url);
    with_email(&mut settings, &sink.url());
    let second = api::Application::build(settings).await.unwrap();
    tokio::spawn(second.run_until_stopped());
    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("Written before the crash")
    );
}

/// Two instances on one database: every email once. Also measures the outbox's throughput and
/// the delay from commit to the SMTP server's accept (printed, not asserted).
async fn two_instances_send_each_email_once(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let app = spawn_app_with(backend.clone(), {
        let url = sink.url();
        move |settings| {
            with_email(settings, &url);
            settings.notify_delay = Duration::ZERO;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(&dir, &app.database_url);
    with_email(&mut settings, &sink.url());
    settings.notify_delay = Duration::ZERO;
    let other = api::Application::build(settings).await.unwrap();
    let other_address = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until_stopped());

    let chats = 60;
    let mut committed = std::collections::HashMap::new();
    let started = std::time::SystemTime::now();
    for n in 0..chats {
        let (chat_id, visitor) = start_chat(&app, json!({ "visitorName": format!("V{n}") })).await;
        // Half the sends through each instance.
        let address = if n % 2 == 0 {
            &app.address
        } else {
            &other_address
        };
        expect_data(
            graphql_at(
                &app.client,
                address,
                "mutation($c: UUID!, $b: String) { sendMessage(chatId: $c, body: $b) { id } }",
                json!({ "c": chat_id, "b": format!("message {n}") }),
                Some(&visitor),
            )
            .await,
        );
        committed.insert(
            chat_id,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64(),
        );
    }
    let messages = sink.wait_for(chats, Duration::from_secs(60)).await;
    assert_eq!(messages.len(), chats, "each email once");
    let mut threads: Vec<String> = messages
        .iter()
        .map(|m| header(m, "references").unwrap().to_owned())
        .collect();
    threads.sort();
    threads.dedup();
    assert_eq!(threads.len(), chats, "one email per chat");

    let mut delays: Vec<f64> = messages
        .iter()
        .map(|m| {
            let thread = header(m, "references").unwrap();
            let chat_id = thread
                .trim_start_matches("<chat-")
                .split('@')
                .next()
                .unwrap();
            m["received_at"].as_f64().unwrap() - committed[chat_id]
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let p = |q: f64| delays[((delays.len() as f64 - 1.0) * q).round() as usize];
    let span = messages
        .iter()
        .map(|m| m["received_at"].as_f64().unwrap())
        .fold(0.0, f64::max)
        - started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
    eprintln!(
        "outbox ({backend:?}): {chats} notifications through 2 instances; commit to SMTP accept p50 {:.0} ms, p99 {:.0} ms (poll 50 ms); {:.1} emails/s end to end",
        p(0.5) * 1000.0,
        p(0.99) * 1000.0,
        chats as f64 / span
    );
}

/// The worker's throughput: jobs already in the table (300 `email` jobs, due now) drained into
/// the SMTP server by one instance. Printed, not asserted.
async fn outbox_throughput(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let jobs = 300;
    let app = app_with_email(backend.clone(), &sink.url()).await;
    let txn = app.state.db.begin().await.unwrap();
    for n in 0..jobs {
        let email = json!({
            "to": format!("reader{n}@example.org"), "to_name": null,
            "subject": format!("Job {n}"), "text": "text", "html": "<p>html</p>",
            "message_id": format!("job-{n}@example.com"), "thread_id": null, "unsubscribe": null,
        });
        api::notify::outbox::enqueue(&txn, api::notify::outbox::NewJob::now("email", email))
            .await
            .unwrap();
    }
    let started = Instant::now();
    txn.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.messages().len() < jobs {
        assert!(
            Instant::now() < deadline,
            "only {} of {jobs} sent",
            sink.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "outbox ({backend:?}): {jobs} email jobs drained by one instance in {:.2} s: {:.0} jobs/s",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(recipients(&sink.messages()).len(), jobs);

    // The outbox's own cost, without SMTP: notification jobs about a chat that is gone take
    // one look-up each and end (claim, run, done).
    let jobs = 1000;
    let txn = app.state.db.begin().await.unwrap();
    for _ in 0..jobs {
        let mut job = api::notify::outbox::NewJob::now(
            "admin_notify",
            json!({ "first_at": chrono::Utc::now() }),
        );
        job.chat_id = Some(uuid::Uuid::now_v7());
        api::notify::outbox::enqueue(&txn, job).await.unwrap();
    }
    let started = Instant::now();
    txn.commit().await.unwrap();
    let pending = || async { api::notify::outbox::depth(&app.state.db).await.unwrap() };
    while pending().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the outbox did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "outbox ({backend:?}): {jobs} jobs without SMTP drained in {:.2} s: {:.0} jobs/s",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
}

/// Bad input: header-injection characters and a huge name are refused or neutralised, and an
/// address the server refuses (550) makes its job dead after its attempts while other emails
/// go out.
async fn bad_addresses_and_names_fail_cleanly(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let sink = SmtpSink::started().await;
    let app = app_with_email(backend, &sink.url()).await;
    let admin = admin_without_email(&app).await;

    let start = "mutation($input: StartChatInput) { startChat(input: $input) { chatToken } }";
    let injected = app
        .graphql(
            start,
            json!({ "input": { "visitorEmail": "x@example.org\r\nBcc: victim@example.org" } }),
            None,
        )
        .await;
    assert_eq!(error_code(&injected), Some("BAD_USER_INPUT"), "{injected}");
    let huge = app
        .graphql(
            start,
            json!({ "input": { "visitorName": "n".repeat(10_000) } }),
            None,
        )
        .await;
    assert_eq!(error_code(&huge), Some("BAD_USER_INPUT"), "{huge}");

    // A name with CR/LF is stored, but cannot make a header of its own.
    let (chat_id, visitor) = start_chat(
        &app,
        json!({ "visitorName": "Mallory\r\nBcc: victim@example.org", "visitorEmail": "mallory@example.org" }),
    )
    .await;
    let (refused_chat, _) = start_chat(
        &app,
        json!({ "visitorName": "Rex", "visitorEmail": "rejected-user@example.org" }),
    )
    .await;
    app.send(&visitor, &chat_id, "hi").await;
    app.send(&admin, &chat_id, "Hello Mallory").await;
    app.send(&admin, &refused_chat, "Hello Rex").await;

    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        recipients(&messages),
        vec!["mallory@example.org".to_owned()]
    );
    let raw = messages[0]["raw"].as_str().unwrap();
    assert!(
        !raw.lines()
            .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
        "{raw}"
    );

    // The refused one is dead after its 4 attempts, with the server's answer kept.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead: Vec<_> = entity::outbox_job::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|job| job.state == entity::outbox_job::JobState::Dead)
            .collect();
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "the refused email never died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 4);
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("550"),
        "{:?}",
        dead[0]
    );
    assert_eq!(sink.messages().len(), 1);
}

/// The whole loop in a browser: the visitor left, the admin's reply is emailed, and the resume
/// link opened in a fresh browser (another device) shows the history and takes a reply. A
/// second opening of the same link is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_resumes_the_chat_from_the_emailed_link_in_a_browser() {
    use common::browser::widget::{w, w_all};
    use common::browser::{Browser, WAIT, chromium_path, screenshot_dir, spawn_browser_app_with};
    if !smtp_available() {
        return;
    }
    let Some(chromium) = chromium_path() else {
        return;
    };
    let sink = SmtpSink::started().await;
    let url = sink.url();
    let app = spawn_browser_app_with(move |settings| with_email(settings, &url)).await;
    let admin = admin_without_email(&app).await;
    let (chat_id, visitor) = start_chat(
        &app,
        json!({ "visitorName": "Gus", "visitorEmail": "gus@example.org", "sourcePage": app.url("/") }),
    )
    .await;
    app.send(&visitor, &chat_id, "Do you ship to Iceland?")
        .await;
    app.send(&admin, &chat_id, "Yes, within 5 days.").await;
    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    let text = messages[0]["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|word| word.contains("#chatdesk-resume="))
        .unwrap_or_else(|| panic!("a resume link in {text}"))
        .to_owned();
    assert!(link.starts_with(&app.url("/#chatdesk-resume=")), "{link}");

    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    page.goto(&link).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.textContent.includes('Yes, within 5 days.')) \
             && {}.some(m => m.textContent.includes('Do you ship to Iceland?'))",
            w_all("chatdesk-message"),
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    assert_eq!(
        page.eval("location.hash").await,
        json!(""),
        "the spent code leaves the address bar"
    );
    page.screenshot(&screenshot_dir("notifications/resumed").join("1-history.png"))
        .await;
    page.click(&w("chatdesk-input")).await;
    page.type_text("Great, thanks!").await;
    page.press("Enter", 0).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'visitor' && m.dataset.state === 'sent' && m.textContent.includes('Great, thanks!'))",
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    let data = app
        .data(
            "query($id: UUID!) { chat(id: $id) { messages(last: 5) { edges { node { body sender } } } } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    let last = data["chat"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(
        last.map(|edge| edge["node"].clone()),
        Some(json!({ "body": "Great, thanks!", "sender": "VISITOR" }))
    );

    // The same link again, in another fresh browser: refused, said plainly.
    let again = Browser::launch(&chromium).await;
    let page = again.page(1280, 900).await;
    page.goto(&link).await;
    page.wait_for(
        &format!(
            "(e => e && !e.hidden && e.textContent.includes('already used or has expired'))({})",
            w("chatdesk-error")
        ),
        WAIT,
    )
    .await;
    page.assert_no_script_errors();
}

const SET_HOURS: &str = "mutation($input: OfficeHoursInput!) { setOfficeHours(input: $input) { enabled timeZone ranges { weekday open close } awayText replyTime } }";
const WIDGET_SETTINGS: &str = "{ widgetSettings { available awayText replyTime emailReplies } }";

/// Office hours: set by an admin (checked), read by anyone through `widgetSettings`.
async fn office_hours_drive_the_widget_settings(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let admin = app.admin_token().await;
    let (_, visitor) = app.start_chat(Some("Hal")).await;
    assert_eq!(
        app.data(WIDGET_SETTINGS, json!({}), None).await["widgetSettings"],
        json!({ "available": true, "awayText": null, "replyTime": null, "emailReplies": false })
    );

    // Enabled with no opening range: away, saying so.
    let away = json!({ "input": {
        "enabled": true, "timeZone": "Europe/Berlin", "ranges": [],
        "awayText": "Back on Monday <b>9:00</b>", "replyTime": "Within minutes"
    } });
    let set = app.data(SET_HOURS, away.clone(), Some(&admin)).await;
    assert_eq!(set["setOfficeHours"]["timeZone"], json!("Europe/Berlin"));
    assert_eq!(
        app.data(WIDGET_SETTINGS, json!({}), None).await["widgetSettings"],
        json!({ "available": false, "awayText": "Back on Monday <b>9:00</b>", "replyTime": null, "emailReplies": false })
    );

    // Open all day every day (in UTC): around, with the reply time.
    let days = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ];
    let ranges: Vec<Value> = days
        .iter()
        .map(|day| json!({ "weekday": day, "open": "00:00", "close": "23:59" }))
        .collect();
    let open = json!({ "input": {
        "enabled": true, "timeZone": "UTC", "ranges": ranges,
        "awayText": "Away", "replyTime": "Within minutes"
    } });
    app.data(SET_HOURS, open, Some(&admin)).await;
    let read = app
        .data(
            "{ officeHours { enabled timeZone ranges { weekday open close } } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(read["officeHours"]["ranges"].as_array().unwrap().len(), 7);
    assert_eq!(
        read["officeHours"]["ranges"][0],
        json!({ "weekday": "MONDAY", "open": "00:00", "close": "23:59" })
    );
    if chrono::Utc::now().format("%H:%M").to_string() != "23:59" {
        assert_eq!(
            app.data(WIDGET_SETTINGS, json!({}), None).await["widgetSettings"],
            json!({ "available": true, "awayText": null, "replyTime": "Within minutes", "emailReplies": false })
        );
    }

    // Bad input and the wrong people.
    let with = |change: Value| {
        let mut input = away["input"].clone();
        for (key, value) in change.as_object().unwrap() {
            input[key] = value.clone();
        }
        json!({ "input": input })
    };
    for bad in [
        json!({ "timeZone": "Mars/Olympus" }),
        json!({ "timeZone": "Europe/Berlin\r\nX: y" }),
        json!({ "ranges": [{ "weekday": "MONDAY", "open": "25:00", "close": "26:00" }] }),
        json!({ "ranges": [{ "weekday": "MONDAY", "open": "17:00", "close": "09:00" }] }),
        json!({ "awayText": "x".repeat(10_000) }),
    ] {
        let response = app
            .graphql(SET_HOURS, with(bad.clone()), Some(&admin))
            .await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{bad}: {response}"
        );
    }
    let response = app.graphql(SET_HOURS, away.clone(), Some(&visitor)).await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    let response = app.graphql(SET_HOURS, away, None).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    let response = app
        .graphql("{ officeHours { enabled } }", json!({}), None)
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
}

/// While away, the widget shows the away text and asks for the email before the first
/// message; the email given goes with the new chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_shows_the_away_text_and_asks_for_the_email_first() {
    use common::browser::widget::{open_demo, w, w_all};
    use common::browser::{WAIT, browser_and_app, screenshot_dir};
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let admin = app.admin_token().await;
    app.data(
        SET_HOURS,
        json!({ "input": { "enabled": true, "timeZone": "UTC", "ranges": [], "awayText": "We are closed <now>, back at 9.", "replyTime": null } }),
        Some(&admin),
    )
    .await;
    let page = browser.page(1280, 900).await;
    open_demo(&page, &app).await;
    page.click(&w("chatdesk-launcher")).await;
    page.wait_for(
        &format!(
            "!{a}.hidden && {a}.textContent === 'We are closed <now>, back at 9.' && !{d}.hidden",
            a = w("chatdesk-availability"),
            d = w("chatdesk-details")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&screenshot_dir("notifications/away").join("1-away.png"))
        .await;
    page.click(&w("chatdesk-email")).await;
    page.type_text("kim@example.org").await;
    page.click(&w("chatdesk-details-save")).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-details")), WAIT)
        .await;
    page.click(&w("chatdesk-input")).await;
    page.type_text("Hello after hours").await;
    page.press("Enter", 0).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.state === 'sent' && m.textContent.includes('Hello after hours'))",
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    let chats = app
        .data(
            "{ chats(first: 5) { edges { node { visitor { email } } } } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        chats["chats"]["edges"][0]["node"]["visitor"]["email"],
        json!("kim@example.org")
    );
    page.assert_no_script_errors();
}

/// The admin page's sidebar panels: the email preference (email off on this server, and it
/// says so; `#settings` opens it, as the emails link) and the office hours, saved through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_sets_the_email_preference_and_office_hours() {
    use common::browser::admin::{send_sign_in, t};
    use common::browser::{WAIT, browser_and_app, screenshot_dir};
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    send_sign_in(&page, &app, "/admin666/#settings", common::ADMIN_PASSWORD).await;
    page.wait_for(
        &format!(
            "{s}.open && {st}.textContent.includes('Email is off on this server')",
            s = t("email-settings"),
            st = t("email-state")
        ),
        WAIT,
    )
    .await;
    let change = |testid: &str, value: &str| {
        format!(
            "(() => {{ const e = {}; e.value = {}; e.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()",
            t(testid),
            json!(value)
        )
    };
    page.eval(&change("email-pref", "NEW_CHATS")).await;
    let admin = app.admin_token().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let data = app
            .data(
                "{ notificationSettings { emailPreference } }",
                json!({}),
                Some(&admin),
            )
            .await;
        if data["notificationSettings"]["emailPreference"] == json!("NEW_CHATS") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the preference was not saved: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    page.eval(&format!("{}.open = true", t("office-hours")))
        .await;
    page.eval(&format!("{}.checked = true", t("hours-enabled")))
        .await;
    page.eval(&format!("{}.value = 'Europe/Paris'", t("hours-zone")))
        .await;
    page.eval(&format!("{}.value = '09:00'", t("hours-monday-open")))
        .await;
    page.eval(&format!("{}.value = '17:30'", t("hours-monday-close")))
        .await;
    page.eval(&format!("{}.value = 'Back soon'", t("hours-away")))
        .await;
    page.click(&t("hours-save")).await;
    page.wait_for(
        &format!("{}.textContent === 'Saved.'", t("hours-state")),
        WAIT,
    )
    .await;
    page.screenshot(&screenshot_dir("notifications/admin").join("1-settings.png"))
        .await;
    let data = app
        .data(
            "{ officeHours { enabled timeZone ranges { weekday open close } awayText } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        data["officeHours"],
        json!({ "enabled": true, "timeZone": "Europe/Paris", "awayText": "Back soon",
                "ranges": [{ "weekday": "MONDAY", "open": "09:00", "close": "17:30" }] })
    );
    // A bad time zone is refused with the server's words.
    page.eval(&format!("{}.value = 'Nowhere/Land'", t("hours-zone")))
        .await;
    page.click(&t("hours-save")).await;
    page.wait_for(
        &format!(
            "{}.textContent.includes('not an IANA time zone')",
            t("hours-state")
        ),
        WAIT,
    )
    .await;
    page.assert_no_script_errors();
}

/// A CA and a certificate it signed for 127.0.0.1, made with the `openssl` command:
/// (ca.pem, cert.pem, key.pem) in `dir`.
fn make_certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let extensions = dir.join("leaf.ext");
    std::fs::write(
        &extensions,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .ok()?;
    let made = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Chatdesk test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    if !made {
        assert!(
            !smtp_required(),
            "CHATDESK_REQUIRE_SMTP=1 but openssl cannot make test certificates"
        );
        eprintln!("skipped: the openssl command is missing or failed");
        return None;
    }
    Some((
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ))
}

/// TLS both ways lettre speaks it, with credentials from the URL, against a server whose
/// certificate chains to a private CA (`CHATDESK_SMTP_CA_FILE`): implicit TLS (`smtps://`) and
/// STARTTLS (`?tls=required`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtps_and_starttls_with_credentials_deliver() {
    if !smtp_available() {
        return;
    }
    let certificates = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certificates(certificates.path()) else {
        return;
    };
    for (mode, url) in [
        ("smtps", "smtps://mailer:s3cret@127.0.0.1:{port}"),
        (
            "starttls",
            "smtp://mailer:s3cret@127.0.0.1:{port}?tls=required",
        ),
    ] {
        let mut sink = SmtpSink::new();
        sink.options = [
            "--tls",
            mode,
            "--cert",
            &cert.to_string_lossy(),
            "--key",
            &key.to_string_lossy(),
            "--auth",
            "mailer:s3cret",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        sink.start().await;
        let url = url.replace("{port}", &sink.port.to_string());
        let ca = ca.clone();
        let app = spawn_app_with(Backend::Sqlite, {
            let url = url.clone();
            move |settings| {
                with_email(settings, &url);
                settings.smtp_ca_file = Some(ca);
            }
        })
        .await;
        let (chat_id, visitor) = start_chat(&app, json!({ "visitorName": "Tia" })).await;
        app.send(&visitor, &chat_id, &format!("over {mode}")).await;
        let messages = sink.wait_for(1, Duration::from_secs(20)).await;
        assert_eq!(
            recipients(&messages),
            vec![ADMIN_EMAIL.to_owned()],
            "{mode}"
        );
        assert!(
            messages[0]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("over {mode}"))
        );
    }

    // Without the CA the certificate is not trusted: the email fails, nothing is sent in clear.
    let mut sink = SmtpSink::new();
    sink.options = [
        "--tls",
        "smtps",
        "--cert",
        &cert.to_string_lossy(),
        "--key",
        &key.to_string_lossy(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    sink.start().await;
    let url = format!("smtps://127.0.0.1:{}", sink.port);
    let app = spawn_app_with(Backend::Sqlite, move |settings| {
        with_email(settings, &url);
        settings.outbox_max_attempts = 1;
    })
    .await;
    let (chat_id, visitor) = start_chat(&app, json!({ "visitorName": "Uma" })).await;
    app.send(&visitor, &chat_id, "untrusted").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let dead = entity::outbox_job::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .into_iter()
            .find(|job| job.state == entity::outbox_job::JobState::Dead);
        if let Some(job) = dead {
            break job.last_error.unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "the untrusted server was not refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(sink.messages().is_empty());
}

/// The real binary with email on, in its own process.
async fn start_binary(
    binary: &Path,
    dir: &Path,
    database_url: &str,
    smtp_url: &str,
) -> (tokio::process::Child, String) {
    start_chatdesk(
        binary,
        dir,
        database_url,
        &[
            ("CHATDESK_SMTP_URL", smtp_url),
            (
                "CHATDESK_MAIL_FROM",
                "Example Support <support@example.com>",
            ),
            ("CHATDESK_NOTIFY_DELAY_SECS", "2"),
            ("CHATDESK_OUTBOX_POLL_MS", "50"),
            ("CHATDESK_OUTBOX_RETRY_BASE_SECS", "1"),
        ],
    )
    .await
}

/// A request that must succeed, on a client of its own (the server here gets killed).
async fn call(base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    expect_data(graphql_at(&reqwest::Client::new(), base, query, variables, token).await)
}

/// The real `chatdesk` process SIGKILLed right after an admin's reply (before the delay has
/// passed): after a restart on the same database the visitor gets the email, once.
async fn a_server_killed_right_after_a_reply_emails_after_restart(backend: Backend) {
    if !smtp_available() {
        return;
    }
    let Some(binary) = chatdesk_binary() else {
        return;
    };
    let sink = SmtpSink::started().await;
    let dir = tempfile::tempdir().unwrap();
    let (database_url, postgres) = common::test_database(&backend, dir.path()).await;
    let (mut server, base) = start_binary(&binary, dir.path(), &database_url, &sink.url()).await;
    let login = call(
        &base,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": ADMIN_EMAIL, "p": common::ADMIN_PASSWORD }),
        None,
    )
    .await;
    let admin = login["login"]["token"].as_str().unwrap().to_owned();
    call(
        &base,
        "mutation { setEmailPreference(preference: NEVER) { emailPreference } }",
        json!({}),
        Some(&admin),
    )
    .await;
    let started = call(
        &base,
        "mutation($input: StartChatInput) { startChat(input: $input) { chatToken chat { id } } }",
        json!({ "input": { "visitorEmail": "ida@example.org" } }),
        None,
    )
    .await;
    let chat_id = started["startChat"]["chat"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let visitor = started["startChat"]["chatToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = "mutation($c: UUID!, $b: String) { sendMessage(chatId: $c, body: $b) { id } }";
    call(
        &base,
        send,
        json!({ "c": chat_id, "b": "Are you open on Sunday?" }),
        Some(&visitor),
    )
    .await;
    call(
        &base,
        send,
        json!({ "c": chat_id, "b": "Yes, from 10 to 4." }),
        Some(&admin),
    )
    .await;

    let pid = i32::try_from(server.id().expect("running")).unwrap();
    // SAFETY: a plain signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = server.wait().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sink.messages().is_empty(),
        "nothing went out before the delay"
    );

    let (_restarted, _) = start_binary(&binary, dir.path(), &database_url, &sink.url()).await;
    let messages = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(recipients(&messages), vec!["ida@example.org".to_owned()]);
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("Yes, from 10 to 4.")
    );
    if let Some((server, name)) = postgres {
        drop(_restarted);
        common::drop_database(&server, &name).await;
    }
}

backend_tests!(
    office_hours_drive_the_widget_settings,
    a_server_killed_right_after_a_reply_emails_after_restart,
    unread_visitor_messages_email_the_admins_once_per_burst,
    unread_replies_email_the_visitor_with_a_resume_link,
    a_rolled_back_transaction_writes_no_job,
    without_smtp_nothing_is_queued,
    smtp_down_then_up_delivers_once,
    a_job_written_before_a_crash_is_sent_after_restart,
    two_instances_send_each_email_once,
    outbox_throughput,
    bad_addresses_and_names_fail_cleanly,
);
