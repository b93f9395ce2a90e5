//! Headless Chromium driven over the DevTools protocol (a WebSocket we already speak), so the
//! browser tests need no driver binary and no extra crates. Debian's `chromium` only: no tool
//! downloads a browser of its own.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
/// Script errors per tab session: uncaught exceptions and `console.error` calls.
type Errors = Arc<std::sync::Mutex<HashMap<String, Vec<String>>>>;

/// The browser to use: `CHATDESK_CHROMIUM`, or Debian's `/usr/bin/chromium`. With
/// `CHATDESK_REQUIRE_BROWSER=1` a missing browser fails the test instead of skipping it.
pub fn chromium_path() -> Option<String> {
    let path =
        std::env::var("CHATDESK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if std::path::Path::new(&path).exists() {
        return Some(path);
    }
    if std::env::var("CHATDESK_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("CHATDESK_REQUIRE_BROWSER=1 but no browser at {path} (apt-get install chromium)");
    }
    eprintln!("skipped: no browser at {path} (apt-get install chromium)");
    None
}

pub struct Browser {
    child: Child,
    sink: Arc<Mutex<Sink>>,
    pending: Pending,
    errors: Errors,
    next_id: AtomicU64,
    _profile: tempfile::TempDir,
}

/// One tab.
pub struct Page<'a> {
    browser: &'a Browser,
    session: String,
}

