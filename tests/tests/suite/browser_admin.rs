//! The admin page at `/admin666/` in headless Chromium against the real server (issue 7,
//! point 7), and both clients together (SPEC §10: a visitor sends a file, an admin sees and
//! answers it, the visitor sees the answer). Screenshots of each screen go to
//! `target/screenshots/admin/…` for a person to look at.

use crate::common;

use std::time::Duration;

use base64::Engine;
use common::ADMIN_EMAIL;
use common::browser::admin::{row, send_sign_in, sign_in, t, t_all};
use common::browser::widget::{ROOT, w};
use common::browser::{
    LIVE, Page, WAIT, axe_source, browser_and_app, pdf_bytes, png_bytes, screenshot_dir,
    send_with_files, serious_accessibility_violations, write_file,
};
use serde_json::{Value, json};

/// The response to `fetch(url)` in the page: status, content type, body (base64).
async fn fetch_in_page(page: &Page<'_>, url: &str) -> (u64, String, Vec<u8>) {
    let answer = page
        .eval(&format!(
            "fetch({}).then(async r => {{ const bytes = new Uint8Array(await r.arrayBuffer()); let s = ''; \
             for (const b of bytes) s += String.fromCharCode(b); \
             return {{ status: r.status, type: r.headers.get('content-type'), body: btoa(s) }}; }})",
            json!(url)
        ))
        .await;
    let body = base64::engine::general_purpose::STANDARD
        .decode(answer["body"].as_str().unwrap_or_default())
        .expect("base64");
    (
        answer["status"].as_u64().unwrap_or_default(),
        answer["type"].as_str().unwrap_or_default().to_owned(),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_answers_a_visitor_with_a_file_and_files_the_chat_as_pending() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1440, 900).await;
    let shots = screenshot_dir("admin/answer");
    let files = tempfile::tempdir().expect("temp dir");
    let quote_pdf = pdf_bytes("Quote: new rim 89 EUR");
    let quote = write_file(files.path(), "quote.pdf", &quote_pdf);

    // A wrong password is refused with a message; the right one signs in.
    send_sign_in(&page, &app, "/admin666/", "not the password").await;
    page.wait_for(&format!("!{}.hidden", t("login-error")), WAIT)
        .await;
    page.screenshot(&shots.join("1-sign-in-refused.png")).await;
    sign_in(&page, &app).await;
    assert_eq!(
        page.eval(&format!("{}.title", t("admin-me"))).await,
        json!(ADMIN_EMAIL)
    );
    page.screenshot(&shots.join("2-empty-inbox.png")).await;

    // A visitor writes, with a photo and a PDF: the chat appears live, unread.
    let (chat_id, visitor) = app.start_chat(Some("Grace Hopper")).await;
    let photo = png_bytes(800, 600);
    let invoice = pdf_bytes("Invoice 77");
    let sent = send_with_files(
        &app,
        &visitor,
        &chat_id,
        Some("My front wheel is bent, photos attached."),
        &[
            ("wheel.png", "image/png", photo.clone()),
            ("invoice.pdf", "application/pdf", invoice.clone()),
        ],
    )
    .await;
    assert!(sent.get("errors").is_none(), "{sent}");
    page.wait_for(
        &format!(
            "{r} && {r}.dataset.unread === '1' && {r}.querySelector('[data-testid=chat-row-unread]').textContent === '1' \
             && {r}.querySelector('[data-testid=chat-row-name]').textContent === 'Grace Hopper' \
             && {r}.querySelector('[data-testid=chat-row-preview]').textContent.includes('front wheel is bent')",
            r = row(&chat_id)
        ),
        LIVE,
    )
    .await;
    page.wait_for(
        &format!(
            "{}.textContent === '1' && document.title.startsWith('(1)')",
            t("nav-unread")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("3-new-chat-live.png")).await;

    // Opening it shows the thread and reads it.
    page.click(&row(&chat_id)).await;
    let visitor_message = format!(
        "{}.find(m => m.dataset.sender === 'visitor')",
        t_all("message")
    );
    page.wait_for(
        &format!(
            "!{}.hidden && {visitor_message} && {visitor_message}.querySelectorAll('[data-testid=attachment]').length === 2",
            t("chat-view")
        ),
        WAIT,
    )
    .await;
    page.wait_for(
        &format!(
            "(() => {{ const img = {}; return img && img.complete && img.naturalWidth > 0; }})()",
            t("attachment-thumbnail")
        ),
        WAIT,
    )
    .await;
    page.wait_for(
        &format!(
            "{r}.dataset.unread === '0' && {}.hidden && {visitor_message}.dataset.state === 'read'",
            t("nav-unread"),
            r = row(&chat_id)
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("4-chat-open.png")).await;

    // Both files download through their links: the PDF byte for byte, the photo as a PNG of
    // the same size (the server re-encodes images to drop their metadata).
    let links = page
        .eval(&format!(
            "{}.map(a => a.href)",
            t_all("attachment-download")
        ))
        .await;
    let links: Vec<String> = serde_json::from_value(links).expect("links");
    assert_eq!(links.len(), 2, "{links:?}");
    let (status, kind, body) = fetch_in_page(&page, &links[0]).await;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    let decoded = image::load_from_memory(&body).expect("the photo decodes");
    assert_eq!((decoded.width(), decoded.height()), (800, 600));
    let (status, kind, body) = fetch_in_page(&page, &links[1]).await;
    assert_eq!((status, kind.as_str()), (200, "application/pdf"));
    assert_eq!(body, invoice, "the PDF comes back as it was sent");

    // A reply with a file, sent with Ctrl+Enter.
    page.set_files(&t("reply-file-input"), &[&quote]).await;
    page.wait_for(&format!("{}.length === 1", t_all("pending-file")), WAIT)
        .await;
    page.click(&t("reply-box")).await;
    page.type_text("Here is the quote for a new rim.").await;
    page.press("Enter", 2).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'sent' \
             && m.textContent.includes('quote for a new rim') && m.querySelector('[data-testid=attachment-download]'))",
            t_all("message")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("5-replied.png")).await;

    // Pending: it leaves the Open tab and shows under Pending.
    page.eval(&format!(
        "(() => {{ const s = {}; s.value = 'PENDING'; s.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()",
        t("status-select")
    ))
    .await;
    page.wait_for(&format!("!{}", row(&chat_id)), WAIT).await;
    let admin = app.admin_token().await;
    let status = app
        .data(
            "query($id: UUID!) { chat(id: $id) { status } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    assert_eq!(status["chat"]["status"], "PENDING");
    page.screenshot(&shots.join("6-set-pending.png")).await;
    page.click(&t("status-tab-pending")).await;
    page.wait_for(
        &format!(
            "{r} && {r}.dataset.status === 'pending' && location.search.includes('status=pending')",
            r = row(&chat_id)
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("7-pending-tab.png")).await;

    // Search: a word that is nowhere empties the list; one from the thread finds the chat.
    page.click(&t("search")).await;
    page.type_text("tandem").await;
    page.wait_for(
        &format!("!{}.hidden && !{}", t("list-empty"), row(&chat_id)),
        WAIT,
    )
    .await;
    page.eval(&format!("{}.select()", t("search"))).await;
    page.type_text("front wheel").await;
    page.wait_for(
        &format!(
            "{} && new URLSearchParams(location.search).get('q') === 'front wheel'",
            row(&chat_id)
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("8-search.png")).await;

    // A reload keeps the session, the filters (from the URL) and the open chat.
    page.reload().await;
    page.wait_for(
        &format!(
            "{r} && {}.getAttribute('aria-selected') === 'true' && {}.value === 'front wheel' \
             && {}.some(m => m.textContent.includes('quote for a new rim'))",
            t("status-tab-pending"),
            t("search"),
            t_all("message"),
            r = row(&chat_id)
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("9-after-reload.png")).await;

    // The visitor sees the reply with its file, and that their message was read.
    let thread = app
        .data(
            "query($id: UUID!) { chat(id: $id) { status messages(last: 10) { edges { node { sender body readAt attachments { name url } } } } } }",
            json!({ "id": chat_id }),
            Some(&visitor),
        )
        .await;
    let edges = thread["chat"]["messages"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{thread}");
    assert_eq!(edges[0]["node"]["sender"], "VISITOR");
    assert!(edges[0]["node"]["readAt"].is_string(), "{thread}");
    assert_eq!(edges[1]["node"]["sender"], "ADMIN");
    assert_eq!(edges[1]["node"]["body"], "Here is the quote for a new rim.");
    assert_eq!(edges[1]["node"]["attachments"][0]["name"], "quote.pdf");
    let url = edges[1]["node"]["attachments"][0]["url"].as_str().unwrap();
    let download = app.client.get(url).send().await.expect("download");
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        quote_pdf.as_slice()
    );

    // When the visitor reads the reply, the admin sees it as seen.
    app.data(
        "mutation($chatId: UUID!) { markChatRead(chatId: $chatId) { id } }",
        json!({ "chatId": chat_id }),
        Some(&visitor),
    )
    .await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'read')",
            t_all("message")
        ),
        LIVE,
    )
    .await;
    page.screenshot(&shots.join("10-seen-by-visitor.png")).await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_returns_to_sign_in_with_a_message_and_sign_out_works() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("admin/session");

    sign_in(&page, &app).await;
    page.click(&t("sign-out")).await;
    page.wait_for(
        &format!(
            "!document.getElementById('login-view').hidden && !sessionStorage.getItem('chatdesk.admin.session') && {}.hidden",
            t("login-message")
        ),
        WAIT,
    )
    .await;

    // A token the server no longer accepts (as after a password change) sends the admin back
    // to sign in, with a message.
    page.eval(
        "sessionStorage.setItem('chatdesk.admin.session', JSON.stringify({ token: 'eyJhbGciOiJIUzI1NiJ9.e30.bad', \
         expiresAt: new Date(Date.now() + 3600e3).toISOString(), admin: { id: '0', email: 'gone@example.com', name: null } }))",
    )
    .await;
    page.reload().await;
    page.wait_for(
        &format!(
            "!document.getElementById('login-view').hidden && !{m}.hidden && {m}.textContent.includes('expired')",
            m = t("login-message")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-expired.png")).await;
    // Requests that failed on the way out leave no toast behind on the sign-in page.
    assert_eq!(
        page.eval(&format!("{}.hidden", t("toast"))).await,
        json!(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_and_an_admin_talk_through_both_clients() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let visitor = browser.page(1280, 900).await;
    let admin = browser.page(1440, 900).await;
    let shots = screenshot_dir("admin/both-clients");
    let files = tempfile::tempdir().expect("temp dir");
    let photo = write_file(files.path(), "saddle.png", &png_bytes(500, 400));

    sign_in(&admin, &app).await;

    // The visitor sends a photo from the widget.
    visitor.goto(&app.url("/")).await;
    visitor.wait_for(&w("chatdesk-launcher"), WAIT).await;
    visitor.click(&w("chatdesk-launcher")).await;
    visitor
        .wait_for(
            &format!("{ROOT}.activeElement === {}", w("chatdesk-input")),
            WAIT,
        )
        .await;
    visitor.type_text("Can you fit this saddle?").await;
    visitor
        .set_files(&w("chatdesk-file-input"), &[&photo])
        .await;
    visitor.wait_for(&w("chatdesk-pending-file"), WAIT).await;
    visitor.click(&w("chatdesk-send")).await;
    visitor
        .wait_for(
            &format!(
                "[...{ROOT}.querySelectorAll('[data-testid=chatdesk-message]')].some(m => m.dataset.state === 'sent' && m.querySelector('img'))"
            ),
            WAIT,
        )
        .await;
    let chat_id = visitor
        .eval("JSON.parse(localStorage.getItem('chatdesk:' + location.origin + '/')).chatId")
        .await
        .as_str()
        .expect("the widget keeps its chat")
        .to_owned();

    // The admin sees it live, opens it, sees the photo, answers.
    admin.wait_for(&row(&chat_id), LIVE).await;
    admin.click(&row(&chat_id)).await;
    admin
        .wait_for(
            &format!(
                "(() => {{ const img = {}; return img && img.complete && img.naturalWidth > 0; }})()",
                t("attachment-thumbnail")
            ),
            WAIT,
        )
        .await;
    admin.click(&t("reply-box")).await;
    admin.type_text("Yes — bring it in any morning.").await;
    admin.click(&t("reply-send")).await;
    admin
        .wait_for(
            &format!(
                "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'sent')",
                t_all("message")
            ),
            WAIT,
        )
        .await;

    // The visitor sees the answer, and their message as read.
    visitor
        .wait_for(
            &format!(
                "(() => {{ const ms = [...{ROOT}.querySelectorAll('[data-testid=chatdesk-message]')]; \
                 return ms.some(m => m.dataset.sender === 'admin' && m.textContent.includes('any morning')) \
                 && ms.some(m => m.dataset.sender === 'visitor' && m.dataset.state === 'read'); }})()"
            ),
            LIVE,
        )
        .await;
    // And the admin sees the reply read, as the visitor has the panel open.
    admin
        .wait_for(
            &format!(
                "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'read')",
                t_all("message")
            ),
            LIVE,
        )
        .await;
    visitor.screenshot(&shots.join("1-visitor.png")).await;
    admin.screenshot(&shots.join("2-admin.png")).await;
    visitor.assert_no_script_errors();
    admin.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_has_no_serious_accessibility_violations() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
    let page = browser.page(1440, 900).await;

    page.goto(&app.url("/admin666/")).await;
    page.wait_for(
        &format!("document.activeElement === {}", t("login-email")),
        WAIT,
    )
    .await;
    let login = serious_accessibility_violations(&page, &axe).await;
    assert!(login.is_empty(), "sign-in: {login:#?}");

    let (chat_id, visitor) = app.start_chat(Some("Alan Turing")).await;
    let sent: Value = send_with_files(
        &app,
        &visitor,
        &chat_id,
        Some("Two files for you."),
        &[
            ("bars.png", "image/png", png_bytes(300, 200)),
            ("notes.pdf", "application/pdf", pdf_bytes("Notes")),
        ],
    )
    .await;
    assert!(sent.get("errors").is_none(), "{sent}");
    sign_in(&page, &app).await;
    page.click(&row(&chat_id)).await;
    page.wait_for(&format!("{}.length === 2", t_all("attachment")), WAIT)
        .await;
    let chat = serious_accessibility_violations(&page, &axe).await;
    assert!(chat.is_empty(), "chat view: {chat:#?}");

    // With a status line in the thread and the profile form open.
    page.eval(&format!(
        "{s}.value = 'CLOSED'; {s}.dispatchEvent(new Event('change'))",
        s = t("status-select")
    ))
    .await;
    page.wait_for(&format!("{}.length === 1", t_all("status-line")), WAIT)
        .await;
    page.click("document.querySelector('[data-testid=\"profile\"] > summary')")
        .await;
    let lines = serious_accessibility_violations(&page, &axe).await;
    assert!(lines.is_empty(), "status line and profile: {lines:#?}");

    // The image viewer, open.
    page.click(&t("attachment-view")).await;
    page.wait_for(&format!("!{}.hidden", t("lightbox")), WAIT)
        .await;
    let viewer = serious_accessibility_violations(&page, &axe).await;
    assert!(viewer.is_empty(), "image viewer: {viewer:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_moves_opens_replies_and_files_from_the_keyboard() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let (older, older_token) = app.start_chat(Some("Ada")).await;
    app.send(&older_token, &older, "The first question.").await;
    let (newer, newer_token) = app.start_chat(Some("Bob")).await;
    app.send(&newer_token, &newer, "The second question.").await;
    let page = browser.page(1440, 900).await;
    let shots = screenshot_dir("admin/keyboard");

    sign_in(&page, &app).await;
    page.wait_for(&format!("{} && {}", row(&older), row(&newer)), WAIT)
        .await;
    page.eval("document.activeElement.blur()").await;
    // Newest first: the cursor starts on Bob; j moves down to Ada, Enter opens her chat.
    page.press("j", 0).await;
    page.wait_for(
        &format!("{}.classList.contains('cursor')", row(&older)),
        WAIT,
    )
    .await;
    page.press("Enter", 0).await;
    page.wait_for(
        &format!(
            "{}.textContent === 'Ada' && {}.some(m => m.textContent.includes('first question'))",
            t("chat-title"),
            t_all("message")
        ),
        WAIT,
    )
    .await;
    // r: reply; Ctrl+Enter sends; Esc leaves the box; 2 files it as pending.
    page.press("r", 0).await;
    page.wait_for(
        &format!("document.activeElement === {}", t("reply-box")),
        WAIT,
    )
    .await;
    page.type_text("Hello Ada, we're on it.").await;
    page.press("Enter", 2).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'sent')",
            t_all("message")
        ),
        WAIT,
    )
    .await;
    page.press("Escape", 0).await;
    page.press("2", 0).await;
    page.wait_for(
        &format!(
            "{}.value === 'PENDING' && !{}",
            t("status-select"),
            row(&older)
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-replied-and-pending.png"))
        .await;
    let admin = app.admin_token().await;
    let status = app
        .data(
            "query($id: UUID!) { chat(id: $id) { status } }",
            json!({ "id": older }),
            Some(&admin),
        )
        .await;
    assert_eq!(status["chat"]["status"], "PENDING");
    page.assert_no_script_errors();
}

/// The messages and status lines of the open thread, in order, as "kind:detail" strings.
const THREAD_ORDER: &str = "[...document.querySelectorAll('#messages > li')].map(li => \
     li.dataset.testid === 'status-line' ? `status:${li.dataset.to}:${li.dataset.by}` : `message:${li.dataset.sender}`)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_a_display_name_that_the_visitor_gets_on_replies() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let (chat_id, visitor) = app.start_chat(Some("Grace")).await;
    app.send(&visitor, &chat_id, "Who am I talking to?").await;
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("admin/display-name");
    sign_in(&page, &app).await;
    assert_eq!(
        page.eval(&format!("{}.textContent", t("me-avatar"))).await,
        "A"
    );

    // The name is set in the sidebar; a blank one is refused with a message next to the field.
    page.click("document.querySelector('[data-testid=\"profile\"] > summary')")
        .await;
    page.click(&t("profile-name")).await;
    page.eval(&format!("{}.select()", t("profile-name"))).await;
    page.type_text("   ").await;
    page.click(&t("profile-save")).await;
    page.wait_for(
        &format!(
            "!{e}.hidden && {e}.textContent === 'Enter a name.' && {i}.getAttribute('aria-invalid') === 'true'",
            e = t("profile-error"),
            i = t("profile-name")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-name-refused.png")).await;
    page.eval(&format!("{}.select()", t("profile-name"))).await;
    page.type_text("Anna Berg").await;
    page.press("Enter", 0).await;
    page.wait_for(
        &format!(
            "{}.textContent === 'Anna Berg' && {}.textContent === 'AB' && {}.hidden",
            t("admin-me"),
            t("me-avatar"),
            t("profile-error")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("2-name-saved.png")).await;

    // A reply from the page carries it: in the admin's thread, and to the visitor by the API.
    page.click(&row(&chat_id)).await;
    page.click(&t("reply-box")).await;
    page.type_text("Anna here, from support.").await;
    page.press("Enter", 2).await;
    page.wait_for(
        &format!(
            "{}.some(m => m.dataset.sender === 'admin' && m.dataset.state === 'sent' \
               && m.querySelector('[data-testid=message-author]').textContent === 'Anna Berg' \
               && m.querySelector('.avatar').textContent === 'AB')",
            t_all("message")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("3-reply-with-name.png")).await;
    let seen = app
        .data(
            "query($id: UUID!) { chat(id: $id) { messages(last: 5) { edges { node { sender body author { displayName initials } } } } } }",
            json!({ "id": chat_id }),
            Some(&visitor),
        )
        .await;
    let last = &seen["chat"]["messages"]["edges"][1]["node"];
    assert_eq!(last["body"], "Anna here, from support.");
    assert_eq!(
        last["author"],
        json!({ "displayName": "Anna Berg", "initials": "AB" })
    );
    // After a reload the page still knows the name (it comes from `me`).
    page.reload().await;
    page.wait_for(
        &format!(
            "{}.textContent === 'Anna Berg' && {}.value === 'Anna Berg'",
            t("admin-me"),
            t("profile-name")
        ),
        WAIT,
    )
    .await;
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_are_lines_in_the_admin_thread_and_the_toast_agrees_with_the_box() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let (chat_id, visitor) = app.start_chat(Some("Lin")).await;
    app.send(&visitor, &chat_id, "My invoice is wrong.").await;
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("admin/status-lines");
    sign_in(&page, &app).await;
    page.click(&row(&chat_id)).await;
    page.wait_for(&format!("{}.length === 1", t_all("message")), WAIT)
        .await;

    // Closing from the keyboard: a line "Closed by Admin", the box and the toast say Closed.
    page.eval("document.activeElement.blur()").await;
    page.press("3", 0).await;
    page.wait_for(
        &format!(
            "{l}.length === 1 && {l}[0].dataset.to === 'closed' && {l}[0].textContent.startsWith('Closed by Admin · ') \
             && {s}.value === 'CLOSED' && !{toast}.hidden && {toast}.dataset.status === 'CLOSED'",
            l = t_all("status-line"),
            s = t("status-select"),
            toast = t("toast")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-closed.png")).await;

    // The visitor writes while the toast still shows: the chat reopens live, a line says why,
    // and the toast follows the box instead of still saying Closed.
    app.send(&visitor, &chat_id, "One more thing!").await;
    page.wait_for(
        &format!(
            "{l}.length === 2 && {l}[1].dataset.to === 'open' && {l}[1].dataset.by === 'visitor' \
             && {l}[1].textContent.startsWith('Reopened by the visitor’s message') && {s}.value === 'OPEN'",
            l = t_all("status-line"),
            s = t("status-select")
        ),
        LIVE,
    )
    .await;
    let toast = page
        .eval(&format!(
            "({{ hidden: {t}.hidden, status: {t}.dataset.status || null, text: {t}.textContent }})",
            t = t("toast")
        ))
        .await;
    assert!(
        toast["hidden"] == json!(true)
            || (toast["status"] == json!("OPEN")
                && toast["text"] == json!("The visitor wrote again; the status is Open now.")),
        "the toast contradicts the box: {toast}"
    );
    assert_eq!(
        page.eval(THREAD_ORDER).await,
        json!([
            "message:visitor",
            "status:closed:admin",
            "status:open:visitor",
            "message:visitor"
        ])
    );
    page.screenshot(&shots.join("2-reopened-by-the-visitor.png"))
        .await;

    // A reply being written survives the reload below.
    page.click(&t("reply-box")).await;
    page.type_text("Let me check the invoice").await;
    // Pending from the box; after a reload the lines come back from the history.
    page.eval(&format!(
        "{s}.value = 'PENDING'; {s}.dispatchEvent(new Event('change'))",
        s = t("status-select")
    ))
    .await;
    page.wait_for(
        &format!(
            "{l}.length === 3 && {l}[2].textContent.startsWith('Marked pending by Admin')",
            l = t_all("status-line")
        ),
        WAIT,
    )
    .await;
    page.reload().await;
    page.wait_for(
        &format!(
            "{}.length === 2 && {}.length === 3",
            t_all("message"),
            t_all("status-line")
        ),
        WAIT,
    )
    .await;
    assert_eq!(
        page.eval(THREAD_ORDER).await,
        json!([
            "message:visitor",
            "status:closed:admin",
            "status:open:visitor",
            "message:visitor",
            "status:pending:admin"
        ])
    );
    page.wait_for(
        &format!("{}.value === 'Let me check the invoice'", t("reply-box")),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("3-after-reload.png")).await;

    // Quick presses of 1, 3, 2 end on the last one pressed, on the server, in the box and in
    // the toast alike.
    page.eval("document.activeElement.blur()").await;
    for key in ["1", "3", "2"] {
        page.press(key, 0).await;
    }
    page.wait_for(
        &format!(
            "{l}.length === 6 && {s}.value === 'PENDING' && !{toast}.hidden              && {toast}.dataset.status === 'PENDING' && {toast}.textContent === 'Status set to Pending.'",
            l = t_all("status-line"),
            s = t("status-select"),
            toast = t("toast")
        ),
        WAIT,
    )
    .await;

    // The visitor's side of the same history, through the API.
    let events = app
        .data(
            "query($id: UUID!) { chat(id: $id) { statusEvents { to by } } }",
            json!({ "id": chat_id }),
            Some(&visitor),
        )
        .await;
    assert_eq!(
        events["chat"]["statusEvents"],
        json!([
            { "to": "CLOSED", "by": "ADMIN" },
            { "to": "OPEN", "by": "VISITOR" },
            { "to": "PENDING", "by": "ADMIN" },
            { "to": "OPEN", "by": "ADMIN" },
            { "to": "CLOSED", "by": "ADMIN" },
            { "to": "PENDING", "by": "ADMIN" }
        ])
    );
    page.assert_no_script_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_looks_through_a_chats_images_with_the_keyboard() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let (chat_id, visitor) = app.start_chat(Some("Ada")).await;
    let first = send_with_files(
        &app,
        &visitor,
        &chat_id,
        Some("Two photos and the receipt."),
        &[
            ("front.png", "image/png", png_bytes(640, 480)),
            ("receipt.pdf", "application/pdf", pdf_bytes("Receipt 12")),
            ("back.png", "image/png", png_bytes(300, 500)),
        ],
    )
    .await;
    assert!(first.get("errors").is_none(), "{first}");
    let second = send_with_files(
        &app,
        &visitor,
        &chat_id,
        None,
        &[("side.png", "image/png", png_bytes(500, 300))],
    )
    .await;
    assert!(second.get("errors").is_none(), "{second}");
    let page = browser.page(1280, 800).await;
    let shots = screenshot_dir("admin/lightbox");
    sign_in(&page, &app).await;
    page.click(&row(&chat_id)).await;
    page.wait_for(
        &format!(
            "{v}.length === 3 && {v}.every(a => a.querySelector('img').naturalWidth > 0)",
            v = t_all("attachment-view")
        ),
        WAIT,
    )
    .await;

    // A thumbnail tells its name and size when focused (and on hover: the same rule). `:focus`
    // matches only in a focused window: say this one is, as a person's would be.
    page.call(
        "Emulation.setFocusEmulationEnabled",
        json!({ "enabled": true }),
    )
    .await;
    page.eval(&format!(
        "{v}[0].focus(); {v}[0].scrollIntoView({{ block: 'center' }})",
        v = t_all("attachment-view")
    ))
    .await;
    page.wait_for(
        &format!(
            "(() => {{ const info = {}[0]; return info.textContent.startsWith('front.png · ') && getComputedStyle(info).opacity === '1'; }})()",
            t_all("thumb-info")
        ),
        WAIT,
    )
    .await;
    page.screenshot(&shots.join("1-thumbnail-focused.png"))
        .await;

    // Enter opens the viewer on that image, with its name, size and a download link.
    page.press("Enter", 0).await;
    let shown = |name: &str, count: &str| {
        format!(
            "!{lb}.hidden && {n}.textContent === '{name}' && {c}.textContent === '{count}' \
             && {img}.alt === '{name}' && {img}.complete && {img}.naturalWidth > 0 \
             && {dl}.getAttribute('download') === '{name}'",
            lb = t("lightbox"),
            n = t("lightbox-name"),
            c = t("lightbox-count"),
            img = t("lightbox-image"),
            dl = t("lightbox-download"),
        )
    };
    page.wait_for(&shown("front.png", "1 of 3"), WAIT).await;
    let meta = page
        .eval(&format!("{}.textContent", t("lightbox-meta")))
        .await;
    assert!(
        meta.as_str().unwrap_or_default().ends_with("· 640×480"),
        "{meta}"
    );
    assert_eq!(
        page.eval("document.activeElement.dataset.testid").await,
        "lightbox-close"
    );
    page.screenshot(&shots.join("2-first-image.png")).await;
    // The arrows go through the chat's images in thread order, across messages, and stop at
    // the ends; the PDF is not one of them.
    page.press("ArrowRight", 0).await;
    page.wait_for(&shown("back.png", "2 of 3"), WAIT).await;
    page.press("ArrowRight", 0).await;
    page.wait_for(&shown("side.png", "3 of 3"), WAIT).await;
    page.screenshot(&shots.join("3-last-image.png")).await;
    page.press("ArrowRight", 0).await;
    page.wait_for(&shown("side.png", "3 of 3"), WAIT).await;
    page.press("ArrowLeft", 0).await;
    page.wait_for(&shown("back.png", "2 of 3"), WAIT).await;
    // Tab stays inside the viewer.
    for _ in 0..5 {
        page.press("Tab", 0).await;
        assert_eq!(
            page.eval(&format!(
                "{}.contains(document.activeElement)",
                t("lightbox")
            ))
            .await,
            json!(true)
        );
    }
    // The download link fetches the image itself.
    let href = page
        .eval(&format!("{}.getAttribute('href')", t("lightbox-download")))
        .await;
    let (status, content_type, _) = fetch_in_page(&page, href.as_str().unwrap()).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    // Escape closes it and gives focus back to the thumbnail it was opened from.
    page.press("Escape", 0).await;
    page.wait_for(
        &format!(
            "{}.hidden && document.activeElement === {}[0]",
            t("lightbox"),
            t_all("attachment-view")
        ),
        WAIT,
    )
    .await;

    // A click opens it too; the PDF opens in a tab of its own, as a PDF.
    page.click(&format!("{}[2]", t_all("attachment-view")))
        .await;
    page.wait_for(&shown("side.png", "3 of 3"), WAIT).await;
    page.click(&t("lightbox-close")).await;
    page.wait_for(&format!("{}.hidden", t("lightbox")), WAIT)
        .await;
    let tabs_before = browser.tab_urls().await.len();
    page.click(&t("attachment-open")).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let tabs = browser.tab_urls().await;
        if tabs.len() > tabs_before && tabs.iter().any(|url| url.starts_with("blob:")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no PDF tab: {tabs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    page.assert_no_script_errors();
}

/// Interactive things smaller than 44 × 44 px that a finger may need to hit, as
/// "testid-or-text: width×height". A checkbox counts by its label; links inside message text
/// are part of a sentence (WCAG 2.5.5's inline exception).
const SMALL_TARGETS: &str = "[...document.querySelectorAll('button, a[href], input, select, textarea, summary, [role=tab], [role=option]')]\
     .filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden' && !el.closest('[hidden], .body, .visually-hidden'))\
     .map(el => { const target = (el.type === 'checkbox' || el.type === 'radio') && el.closest('label') || el; \
       const r = target.getBoundingClientRect(); \
       return { name: el.dataset.testid || el.id || el.textContent.trim().slice(0, 30) || el.tagName, w: Math.round(r.width), h: Math.round(r.height) }; })\
     .filter(x => x.w < 44 || x.h < 44).map(x => `${x.name}: ${x.w}×${x.h}`)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_suits_fingers_on_a_phone_and_an_800_px_window() {
    let Some((app, browser)) = browser_and_app().await else {
        return;
    };
    let mut chats = Vec::new();
    for n in 0..12 {
        let (chat_id, token) = app.start_chat(Some(&format!("Visitor {n}"))).await;
        app.send(&token, &chat_id, &format!("Question number {n}"))
            .await;
        chats.push(chat_id);
    }
    let shots = screenshot_dir("admin/small-screens");

    // 800 × 800: the list keeps a full-height column beside the chat.
    let page = browser.page(800, 800).await;
    sign_in(&page, &app).await;
    page.wait_for(&format!("{}.length === 12", t_all("chat-row")), WAIT)
        .await;
    page.click(&row(&chats[11])).await;
    page.wait_for(&format!("{}.length === 1", t_all("message")), WAIT)
        .await;
    let visible_rows = page
        .eval(&format!(
            "(() => {{ const list = {}.getBoundingClientRect(); return {}.filter(r => {{ const b = r.getBoundingClientRect(); \
               return b.top >= list.top - 1 && b.bottom <= list.bottom + 1 && b.height > 0; }}).length; }})()",
            t("chat-list"),
            t_all("chat-row")
        ))
        .await;
    eprintln!("rows fully visible at 800 × 800: {visible_rows} of 12");
    assert!(
        visible_rows.as_u64().unwrap_or_default() >= 8,
        "rows fully visible at 800 px: {visible_rows}"
    );
    // "Admin" and "Sign out" stand apart, and the thread and reply box are usable beside it.
    let gap = page
        .eval(&format!(
            "{}.getBoundingClientRect().left - {}.getBoundingClientRect().right",
            t("sign-out"),
            t("admin-me")
        ))
        .await;
    assert!(gap.as_f64().unwrap_or_default() >= 6.0, "gap {gap}");
    let reply = page
        .eval(&format!(
            "(() => {{ const r = {}.getBoundingClientRect(); return [r.width, r.bottom]; }})()",
            t("reply-box")
        ))
        .await;
    assert!(
        reply[0].as_f64().unwrap_or_default() >= 300.0
            && reply[1].as_f64().unwrap_or_default() <= 800.0,
        "reply box {reply}"
    );
    page.screenshot(&shots.join("1-800px.png")).await;

    // 1280: the keyboard help, open, fits its sidebar.
    let wide = browser.page(1280, 800).await;
    sign_in(&wide, &app).await;
    wide.click("document.querySelector('[data-testid=\"shortcuts\"] > summary')")
        .await;
    let overflow = wide
        .eval(&format!(
            "(() => {{ const side = document.querySelector('.sidebar').getBoundingClientRect(); \
               return [...{}.querySelectorAll('dt, dd, kbd')].filter(el => el.getBoundingClientRect().right > side.right - 4) \
               .map(el => el.textContent); }})()",
            t("shortcuts")
        ))
        .await;
    assert_eq!(overflow, json!([]), "shortcut help wider than the sidebar");
    // And not squeezed into a column a word wide ("status / open / pending / closed" on four
    // lines, as beside the keys before).
    let narrow = wide
        .eval(&format!(
            "[...{}.querySelectorAll('dd')].filter(dd => dd.getBoundingClientRect().width < 120).map(dd => dd.textContent)",
            t("shortcuts")
        ))
        .await;
    assert_eq!(narrow, json!([]), "shortcut descriptions squeezed");
    assert_eq!(
        wide.eval("document.querySelector('.sidebar').scrollWidth <= document.querySelector('.sidebar').clientWidth")
            .await,
        json!(true)
    );
    wide.screenshot(&shots.join("2-shortcuts-1280.png")).await;

    // 375 × 667: every control is at least 44 × 44, in the list and in an open chat.
    let phone = browser.page(375, 667).await;
    sign_in(&phone, &app).await;
    phone
        .wait_for(&format!("{}.length === 12", t_all("chat-row")), WAIT)
        .await;
    phone.screenshot(&shots.join("3-phone-list.png")).await;
    let small = phone.eval(SMALL_TARGETS).await;
    assert_eq!(small, json!([]), "targets under 44 px on the list");
    phone.click(&row(&chats[0])).await;
    phone
        .wait_for(&format!("{}.length === 1", t_all("message")), WAIT)
        .await;
    let small = phone.eval(SMALL_TARGETS).await;
    assert_eq!(small, json!([]), "targets under 44 px in a chat");
    phone
        .eval(&format!("{}.scrollIntoView()", t("reply-box")))
        .await;
    phone.screenshot(&shots.join("4-phone-chat.png")).await;
    page.assert_no_script_errors();
    phone.assert_no_script_errors();
}
