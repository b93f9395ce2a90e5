//! The visitor widget in headless Chromium against the real server (issue 6, point 7): the
//! demo page at `/` embeds it, a visitor chats and sends files, an admin answers through the
//! API. Screenshots of each state go to `target/screenshots/widget/…` for a person to look at.

use crate::common;

use std::time::Duration;

use common::TestApp;
use common::browser::{
    Browser, HostSite, Page, axe_source, chromium_path, pdf_bytes, png_bytes, screenshot_dir,
    send_with_files, serious_accessibility_violations, spawn_browser_app, spawn_browser_app_with,
    write_file,
};
use serde_json::{Value, json};

/// Long enough for a slow CI machine, short of the widget's 7 s polling: what arrives within
/// it came over the subscription.
const LIVE: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(15);

const ROOT: &str = "document.querySelector('chatdesk-widget').shadowRoot";

/// The widget element with this `data-testid`.
fn w(testid: &str) -> String {
    format!("{ROOT}.querySelector('[data-testid=\"{testid}\"]')")
}

/// Every widget element with this `data-testid`, as an array.
fn w_all(testid: &str) -> String {
    format!("[...{ROOT}.querySelectorAll('[data-testid=\"{testid}\"]')]")
}

/// The widget's record in localStorage: {chatId, token, asked}.
async fn stored(page: &Page<'_>) -> Value {
    let raw = page
        .eval("localStorage.getItem('chatdesk:' + location.origin + '/')")
        .await;
    serde_json::from_str(raw.as_str().expect("the widget stored its chat")).expect("JSON")
}

async fn open_demo(page: &Page<'_>, app: &TestApp) {
    page.goto(&app.url("/")).await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
}