impl Browser {
    pub async fn launch(path: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(path)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("DevTools listening on ").nth(1) {
                    return rest.trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium announces its DevTools endpoint within 30 s");
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = connect_async(endpoint.as_str())
            .await
            .expect("DevTools WebSocket");
        let (sink, mut stream) = socket.split();
        let pending: Pending = Arc::default();
        let errors: Errors = Arc::default();
        let readers = pending.clone();
        let error_log = errors.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = message["id"].as_u64() {
                    if let Some(reply) = readers.lock().await.remove(&id) {
                        let _ = reply.send(message);
                    }
                } else if let Some(error) = script_error(&message) {
                    let session = message["sessionId"].as_str().unwrap_or_default().to_owned();
                    if let Ok(mut log) = error_log.lock() {
                        log.entry(session).or_default().push(error);
                    }
                }
            }
        });
        Browser {
            child,
            sink: Arc::new(Mutex::new(sink)),
            pending,
            errors,
            next_id: AtomicU64::new(1),
            _profile: profile,
        }
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let answer = self.try_call(session, method, params).await;
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// The whole answer, a protocol error included (say, during a navigation).
    async fn try_call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().await.insert(id, reply);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.sink
            .lock()
            .await
            .send(Message::text(message.to_string()))
            .await
            .expect("DevTools send");
        tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer within 30 s"))
            .expect("DevTools reply")
    }

    /// The URLs of the browser's open tabs (a page's `window.open` adds one).
    pub async fn tab_urls(&self) -> Vec<String> {
        let targets = self.call(None, "Target.getTargets", json!({})).await;
        targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|target| target["type"] == "page")
            .filter_map(|target| target["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// A new tab of `width` × `height` CSS pixels.
    pub async fn page(&self, width: u32, height: u32) -> Page<'_> {
        let target = self
            // A window of its own: a tab behind another would be `hidden`, and the clients
            // rightly do not mark messages read in a hidden tab.
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "newWindow": true }),
            )
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let page = Page {
            browser: self,
            session: attached["sessionId"].as_str().unwrap().to_owned(),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500 }),
        )
        .await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Page<'_> {
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    pub async fn goto(&self, url: &str) {
        self.navigate("Page.navigate", json!({ "url": url })).await;
    }

    pub async fn reload(&self) {
        self.navigate("Page.reload", json!({})).await;
    }

    /// Runs a navigation command and waits until the new document has loaded: a marker set in
    /// the old document tells the two apart.
    async fn navigate(&self, method: &str, params: Value) {
        self.eval("window.__chatdeskOldDocument = true").await;
        self.call(method, params).await;
        self.wait_for(
            "!window.__chatdeskOldDocument && document.readyState === 'complete'",
            Duration::from_secs(15),
        )
        .await;
    }

    /// Evaluates `expression` (awaiting a promise) and returns its JSON value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `condition` (a JS expression) until it is truthy. A document that is being
    /// replaced answers nothing for a moment; that counts as not yet.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answer = self
                .browser
                .try_call(
                    Some(&self.session),
                    "Runtime.evaluate",
                    json!({ "expression": format!("Boolean({condition})"), "returnByValue": true }),
                )
                .await;
            if answer["result"]["result"]["value"] == json!(true) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let errors = self.script_errors().join("\n  ");
                panic!(
                    "timed out after {timeout:?} waiting for: {condition}\n  script errors: {errors}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uncaught exceptions and `console.error` calls of this tab so far.
    pub fn script_errors(&self) -> Vec<String> {
        self.browser
            .errors
            .lock()
            .map(|log| log.get(&self.session).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Fails the test if this tab has had an uncaught exception or a `console.error` call.
    #[track_caller]
    pub fn assert_no_script_errors(&self) {
        let errors = self.script_errors();
        assert!(errors.is_empty(), "script errors: {errors:#?}");
    }

    /// Puts local files into the `<input type=file>` that `expression` evaluates to.
    pub async fn set_files(&self, expression: &str, paths: &[&std::path::Path]) {
        let found = self
            .call("Runtime.evaluate", json!({ "expression": expression }))
            .await;
        let object_id = found["result"]["objectId"]
            .as_str()
            .unwrap_or_else(|| panic!("{expression}: no element"));
        let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({ "objectId": object_id, "files": files }),
        )
        .await;
    }

    /// A real mouse click in the middle of the element `expression` evaluates to (scrolled
    /// into view first), so whatever covers it gets the click, as it would for a person.
    pub async fn click(&self, expression: &str) {
        // A person clicks once the thing is there: lists load after sign-in, rows arrive live.
        self.wait_for(expression, Duration::from_secs(10)).await;
        let center = self
            .eval(&format!(
                "(() => {{ const el = {expression}; el.scrollIntoView({{ block: 'nearest' }}); \
                 const r = el.getBoundingClientRect(); \
                 return r.width && r.height ? [r.left + r.width / 2, r.top + r.height / 2] : null; }})()"
            ))
            .await;
        let (Some(x), Some(y)) = (center[0].as_f64(), center[1].as_f64()) else {
            panic!("{expression}: not visible, cannot be clicked");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Types `text` into the focused element, as an input method would (input events fire).
    pub async fn type_text(&self, text: &str) {
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases one key: "Enter", "Escape", "Tab", an arrow ("ArrowLeft"…), a
    /// lower-case letter or a digit;
    /// `modifiers` is the DevTools bit mask (1 Alt, 2 Ctrl, 4 Meta, 8 Shift).
    pub async fn press(&self, key: &str, modifiers: u32) {
        let (code, key_code, text) = match key {
            "Enter" => ("Enter".to_owned(), 13, "\r".to_owned()),
            "Escape" => ("Escape".to_owned(), 27, String::new()),
            "Tab" => ("Tab".to_owned(), 9, String::new()),
            "ArrowLeft" => ("ArrowLeft".to_owned(), 37, String::new()),
            "ArrowUp" => ("ArrowUp".to_owned(), 38, String::new()),
            "ArrowRight" => ("ArrowRight".to_owned(), 39, String::new()),
            "ArrowDown" => ("ArrowDown".to_owned(), 40, String::new()),
            _ => match key.chars().collect::<Vec<_>>()[..] {
                [c] if c.is_ascii_lowercase() => (
                    format!("Key{}", c.to_ascii_uppercase()),
                    c.to_ascii_uppercase() as u32,
                    key.to_owned(),
                ),
                [c] if c.is_ascii_digit() => (format!("Digit{c}"), c as u32, key.to_owned()),
                _ => panic!("press: add a key code for {key}"),
            },
        };
        let text = if modifiers == 0 { text } else { String::new() };
        let mut down = json!({
            "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key, "code": code, "windowsVirtualKeyCode": key_code,
            "nativeVirtualKeyCode": key_code, "modifiers": modifiers,
        });
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": key_code,
                    "nativeVirtualKeyCode": key_code, "modifiers": modifiers }),
        )
        .await;
    }

    /// A PNG screenshot, saved to `path` (for a person to look at).
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("screenshot is base64");
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("screenshot folder");
        }
        std::fs::write(path, bytes).expect("screenshot written");
    }
}

/// A line for an uncaught exception or a `console.error` call, else None.
fn script_error(message: &Value) -> Option<String> {
    let params = &message["params"];
    match message["method"].as_str()? {
        "Runtime.exceptionThrown" => {
            let details = &params["exceptionDetails"];
            let description = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception");
            Some(format!("uncaught: {description}"))
        }
        "Runtime.consoleAPICalled" if params["type"] == "error" => {
            let args: Vec<String> = params["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|arg| {
                    arg["value"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| arg["description"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| arg["value"].to_string())
                })
                .collect();
            Some(format!("console.error: {}", args.join(" ")))
        }
        _ => None,
    }
}

/// The folder for screenshots of one test: `target/screenshots/<name>/`, for a person to look at.
pub fn screenshot_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/screenshots")
        .join(name);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

