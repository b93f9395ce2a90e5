//! The visitor widget in headless Chromium against the real server (issue 6, point 7): the
//! demo page at `/` embeds it, a visitor chats and sends files, an admin answers through the
//! API. Screenshots of each state go to `target/screenshots/widget/…` for a person to look at.

use crate::common;

use std::time::Duration;

use common::browser::widget::{ROOT, open_demo, open_panel, send_text, stored, w, w_all};
use common::browser::{
    HostSite, LIVE, Page, WAIT, axe_source, browser_and_app, browser_and_app_with, pdf_bytes,
    png_bytes, screenshot_dir, send_with_files, serious_accessibility_violations,
    spawn_browser_app, write_file,
};
use common::{TestApp, eventually_some};
use serde_json::json;

/// The demo page's own title (clients/demo/index.html).
const DEMO_TITLE: &str = "Fernwood Cycles — bicycle repairs and tune-ups";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_sends_text_an_image_and_a_pdf_and_still_sees_them_after_a_reload() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
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
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reply_arrives_live_and_raises_the_badge_while_the_panel_is_closed() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
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
    assert_eq!(label, "Open chat, 1 unread");
    // The page's title counts it too, for a visitor on another tab or window.
    assert_eq!(
        page.eval("document.title").await,
        format!("(1) {DEMO_TITLE}")
    );
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
    let unread = eventually_some(WAIT, || async {
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
    assert_eq!(page.eval("document.title").await, DEMO_TITLE);
    page.screenshot(&shots.join("4-opened-again.png")).await;

    // Esc closes the panel.
    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_shows_the_servers_reason() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
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
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_375_px_wide_screen_the_panel_is_full_screen() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
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
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_has_no_serious_accessibility_violations() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
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
    // The image viewer over the panel.
    page.click(&format!("{ROOT}.querySelector('a.thumb')"))
        .await;
    page.wait_for(&format!("!{}.hidden", w("chatdesk-viewer")), WAIT)
        .await;
    let viewer = serious_accessibility_violations(&page, &axe).await;
    assert!(viewer.is_empty(), "with the image viewer open: {viewer:#?}");
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_another_sites_origin_the_widget_chats_live_and_follows_its_options() {
    // The customer's site runs elsewhere; the chat server lets that origin in.
    let site = HostSite::bind().await;
    let site_origin = site.origin.clone();
    let site_url = format!("{}/", site.origin);
    let Some((app, browser)) = browser_and_app_with(|settings| {
        settings.allowed_origins = api::config::AllowedOrigins::List(vec![site_origin]);
    })
    .await
    else {
        return;
    };
    site.serve(format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another shop</title>
<script src="{}/widget/chatdesk.js" defer data-position="left" data-accent="#8a2be2"
        data-title="Another shop" data-hide-selector=".to-top"></script></head>
<body><main><h1>Another shop</h1><p>Our own page, on our own origin.</p></main>
<button class="to-top" style="position:fixed;bottom:20px;left:20px">Top</button></body></html>"##,
        app.address
    ));
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
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_websocket_is_refused_the_widget_polls_and_still_shows_files() {
    // A public URL that is not where the browser reaches the server: the WebSocket refuses
    // the page's origin and the signed links point elsewhere, as behind a misconfigured proxy.
    let Some((app, browser)) = browser_and_app_with(|settings| {
        settings.public_url = "http://127.0.0.1:9".to_owned();
        settings.allowed_origins = api::config::AllowedOrigins::List(vec![]);
    })
    .await
    else {
        return;
    };
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

/// The widget's size budget: what every page view of every host site downloads. Measured as
/// served, gzipped at the highest level (as `gzip -9` does).
#[tokio::test]
async fn the_served_widget_stays_under_15_kb_gzipped() {
    use std::io::Write;
    let app = spawn_browser_app().await;
    let script = app
        .client
        .get(app.url("/widget/chatdesk.js"))
        .send()
        .await
        .expect("the widget is served")
        .bytes()
        .await
        .expect("its body");
    assert!(script.len() > 10_000, "that is not the widget");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&script).expect("gzip");
    let size = gzip.finish().expect("gzip").len();
    eprintln!("chatdesk.js: {} bytes, {size} bytes gzipped", script.len());
    assert!(
        size < 15 * 1024,
        "chatdesk.js is {size} bytes gzipped, over its 15 KB (15,360 bytes) budget"
    );
}

/// Every message of the chat as the team sees it: (body, number of attachments).
async fn thread_on_server(app: &TestApp, chat_id: &str) -> Vec<(String, usize)> {
    let admin = app.admin_token().await;
    let data = app
        .data(
            "query($id: UUID!) { chat(id: $id) { messages(last: 50) { edges { node { body attachments { id } } } } } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    data["chat"]["messages"]["edges"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|e| {
            (
                e["node"]["body"].as_str().unwrap_or_default().to_owned(),
                e["node"]["attachments"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

/// Requests to the chat server fail (the page and the widget's script still load), as when
/// the server or the way to it is down. The WebSocket's URL is under /graphql too.
async fn block_chat_server(page: &Page<'_>, blocked: bool) {
    page.call("Network.enable", json!({})).await;
    let urls: Vec<&str> = if blocked { vec!["*/graphql*"] } else { vec![] };
    page.call("Network.setBlockedURLs", json!({ "urls": urls }))
        .await;
}

/// The browser's own offline switch: `navigator.onLine` and the online/offline events follow.
async fn set_offline(page: &Page<'_>, offline: bool) {
    page.call("Network.enable", json!({})).await;
    page.call(
        "Network.emulateNetworkConditions",
        json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
    )
    .await;
}

/// The visitor's message with this text, in this state (`failed`, `sent`…).
fn message_in_state(text: &str, state: &str) -> String {
    format!(
        "{}.find(m => m.dataset.sender === 'visitor' && m.dataset.state === {} && m.textContent.includes({}))",
        w_all("chatdesk-message"),
        json!(state),
        json!(text)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_message_survives_a_reload_and_is_delivered_once_when_the_server_is_back() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/outbox");

    open_demo(&page, &app).await;
    open_panel(&page).await;
    send_text(&page, "Do you sell inner tubes?").await;
    page.click(&w("chatdesk-details-skip")).await;
    let chat_id = stored(&page).await["chatId"]
        .as_str()
        .expect("a chat id")
        .to_owned();

    // The server cannot be reached: the message waits, saying so.
    block_chat_server(&page, true).await;
    page.click(&w("chatdesk-input")).await;
    page.type_text("Size 28 x 1.75, two of them.").await;
    page.press("Enter", 0).await;
    let waiting = message_in_state("two of them", "failed");
    page.wait_for(&waiting, WAIT).await;
    let said = page
        .eval(&format!(
            "({waiting}).querySelector('[data-testid=chatdesk-message-error]').textContent"
        ))
        .await;
    assert!(
        said.as_str()
            .unwrap_or_default()
            .contains("connection is back"),
        "{said}"
    );
    // And half a sentence is typed, not sent.
    page.type_text("Also, do you open on").await;
    page.screenshot(&shots.join("1-waiting.png")).await;

    // A reload (still without the server) keeps both: the unsent message and the draft.
    page.reload().await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    open_panel(&page).await;
    page.wait_for(
        &format!(
            "{}.value === 'Also, do you open on' && {}",
            w("chatdesk-input"),
            message_in_state("two of them", "failed")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("2-after-reload.png")).await;
    assert_eq!(
        thread_on_server(&app, &chat_id).await.len(),
        1,
        "nothing reached the server yet"
    );

    // The server is back: the widget sends it by itself (on reconnecting), exactly once.
    block_chat_server(&page, false).await;
    page.wait_for(&message_in_state("two of them", "sent"), WAIT)
        .await;
    page.screenshot(&shots.join("3-delivered.png")).await;
    // Whatever retries are still in flight have had time to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let thread = thread_on_server(&app, &chat_id).await;
    assert_eq!(
        thread
            .iter()
            .filter(|(b, _)| b.contains("two of them"))
            .count(),
        1,
        "{thread:?}"
    );
    assert_eq!(thread.len(), 2, "{thread:?}");

    // Offline in the browser's sense: sent as soon as it is back online, not at the next poll,
    // with its file (kept while the page lives).
    set_offline(&page, true).await;
    page.click(&w("chatdesk-input")).await;
    page.eval(&format!("{}.value = ''", w("chatdesk-input")))
        .await;
    page.type_text("Saturdays?").await;
    let files = tempfile::tempdir().expect("temp dir");
    let tube = write_file(files.path(), "tube.png", &png_bytes(200, 150));
    page.set_files(&w("chatdesk-file-input"), &[&tube]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    page.press("Enter", 0).await;
    page.wait_for(&message_in_state("Saturdays?", "failed"), WAIT)
        .await;
    set_offline(&page, false).await;
    page.wait_for(&message_in_state("Saturdays?", "sent"), LIVE)
        .await;

    // Delivered messages are no longer kept: a reload shows the three, once each.
    page.reload().await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    open_panel(&page).await;
    page.wait_for(
        &format!(
            "{a}.length === 3 && {a}.every(m => m.dataset.state === 'sent' || m.dataset.state === 'read')",
            a = w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    assert_eq!(stored(&page).await["out"], json!([]));
    let thread = thread_on_server(&app, &chat_id).await;
    assert_eq!(thread.len(), 3, "{thread:?}");
    assert_eq!(thread[2], ("Saturdays?".to_owned(), 1), "{thread:?}");
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_file_is_refused_the_text_can_still_be_sent_or_edited() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/refused-file-with-text");
    let files = tempfile::tempdir().expect("temp dir");
    // A program under an image's name: the widget lets it through, the server does not.
    let mut program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    program.resize(4096, 0);
    let fake = write_file(files.path(), "receipt.png", &program);

    open_demo(&page, &app).await;
    open_panel(&page).await;
    page.type_text("My receipt, and: can you true a wheel by Friday?")
        .await;
    page.set_files(&w("chatdesk-file-input"), &[&fake]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    page.click(&w("chatdesk-send")).await;
    let refused = message_in_state("true a wheel", "failed");
    page.wait_for(&refused, WAIT).await;
    // Not retried (it cannot help), but the words are not lost with the file.
    assert_eq!(
        page.eval(&format!(
            "['retry', 'send-text-only', 'edit', 'discard'].map(t => !!({refused}).querySelector(`[data-testid=chatdesk-${{t}}]`))"
        ))
        .await,
        json!([false, true, true, true])
    );
    page.screenshot(&shots.join("1-refused.png")).await;

    page.click(&format!(
        "({refused}).querySelector('[data-testid=chatdesk-send-text-only]')"
    ))
    .await;
    page.wait_for(&message_in_state("true a wheel", "sent"), WAIT)
        .await;
    page.click(&w("chatdesk-details-skip")).await;
    let chat_id = stored(&page).await["chatId"]
        .as_str()
        .expect("a chat id")
        .to_owned();
    assert_eq!(
        thread_on_server(&app, &chat_id).await,
        vec![(
            "My receipt, and: can you true a wheel by Friday?".to_owned(),
            0
        )]
    );
    page.screenshot(&shots.join("2-text-sent.png")).await;

    // Edit takes the message back into the box, with its files, to change it.
    page.click(&w("chatdesk-input")).await;
    page.type_text("Here it is again").await;
    page.set_files(&w("chatdesk-file-input"), &[&fake]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    page.press("Enter", 0).await;
    let again = message_in_state("Here it is again", "failed");
    page.wait_for(&again, WAIT).await;
    page.click(&format!(
        "({again}).querySelector('[data-testid=chatdesk-edit]')"
    ))
    .await;
    page.wait_for(
        &format!(
            "{}.value === 'Here it is again' && {}.length === 1 && !{}.some(m => m.textContent.includes('Here it is again')) \
             && {ROOT}.activeElement === {}",
            w("chatdesk-input"),
            w_all("chatdesk-pending-file"),
            w_all("chatdesk-message"),
            w("chatdesk-input")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("3-back-in-the-box.png")).await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_still_closes_the_panel_after_retry_and_after_remove() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;

    open_demo(&page, &app).await;
    open_panel(&page).await;
    block_chat_server(&page, true).await;
    page.type_text("Is the shop open today?").await;
    page.press("Enter", 0).await;
    let failed = message_in_state("shop open today", "failed");
    page.wait_for(&failed, WAIT).await;

    // Retry redraws the message (it fails again): focus stays in the panel, Esc closes it.
    page.click(&format!(
        "({failed}).querySelector('[data-testid=chatdesk-retry]')"
    ))
    .await;
    page.wait_for(
        &format!(
            "({failed}) && {ROOT}.activeElement && {}.contains({ROOT}.activeElement)",
            w("chatdesk-panel")
        ),
        WAIT,
    )
    .await;
    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;

    // Remove takes the message away: the same.
    open_panel(&page).await;
    page.click(&format!(
        "({failed}).querySelector('[data-testid=chatdesk-discard]')"
    ))
    .await;
    page.wait_for(
        &format!(
            "!({failed}) && {ROOT}.activeElement === {}",
            w("chatdesk-input")
        ),
        WAIT,
    )
    .await;
    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_open_in_a_viewer_with_arrow_keys_and_a_pdf_opens_in_a_new_tab() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/viewer");
    let files = tempfile::tempdir().expect("temp dir");
    let front = write_file(files.path(), "front-wheel.png", &png_bytes(640, 480));
    let rear = write_file(files.path(), "rear-wheel.png", &png_bytes(480, 640));
    let invoice = write_file(files.path(), "invoice.pdf", &pdf_bytes("Invoice 7"));

    open_demo(&page, &app).await;
    open_panel(&page).await;
    page.type_text("Both wheels, and the invoice.").await;
    page.set_files(&w("chatdesk-file-input"), &[&front, &rear, &invoice])
        .await;
    page.wait_for(
        &format!("{}.length === 3", w_all("chatdesk-pending-file")),
        WAIT,
    )
    .await;
    page.press("Enter", 0).await;
    let thumbs = format!("[...{ROOT}.querySelectorAll('a.thumb')]");
    page.wait_for(
        &format!(
            "{thumbs}.length === 2 && {thumbs}.every(a => a.querySelector('img').naturalWidth > 0)"
        ),
        WAIT,
    )
    .await;
    page.click(&w("chatdesk-details-skip")).await;

    // A thumbnail tells its name and size when focused (and hovered).
    page.eval(&format!("{thumbs}[0].focus()")).await;
    let caption = page
        .eval(&format!(
            "(i => [i.textContent, getComputedStyle(i).opacity])({thumbs}[0].querySelector('i'))"
        ))
        .await;
    assert!(
        caption[0]
            .as_str()
            .unwrap()
            .starts_with("front-wheel.png, "),
        "{caption}"
    );
    assert_eq!(caption[1], "1", "{caption}");
    page.screenshot(&shots.join("1-thumbnail-caption.png"))
        .await;

    // A click opens the viewer (it does not download): the full picture, its name and size.
    page.click(&format!("{thumbs}[0]")).await;
    let viewer = w("chatdesk-viewer");
    let showing = |name: &str, width: u32| {
        format!(
            "!{viewer}.hidden && {viewer}.querySelector('b').textContent === {} && {viewer}.querySelector('img').naturalWidth === {width}",
            json!(name)
        )
    };
    page.wait_for(&showing("front-wheel.png", 640), WAIT).await;
    let info = page
        .eval(&format!(
            "[{viewer}.querySelector('small').textContent, {d}.getAttribute('download'), {d}.href]",
            d = w("chatdesk-viewer-download")
        ))
        .await;
    assert!(info[0].as_str().unwrap().contains("1/2"), "{info}");
    assert_eq!(info[1], "front-wheel.png", "{info}");
    page.screenshot(&shots.join("2-viewer.png")).await;

    // Arrow keys go between the chat's images, round the end.
    page.press("ArrowRight", 0).await;
    page.wait_for(&showing("rear-wheel.png", 480), WAIT).await;
    page.screenshot(&shots.join("3-next-image.png")).await;
    page.press("ArrowRight", 0).await;
    page.wait_for(&showing("front-wheel.png", 640), WAIT).await;
    page.press("ArrowLeft", 0).await;
    page.wait_for(&showing("rear-wheel.png", 480), WAIT).await;

    // Escape closes the viewer first (focus back on the thumbnail), then the panel.
    page.press("Escape", 0).await;
    page.wait_for(
        &format!(
            "{viewer}.hidden && !{}.hidden && {ROOT}.activeElement === {thumbs}[0]",
            w("chatdesk-panel")
        ),
        WAIT,
    )
    .await;

    // The PDF opens in a new tab (the server sends it as a download: the widget shows it from
    // a blob); its link alone would save it.
    let pdf_card = format!(
        "{}.find(a => a.textContent.includes('invoice.pdf'))",
        w_all("chatdesk-attachment")
    );
    let pdf = page
        .eval(&format!(
            "(a => [a.target, a.hasAttribute('download')])({pdf_card})"
        ))
        .await;
    assert_eq!(pdf, json!(["_blank", false]));
    page.click(&pdf_card).await;
    let tab = eventually_some(WAIT, || async {
        let targets = page.call("Target.getTargets", json!({})).await;
        targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with("blob:"))
            })
            .map(|t| t["url"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert!(tab.is_some(), "no new tab with the PDF");

    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_375_px_every_target_is_44_px_and_tab_reaches_attach_before_send() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(375, 667).await;
    let shots = screenshot_dir("widget/touch-targets");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "saddle.png", &png_bytes(300, 200));

    open_demo(&page, &app).await;
    open_panel(&page).await;
    // Everything a visitor may have to touch: the details form, a failed message with its
    // Retry and Remove, a file waiting in the tray, the header's buttons.
    send_text(&page, "Do you have this saddle?").await;
    block_chat_server(&page, true).await;
    page.click(&w("chatdesk-input")).await;
    page.type_text("In black?").await;
    page.press("Enter", 0).await;
    page.wait_for(&message_in_state("In black?", "failed"), WAIT)
        .await;
    page.set_files(&w("chatdesk-file-input"), &[&photo]).await;
    page.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    let small = page
        .eval(&format!(
            "[...{p}.querySelectorAll('button, input, textarea, a[href]')].filter(e => e.getClientRects().length && e.tabIndex >= 0) \
             .map(e => [e.dataset.testid || e.getAttribute('aria-label') || e.textContent, e.getBoundingClientRect()]) \
             .filter(([, r]) => r.width < 44 || r.height < 44).map(([n, r]) => `${{n}}: ${{r.width}}×${{r.height}}`)",
            p = w("chatdesk-panel")
        ))
        .await;
    assert_eq!(small, json!([]), "targets under 44 × 44 px at 375 px");
    page.screenshot(&shots.join("1-phone-targets.png")).await;

    // Tab from the text goes to attach, then to send.
    page.click(&w("chatdesk-input")).await;
    let focused = format!("{ROOT}.activeElement && {ROOT}.activeElement.dataset.testid");
    page.press("Tab", 0).await;
    assert_eq!(page.eval(&focused).await, "chatdesk-attach");
    page.press("Tab", 0).await;
    assert_eq!(page.eval(&focused).await, "chatdesk-send");
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_dark_german_page_the_widget_speaks_german_shows_its_focus_ring_and_chimes() {
    // Two customer sites: a dark one that asks for German (its page says English), and a
    // French one that says nothing but its page's lang.
    let german = HostSite::bind().await;
    let french = HostSite::bind().await;
    let origins = vec![german.origin.clone(), french.origin.clone()];
    let (german_url, french_url) = (format!("{}/", german.origin), format!("{}/", french.origin));
    let Some((app, browser)) = browser_and_app_with(|settings| {
        settings.allowed_origins = api::config::AllowedOrigins::List(origins);
    })
    .await
    else {
        return;
    };
    german.serve(format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Nachtfahrt</title>
<script src="{}/widget/chatdesk.js" defer data-locale="de" data-sound="on" data-accent="#1f2328"></script></head>
<body style="background:#111;color:#eee"><main><h1>Nachtfahrt</h1><p>Lights for night rides.</p></main></body></html>"##,
        app.address
    ));
    french.serve(format!(
        r##"<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Vélo</title>
<script src="{}/widget/chatdesk.js" defer></script></head><body><h1>Vélo</h1></body></html>"##,
        app.address
    ));
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("widget/german-dark");
    let files = tempfile::tempdir().expect("temp dir");
    let notes = write_file(files.path(), "notizen.txt", &vec![b'a'; 1_572_864]);

    page.goto(&german_url).await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    // The keyboard reaches the launcher: its ring shows on the dark page (white, with a dark
    // halo for light pages).
    page.press("Tab", 0).await;
    let ring = page
        .eval(&format!(
            "(l => {{ const s = getComputedStyle(l); return [{ROOT}.activeElement === l, s.outlineStyle, s.outlineColor, s.outlineWidth, s.boxShadow]; }})({})",
            w("chatdesk-launcher")
        ))
        .await;
    assert_eq!(ring[0], true, "{ring}");
    assert_eq!(ring[1], "solid", "{ring}");
    assert_eq!(ring[2], "rgb(255, 255, 255)", "{ring}");
    assert_eq!(ring[3], "3px", "{ring}");
    page.screenshot(&shots.join("1-focus-ring.png")).await;

    assert_eq!(
        page.eval(&format!(
            "{}.getAttribute('aria-label')",
            w("chatdesk-launcher")
        ))
        .await,
        "Chat öffnen"
    );
    page.press("Enter", 0).await;
    page.wait_for(
        &format!("{ROOT}.activeElement === {}", w("chatdesk-input")),
        WAIT,
    )
    .await;
    let strings = page
        .eval(&format!(
            "[{ROOT}.querySelector('h2').textContent, {i}.placeholder, {s}.getAttribute('aria-label'), {a}.getAttribute('aria-label')]",
            i = w("chatdesk-input"),
            s = w("chatdesk-send"),
            a = w("chatdesk-attach")
        ))
        .await;
    assert_eq!(
        strings,
        json!([
            "Schreiben Sie uns",
            "Nachricht schreiben…",
            "Senden",
            "Dateien anhängen"
        ])
    );
    // Sizes in the German way (Intl): a decimal comma.
    page.set_files(&w("chatdesk-file-input"), &[&notes]).await;
    page.wait_for(
        &format!(
            "{}.textContent.includes('1,5 MB')",
            w("chatdesk-pending-file")
        ),
        WAIT,
    )
    .await;
    page.click(&format!(
        "{}.querySelector('button')",
        w("chatdesk-pending-file")
    ))
    .await;
    send_text(&page, "Haben Sie Rücklichter?").await;
    page.wait_for(
        &format!(
            "{}.some(m => m.querySelector('[data-testid=chatdesk-status]').textContent === 'Gesendet')",
            w_all("chatdesk-message")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("2-german.png")).await;

    // Closed panel, a reply: the title counts it and a soft tone plays (WebAudio, counted here).
    page.press("Escape", 0).await;
    page.wait_for(&format!("{}.hidden", w("chatdesk-panel")), WAIT)
        .await;
    page.eval(
        "window.__tones = 0; const make = AudioContext.prototype.createOscillator; \
         AudioContext.prototype.createOscillator = function () { window.__tones++; return make.call(this); }",
    )
    .await;
    let record = page
        .eval(&format!(
            "JSON.parse(localStorage.getItem('chatdesk:' + {}))",
            json!(format!("{}/", app.address))
        ))
        .await;
    let admin = app.admin_token().await;
    app.send(
        &admin,
        record["chatId"].as_str().unwrap(),
        "Ja, drei Modelle.",
    )
    .await;
    page.wait_for(
        "document.title === '(1) Nachtfahrt' && window.__tones === 1",
        LIVE,
    )
    .await;
    assert_eq!(
        page.eval(&format!(
            "{}.getAttribute('aria-label')",
            w("chatdesk-launcher")
        ))
        .await,
        "Chat öffnen, 1 ungelesen"
    );
    page.screenshot(&shots.join("3-reply-while-closed.png"))
        .await;
    page.assert_no_script_errors();

    // Without data-locale, the page's lang decides.
    page.goto(&french_url).await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    assert_eq!(
        page.eval(&format!(
            "{}.getAttribute('aria-label')",
            w("chatdesk-launcher")
        ))
        .await,
        "Ouvrir le chat"
    );
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_show_the_admins_display_name_and_the_thread_shows_status_changes() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 900).await;
    let shots = screenshot_dir("widget/who-answers");
    let admin = app.admin_token().await;
    app.data(
        "mutation { updateMyProfile(displayName: \"Anna Berg\") { id } }",
        json!({}),
        Some(&admin),
    )
    .await;

    // The header shows who is on the team: initials, named for screen readers.
    open_demo(&page, &app).await;
    open_panel(&page).await;
    let team = w("chatdesk-team");
    page.wait_for(&format!("!{team}.hidden"), WAIT).await;
    assert_eq!(
        page.eval(&format!(
            "[{team}.getAttribute('aria-label'), {team}.textContent]"
        ))
        .await,
        json!(["Anna Berg", "AB"])
    );

    send_text(&page, "Can you fit mudguards?").await;
    page.click(&w("chatdesk-details-skip")).await;
    let chat_id = stored(&page).await["chatId"]
        .as_str()
        .expect("a chat id")
        .to_owned();

    // The reply names who wrote it, with an avatar of her initials, not "Admin" or "Support".
    app.send(&admin, &chat_id, "Yes, for most frames.").await;
    let reply = format!(
        "{}.find(m => m.dataset.sender === 'admin' && m.textContent.includes('most frames'))",
        w_all("chatdesk-message")
    );
    page.wait_for(&reply, LIVE).await;
    assert_eq!(
        page.eval(&format!(
            "(w => [w.textContent, w.querySelector('.av').textContent])(({reply}).querySelector('.who'))"
        ))
        .await,
        json!(["ABAnna Berg", "AB"])
    );

    // Closing shows a line in the thread, live; the visitor's next message reopens the chat,
    // and that shows too.
    app.data(
        "mutation($id: UUID!) { setChatStatus(chatId: $id, status: CLOSED) { id } }",
        json!({ "id": chat_id }),
        Some(&admin),
    )
    .await;
    let lines = format!("{}.map(l => l.textContent)", w_all("chatdesk-status-line"));
    page.wait_for(
        &format!("{lines}.some(t => t.startsWith('Chat closed · Anna Berg · '))"),
        LIVE,
    )
    .await;
    page.screenshot(&shots.join("1-closed-line.png")).await;
    page.click(&w("chatdesk-input")).await;
    send_text(&page, "One more thing: a bell?").await;
    page.wait_for(
        &format!("{lines}.some(t => t.startsWith('Chat reopened · '))"),
        LIVE,
    )
    .await;
    page.screenshot(&shots.join("2-reopened-line.png")).await;

    // After a reload, the same history, from the server: the lines sit between the messages,
    // by time (the reopening is stored just before the message that caused it).
    page.reload().await;
    page.wait_for(&w("chatdesk-launcher"), WAIT).await;
    open_panel(&page).await;
    let order = format!(
        "[...{ROOT}.querySelectorAll('[role=listitem]')].map(e => e.dataset.testid === 'chatdesk-status-line' ? e.textContent.split(' · ')[0] : e.dataset.sender)"
    );
    page.wait_for(&format!("{order}.length === 5"), WAIT).await;
    assert_eq!(
        page.eval(&order).await,
        json!([
            "visitor",
            "admin",
            "Chat closed",
            "Chat reopened",
            "visitor"
        ])
    );
    page.screenshot(&shots.join("3-after-reload.png")).await;
    page.assert_no_script_errors();
}