async fn open_panel(page: &Page<'_>) {
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
async fn send_text(page: &Page<'_>, text: &str) {
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

fn assert_no_script_errors(page: &Page<'_>) {
    let errors = page.script_errors();
    assert!(errors.is_empty(), "script errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_sends_text_an_image_and_a_pdf_and_still_sees_them_after_a_reload() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_browser_app().await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/send-and-reload");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "brake-photo.png", &png_bytes(640, 480));
    let invoice = write_file(files.path(), "invoice.pdf", &pdf_bytes("Invoice 1042"));

    open_demo(&page, &app).await;
    page.screenshot(&shots.join("1-closed.png")).await;
    open_panel(&page).await;
    page.screenshot(&shots.join("2-open-empty.png")).await;

    send_text(&page, "Hello! My rear brake squeaks when it rains.").await;
    // After the first message, name and email are asked, optionally.
    page.wait_for(&format!("!{}.hidden", w("chatdesk-details")), WAIT)
        .await;
    page.screenshot(&shots.join("3-sent-and-asked.png")).await;
    page.click(&w("chatdesk-name")).await;
    page.type_text("Ada Lovelace").await;
    page.click(&w("chatdesk-email")).await;
    page.type_text("ada@example.com").await;
    page.click(&w("chatdesk-details-save")).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-details")), WAIT)
        .await;

    page.set_files(&w("chatdesk-file-input"), &[&photo, &invoice])
        .await;
    page.wait_for(
        &format!("{}.length === 2", w_all("chatdesk-pending-file")),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("4-files-attached.png")).await;
    page.click(&w("chatdesk-send")).await;
    let with_files = format!(
        "{}.find(m => m.dataset.state === 'sent' && m.querySelectorAll('[data-testid=chatdesk-attachment]').length === 2)",
        w_all("chatdesk-message")
    );
    page.wait_for(&with_files, WAIT).await;
    // The image shows as a thumbnail that really loaded; the PDF as a card with a download link.
    let thumbnail_loaded = format!(
        "(() => {{ const img = ({with_files}).querySelector('img'); return img && img.complete && img.naturalWidth > 0; }})()"
    );
    page.wait_for(&thumbnail_loaded, WAIT).await;
    let cards = page
        .eval(&format!(
            "[...({with_files}).querySelectorAll('[data-testid=chatdesk-attachment]')].map(a => ({{ text: a.textContent, href: a.getAttribute('href') }}))"
        ))
        .await;
    assert!(
        cards[1]["text"].as_str().unwrap().contains("invoice.pdf"),
        "{cards}"
    );
    let pdf_href = cards[1]["href"]
        .as_str()
        .expect("the PDF card links to the file");
    let download = page
        .eval(&format!(
            "fetch({}).then(async r => ({{ status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength }}))",
            json!(pdf_href)
        ))
        .await;
    assert_eq!(download["status"], 200, "{download}");
    assert_eq!(download["type"], "application/pdf", "{download}");
    assert_eq!(
        download["size"],
        pdf_bytes("Invoice 1042").len(),
        "{download}"
    );
    page.screenshot(&shots.join("5-files-sent.png")).await;

    // The server has the whole thread, and the visitor's name.
    let record = stored(&page).await;
    let chat_id = record["chatId"].as_str().expect("a chat id").to_owned();
    assert!(
        record["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("vt_")),
        "{record}"
    );
    let admin = app.admin_token().await;
    let data = app
        .data(
            "query($id: UUID!) { chat(id: $id) { visitor { name email } messages(last: 10) { edges { node { body attachments { name mimeType } } } } } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    let chat = &data["chat"];
    assert_eq!(chat["visitor"]["name"], "Ada Lovelace", "{chat}");
    assert_eq!(chat["visitor"]["email"], "ada@example.com", "{chat}");
    let edges = chat["messages"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{chat}");
    assert_eq!(
        edges[1]["node"]["attachments"],
        json!([
            { "name": "brake-photo.png", "mimeType": "image/png" },
            { "name": "invoice.pdf", "mimeType": "application/pdf" },
        ])
    );

    // A reload continues the same chat: same thread, nothing asked again.
    page.reload().await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    open_panel(&page).await;
    page.wait_for(&format!("{}.length === 2", w_all("chatdesk-message")), WAIT)
        .await;
    page.wait_for(&thumbnail_loaded, WAIT).await;
    let texts = page
        .eval(&format!(
            "{}.map(m => m.textContent)",
            w_all("chatdesk-message")
        ))
        .await;
    assert!(
        texts[0].as_str().unwrap().contains("rear brake squeaks"),
        "{texts}"
    );
    assert!(
        texts[1].as_str().unwrap().contains("invoice.pdf"),
        "{texts}"
    );
    assert_eq!(stored(&page).await["chatId"], json!(chat_id));
    assert_eq!(
        page.eval(&format!("{}.hidden", w("chatdesk-details")))
            .await,
        json!(true)
    );
    page.screenshot(&shots.join("6-after-reload.png")).await;
    assert_no_script_errors(&page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reply_arrives_live_and_raises_the_badge_while_the_panel_is_closed() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_browser_app().await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/admin-reply");

    open_demo(&page, &app).await;
    open_panel(&page).await;
    send_text(&page, "Is my bike ready to collect?").await;
    page.click(&w("chatdesk-details-skip")).await;
    let chat_id = stored(&page).await["chatId"]
        .as_str()
        .expect("a chat id")
        .to_owned();
    let admin = app.admin_token().await;

    // The reply comes over the subscription, while the panel is open.
    app.send(&admin, &chat_id, "Yes — it's ready from 4 pm.")
        .await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'received' && m.textContent.includes('ready from 4 pm'))",
            w_all("chatdesk-message")
        ),
        LIVE,
    )
    .await;
    // Answering reads: the visitor's message now says "Read".
    let read = |text: &str| {
        format!(
            "{}.some(m => m.dataset.sender === 'visitor' && m.dataset.state === 'read' && m.textContent.includes({}))",
            w_all("chatdesk-message"),
            json!(text)
        )
    };
    page.wait_for(&read("ready to collect"), LIVE).await;
    // The admin's typing shows.
    app.data(
        "mutation($chatId: UUID!) { setTyping(chatId: $chatId, typing: true) }",
        json!({ "chatId": chat_id }),
        Some(&admin),
    )
    .await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-typing")), LIVE)
        .await;
    page.screenshot(&shots.join("1-admin-typing.png")).await;
    // A later message is read when the admin opens the chat (a READ event).
    send_text(&page, "Great, see you then.").await;
    app.data(
        "mutation($chatId: UUID!) { markChatRead(chatId: $chatId) { id } }",
        json!({ "chatId": chat_id }),
        Some(&admin),
    )
    .await;
    page.wait_for(&read("see you then"), LIVE).await;
    page.screenshot(&shots.join("2-reply-and-read.png")).await;

    // Closed panel: a new reply raises the badge; focus went back to the launcher.
    page.click(&w("chatdesk-close")).await;
    page.wait_for(
        &format!(
            "{}.hidden && {ROOT}.activeElement === {}",
            w("chatdesk-panel"),
            w("chatdesk-launcher")
        ),
        WAIT,
    )
    .await;
    app.send(&admin, &chat_id, "We close at 6 today.").await;
    page.wait_for(
        &format!(
            "!{b}.hidden && {b}.textContent === '1'",
            b = w("chatdesk-badge")
        ),
        LIVE,
    )
    .await;
    let label = page
        .eval(&format!(
            "{}.getAttribute('aria-label')",
            w("chatdesk-launcher")
        ))
        .await;
    assert_eq!(label, "Open chat, 1 unread message");
    page.screenshot(&shots.join("3-badge-while-closed.png"))
        .await;

    // Opening shows it and reads it: the badge goes, and the server's count for the visitor
    // drops to zero.
    open_panel(&page).await;
    page.wait_for(
        &format!(
            "{}.hidden && {}.some(m => m.textContent.includes('close at 6'))",
            w("chatdesk-badge"),
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    let token = stored(&page).await["token"].as_str().unwrap().to_owned();
    let unread = wait_for_value(WAIT, || async {
        let data = app
            .data(
                "query($id: UUID!) { chat(id: $id) { unreadCount } }",
                json!({ "id": chat_id }),
                Some(&token),
            )
            .await;
        (data["chat"]["unreadCount"] == 0).then_some(())
    })
    .await;
    assert!(
        unread.is_some(),
        "the visitor's unread count stayed above 0"
    );
    page.screenshot(&shots.join("4-opened-again.png")).await;

    // Esc closes the panel.
    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    assert_no_script_errors(&page);
}

/// Polls `check` every 100 ms until it gives a value or `timeout` passes.
async fn wait_for_value<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_shows_the_servers_reason() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_browser_app().await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/refused-file");
    let files = tempfile::tempdir().expect("temp dir");
    // A Windows program under an image's name, and a web page under a text file's name: the
    // names pass the widget's own check, the content does not pass the server's.
    let mut program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    program.resize(4096, 0);
    let refused = [
        ("setup.png", "image/png", program),
        (
            "notes.txt",
            "text/plain",
            b"<!doctype html><html><body><script>alert(1)</script></body></html>".to_vec(),
        ),
    ];

    open_demo(&page, &app).await;
    open_panel(&page).await;
    send_text(&page, "Here is the file you asked for.").await;
    page.click(&w("chatdesk-details-skip")).await;
    let token = stored(&page).await["token"].as_str().unwrap().to_owned();
    let chat_id = stored(&page).await["chatId"].as_str().unwrap().to_owned();

    for (i, (name, mime, bytes)) in refused.iter().enumerate() {
        // What the server says about this file, asked directly.
        let answer =
            send_with_files(&app, &token, &chat_id, None, &[(name, mime, bytes.clone())]).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "UNSUPPORTED_FILE_TYPE",
            "{answer}"
        );
        let reason = answer["errors"][0]["message"].as_str().unwrap().to_owned();

        let path = write_file(files.path(), name, bytes);
        page.set_files(&w("chatdesk-file-input"), &[&path]).await;
        page.wait_for(
            &format!("{}.length === 1", w_all("chatdesk-pending-file")),
            WAIT,
        )
        .await;
        page.click(&w("chatdesk-send")).await;
        let failed = format!(
            "{}.filter(m => m.dataset.state === 'failed')",
            w_all("chatdesk-message")
        );
        page.wait_for(&format!("{failed}.length === {}", i + 1), WAIT)
            .await;
        let shown = page
            .eval(&format!(
                "{failed}[{i}].querySelector('[data-testid=chatdesk-message-error]').textContent"
            ))
            .await;
        let shown = shown.as_str().expect("an error under the message");
        assert!(
            shown.to_lowercase().contains(&reason.to_lowercase()),
            "the widget shows {shown:?}, the server said {reason:?}"
        );
        // Sending the same file again cannot help: it can be removed, not retried.
        assert_eq!(
            page.eval(&format!(
                "[!!{failed}[{i}].querySelector('[data-testid=chatdesk-retry]'), !!{failed}[{i}].querySelector('[data-testid=chatdesk-discard]')]"
            ))
            .await,
            json!([false, true])
        );
        page.screenshot(&shots.join(format!("{}-{name}.png", i + 1)))
            .await;
    }
    assert_no_script_errors(&page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_375_px_wide_screen_the_panel_is_full_screen() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_browser_app().await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(375, 740).await;
    let shots = screenshot_dir("widget/phone");

    open_demo(&page, &app).await;
    page.screenshot(&shots.join("1-closed.png")).await;
    let launcher = page
        .eval(&format!(
            "(() => {{ const r = {}.getBoundingClientRect(); return [r.right, r.bottom]; }})()",
            w("chatdesk-launcher")
        ))
        .await;
    // Bottom-right corner.
    assert!(launcher[0].as_f64().unwrap() > 375.0 - 40.0, "{launcher}");
    assert!(launcher[1].as_f64().unwrap() > 740.0 - 40.0, "{launcher}");

    open_panel(&page).await;
    // Measured once its opening animation is over.
    page.wait_for(
        &format!(
            "(() => {{ const r = {}.getBoundingClientRect(); return r.left === 0 && r.top === 0 && r.width === 375 && r.height === 740; }})()",
            w("chatdesk-panel")
        ),
        WAIT,
    )
    .await;
    // The launcher gives way; the panel's own close button closes it.
    assert_eq!(
        page.eval(&format!(
            "{}.getClientRects().length",
            w("chatdesk-launcher")
        ))
        .await,
        json!(0)
    );
    send_text(&page, "Do you fix e-bikes?").await;
    page.screenshot(&shots.join("2-open-full-screen.png")).await;
    page.click(&w("chatdesk-close")).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    assert_no_script_errors(&page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_has_no_serious_accessibility_violations() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
    let app = spawn_browser_app().await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/accessibility");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "chain.png", &png_bytes(400, 300));

    open_demo(&page, &app).await;
    let closed = serious_accessibility_violations(&page, &axe).await;
    assert!(closed.is_empty(), "with the panel closed: {closed:#?}");

    // A thread with every kind of thing in it: text, an image, a document, an admin reply,
    // a failed message with its retry, the details form.
    open_panel(&page).await;
    send_text(&page, "My chain keeps slipping.").await;
    page.set_files(&w("chatdesk-file-input"), &[&photo]).await;
    page.wait_for(
        &format!("{}.length === 1", w_all("chatdesk-pending-file")),
        WAIT,
    )
    .await;
    page.click(&w("chatdesk-send")).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.state === 'sent' && m.querySelector('img'))",
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    let record = stored(&page).await;
    let chat_id = record["chatId"].as_str().unwrap();
    let admin = app.admin_token().await;
    let reply = send_with_files(
        &app,
        &admin,
        chat_id,
        Some("Here is our price list."),
        &[("prices.pdf", "application/pdf", pdf_bytes("Prices"))],
    )
    .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.textContent.includes('prices.pdf'))",
            w_all("chatdesk-message")
        ),
        LIVE,
    )
    .await;
    page.screenshot(&shots.join("1-thread.png")).await;
    let open = serious_accessibility_violations(&page, &axe).await;
    assert!(open.is_empty(), "with the panel open: {open:#?}");
    assert_no_script_errors(&page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_another_sites_origin_the_widget_chats_live_and_follows_its_options() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    // The customer's site runs elsewhere; the chat server lets that origin in.
    let site = HostSite::bind().await;
    let site_origin = site.origin.clone();
    let site_url = format!("{}/", site.origin);
    let app = spawn_browser_app_with(|settings| {
        settings.allowed_origins = api::config::AllowedOrigins::List(vec![site_origin]);
    })
    .await;
    site.serve(format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another shop</title>
<script src="{}/widget/chatdesk.js" defer data-position="left" data-accent="#8a2be2"
        data-title="Another shop" data-hide-selector=".to-top"></script></head>
<body><main><h1>Another shop</h1><p>Our own page, on our own origin.</p></main>
<button class="to-top" style="position:fixed;bottom:20px;left:20px">Top</button></body></html>"##,
        app.address
    ));
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("widget/other-origin");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "frame.png", &png_bytes(320, 240));

    page.goto(&site_url).await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    // The options: bottom-left, the accent colour, the title; the host's own button gives way.
    let layout = page
        .eval(&format!(
            "(() => {{ const r = {l}.getBoundingClientRect(); return {{ left: r.left, bg: getComputedStyle({l}).backgroundColor, \
             title: {ROOT}.querySelector('h2').textContent, hostButton: getComputedStyle(document.querySelector('.to-top')).display }}; }})()",
            l = w("chatdesk-launcher")
        ))
        .await;
    assert_eq!(layout["left"], 20, "{layout}");
    assert_eq!(layout["bg"], "rgb(138, 43, 226)", "{layout}");
    assert_eq!(layout["title"], "Another shop", "{layout}");
    assert_eq!(layout["hostButton"], "none", "{layout}");

    open_panel(&page).await;
    page.type_text("Do you ship frames abroad?").await;
    page.set_files(&w("chatdesk-file-input"), &[&photo]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    page.press("Enter", 0).await;
    let thumbnail_loaded = format!(
        "{}.some(m => m.dataset.state === 'sent' && m.querySelector('img') && m.querySelector('img').naturalWidth > 0)",
        w_all("chatdesk-message")
    );
    page.wait_for(&thumbnail_loaded, WAIT).await;
    // The chat is kept under the API's base, whichever site the visitor is on.
    let record = page
        .eval(&format!(
            "JSON.parse(localStorage.getItem('chatdesk:' + {}))",
            json!(format!("{}/", app.address))
        ))
        .await;
    let chat_id = record["chatId"]
        .as_str()
        .expect("the widget keeps its chat");

    // The subscription works across origins: the reply arrives live.
    let admin = app.admin_token().await;
    app.send(&admin, chat_id, "Yes, to most of Europe.").await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.textContent.includes('most of Europe'))",
            w_all("chatdesk-message")
        ),
        LIVE,
    )
    .await;
    page.screenshot(&shots.join("1-left-with-accent.png")).await;
    assert_no_script_errors(&page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_websocket_is_refused_the_widget_polls_and_still_shows_files() {
    let Some(chromium) = chromium_path() else {
        return;
    };
    // A public URL that is not where the browser reaches the server: the WebSocket refuses
    // the page's origin and the signed links point elsewhere, as behind a misconfigured proxy.
    let app = spawn_browser_app_with(|settings| {
        settings.public_url = "http://127.0.0.1:9".to_owned();
        settings.allowed_origins = api::config::AllowedOrigins::List(vec![]);
    })
    .await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/polling");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "pedal.png", &png_bytes(300, 300));

    open_demo(&page, &app).await;
    open_panel(&page).await;
    page.type_text("Are the pedals in stock?").await;
    page.set_files(&w("chatdesk-file-input"), &[&photo]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    page.press("Enter", 0).await;
    // The thumbnail's signed link leads nowhere; the widget fetches it with the chat token.
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.state === 'sent' && m.querySelector('img') && m.querySelector('img').naturalWidth > 0)",
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    let chat_id = stored(&page).await["chatId"]
        .as_str()
        .expect("a chat id")
        .to_owned();
    let admin = app.admin_token().await;
    app.send(&admin, &chat_id, "Yes, three pairs left.").await;
    // The widget polls every 7 s while the socket is down, whatever its reconnect attempts do.
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.textContent.includes('three pairs'))",
            w_all("chatdesk-message")
        ),
        Duration::from_secs(12),
    )
    .await;
    // The thread follows the newest message, even though the photo above it grew the thread
    // when it loaded.
    page.wait_for(
        &format!(
            "(() => {{ const log = {}.getBoundingClientRect(); const last = {}.pop().getBoundingClientRect(); \
             return last.bottom <= log.bottom + 1 && last.top >= log.top; }})()",
            w("chatdesk-thread"),
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-reply-by-polling.png")).await;
}