// ---- fixtures shared by the browser tests ----

/// Long enough for a slow CI machine, short of the clients' 7 s polling: what arrives within
/// it came over the subscription.
pub const LIVE: Duration = Duration::from_secs(5);
/// How long a browser test waits for a page to get where it should.
pub const WAIT: Duration = Duration::from_secs(15);

/// The start of a browser test: the server (`spawn_browser_app`) and a browser. None, and the
/// test skips, when there is no browser (see `chromium_path`).
pub async fn browser_and_app() -> Option<(super::TestApp, Browser)> {
    browser_and_app_with(|_| {}).await
}

/// Like `browser_and_app`, with a chance to change the server's settings first.
pub async fn browser_and_app_with(
    customize: impl FnOnce(&mut api::Settings),
) -> Option<(super::TestApp, Browser)> {
    let chromium = chromium_path()?;
    let app = spawn_browser_app_with(customize).await;
    let browser = Browser::launch(&chromium).await;
    Some((app, browser))
}

/// The server for a browser test: SQLite, on a port chosen up front so that its public URL
/// (the base of the signed file links it hands out, and the origin its WebSocket accepts) is
/// the address the browser loads pages from, as in a real deployment.
pub async fn spawn_browser_app() -> super::TestApp {
    spawn_browser_app_with(|_| {}).await
}

/// Like `spawn_browser_app`, with a chance to change the settings first.
pub async fn spawn_browser_app_with(customize: impl FnOnce(&mut api::Settings)) -> super::TestApp {
    let port = super::free_port();
    let app = super::spawn_app_with(super::Backend::Sqlite, |settings| {
        settings.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        settings.public_url = format!("http://127.0.0.1:{port}");
        customize(settings);
    })
    .await;
    assert_eq!(app.port, port);
    app
}

/// A real PNG of `width` × `height`: a diagonal gradient, so a thumbnail shows something.
pub fn png_bytes(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            160,
        ])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("PNG encodes");
    bytes.into_inner()
}

/// A small valid one-page PDF that says `text`.
pub fn pdf_bytes(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 24 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Writes `bytes` as `name` into `dir` and returns the path (for `set_files`).
pub fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("fixture written");
    path
}

/// `sendMessage` with files, as a multipart request (the GraphQL multipart request spec), with
/// `token`'s credential; returns the whole response.
pub async fn send_with_files(
    app: &super::TestApp,
    token: &str,
    chat_id: &str,
    body: Option<&str>,
    files: &[(&str, &str, Vec<u8>)],
) -> Value {
    let query = "mutation($chatId: UUID!, $body: String, $attachments: [Upload!]) { \
        sendMessage(chatId: $chatId, body: $body, attachments: $attachments) { \
        id body sender readAt attachments { id name mimeType sizeBytes url thumbnailUrl } } }";
    let files: Vec<super::files::FilePart> = files
        .iter()
        .map(|(name, mime, bytes)| (*name, bytes.as_slice(), *mime))
        .collect();
    let variables = json!({ "chatId": chat_id, "body": body });
    super::files::upload_at(&app.client, &app.address, token, query, variables, &files).await
}

/// axe-core's browser bundle, installed by `npm ci --prefix tests/browser-deps`. Missing, it
/// fails the test under `CHATDESK_REQUIRE_BROWSER=1` (CI), and skips the check otherwise.
pub fn axe_source() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("browser-deps/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) if std::env::var("CHATDESK_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => panic!(
            "CHATDESK_REQUIRE_BROWSER=1 but axe-core is missing at {} (npm ci --prefix tests/browser-deps)",
            path.display()
        ),
        Err(_) => {
            eprintln!(
                "skipped the accessibility check: no axe-core at {} (npm ci --prefix tests/browser-deps)",
                path.display()
            );
            None
        }
    }
}

/// Runs axe-core (injected into the page) on the whole document, open shadow roots included,
/// and returns the serious and critical violations, one readable line each.
pub async fn serious_accessibility_violations(page: &Page<'_>, axe: &str) -> Vec<String> {
    page.call(
        "Runtime.evaluate",
        json!({ "expression": axe, "returnByValue": true }),
    )
    .await;
    let found = page
        .eval(
            "axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations \
               .filter(v => v.impact === 'serious' || v.impact === 'critical') \
               .map(v => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map(n => JSON.stringify(n.target)).join(', ')}`))",
        )
        .await;
    found
        .as_array()
        .expect("axe answers a list")
        .iter()
        .map(|line| line.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A stand-in for a customer's website on an origin of its own: a tiny HTTP server that answers
/// every request with one page. Bound first, so that the chat server can be told its origin.
pub struct HostSite {
    pub origin: String,
    listener: tokio::net::TcpListener,
}

impl HostSite {
    pub async fn bind() -> HostSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        HostSite { origin, listener }
    }

    /// Answers every request with `html` until the test ends.
    pub fn serve(self, html: String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = self.listener;
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let html = html.clone();
                tokio::spawn(async move {
                    // A page load needs one request per connection: read its head, answer, close.
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                        html.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
    }
}

/// The admin page at `/admin666/`: its elements by `data-testid`, and signing in.
pub mod admin {
    use super::{Page, WAIT};
    use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

    /// The admin page's element with this `data-testid`.
    pub fn t(testid: &str) -> String {
        format!("document.querySelector('[data-testid=\"{testid}\"]')")
    }

    /// Every element with this `data-testid`, as an array.
    pub fn t_all(testid: &str) -> String {
        format!("[...document.querySelectorAll('[data-testid=\"{testid}\"]')]")
    }

    /// The list row of one chat.
    pub fn row(chat_id: &str) -> String {
        format!("document.querySelector('[data-testid=\"chat-row\"][data-chat-id=\"{chat_id}\"]')")
    }

    /// Opens the admin page at `path`, signed out, and sends the sign-in form with the test
    /// admin's email and `password`, as a person types them.
    pub async fn send_sign_in(page: &Page<'_>, app: &TestApp, path: &str, password: &str) {
        page.goto(&app.url(path)).await;
        page.wait_for(
            &format!(
                "!document.getElementById('login-view').hidden && document.activeElement === {}",
                t("login-email")
            ),
            WAIT,
        )
        .await;
        page.type_text(ADMIN_EMAIL).await;
        page.click(&t("login-password")).await;
        page.type_text(password).await;
        page.press("Enter", 0).await;
    }

    /// Signs in at `/admin666/` and waits until the page is live.
    pub async fn sign_in(page: &Page<'_>, app: &TestApp) {
        send_sign_in(page, app, "/admin666/", ADMIN_PASSWORD).await;
        page.wait_for(
            &format!(
                "!document.getElementById('app').hidden && {}.dataset.state === 'live'",
                t("conn-state")
            ),
            WAIT,
        )
        .await;
    }
}

/// The visitor widget on the demo page at `/`: its elements (inside its shadow root) by
/// `data-testid`, and what it keeps in localStorage.
pub mod widget {
    use super::{Page, WAIT};
    use crate::common::TestApp;
    use serde_json::{Value, json};

    /// The widget's shadow root.
    pub const ROOT: &str = "document.querySelector('chatdesk-widget').shadowRoot";

    /// The widget element with this `data-testid`.
    pub fn w(testid: &str) -> String {
        format!("{ROOT}.querySelector('[data-testid=\"{testid}\"]')")
    }

    /// Every widget element with this `data-testid`, as an array.
    pub fn w_all(testid: &str) -> String {
        format!("[...{ROOT}.querySelectorAll('[data-testid=\"{testid}\"]')]")
    }

    /// Opens the demo page and waits for the widget's launcher.
    pub async fn open_demo(page: &Page<'_>, app: &TestApp) {
        page.goto(&app.url("/")).await;
        page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    }

    /// Opens the panel with the launcher; waits until the message box has the focus.
    pub async fn open_panel(page: &Page<'_>) {
        page.click(&w("chatdesk-launcher")).await;
        page.wait_for(
            &format!(
                "{}.getAttribute('aria-expanded') === 'true' && !{p}.hidden && {ROOT}.activeElement === {} \
                 && {p}.getAnimations().length === 0",
                w("chatdesk-launcher"),
                w("chatdesk-input"),
                p = w("chatdesk-panel"),
            ),
            WAIT,
        )
        .await;
    }

    /// Types a message into the focused box and sends it with Enter; waits until the server has it.
    pub async fn send_text(page: &Page<'_>, text: &str) {
        page.type_text(text).await;
        page.press("Enter", 0).await;
        page.wait_for(
            &format!(
                "{}.some(m => m.dataset.sender === 'visitor' && m.dataset.state === 'sent' && m.textContent.includes({}))",
                w_all("chatdesk-message"),
                json!(text)
            ),
            WAIT,
        )
        .await;
    }

    /// The widget's record in localStorage: {chatId, token, asked}.
    pub async fn stored(page: &Page<'_>) -> Value {
        let raw = page
            .eval("localStorage.getItem('chatdesk:' + location.origin + '/')")
            .await;
        serde_json::from_str(raw.as_str().expect("the widget stored its chat")).expect("JSON")
    }
}
