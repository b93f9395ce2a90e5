//! Attachments end to end: real files uploaded as browsers send them (GraphQL multipart),
//! downloaded through the guarded route, refused with their codes and nothing left behind,
//! rolled back with a failed transaction, swept when orphaned and purged by retention. Each runs
//! on SQLite and Postgres, with a local folder and with a real S3-compatible server.

use crate::common;

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use api::files::signing::Variant;
use api::service::retention;
use common::files::{FilePart, Store, sha256, spawn_app_on};
use common::{Backend, TestApp, error_code, samples};
use futures_util::StreamExt;
use image::ImageDecoder;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const PDF: &str = "application/pdf";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);

const THREAD: &str = "query($id: UUID!) { chat(id: $id) { messages(last: 50) { edges { node { \
     body attachments { id name mimeType sizeBytes width height url thumbnailUrl purged } } } } } }";

/// Every attachment of a chat's thread, oldest first, as `token` sees them.
async fn thread_attachments(app: &TestApp, token: &str, chat_id: &str) -> Vec<Value> {
    let data = app
        .data(THREAD, json!({ "id": chat_id }), Some(token))
        .await;
    data["chat"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|edge| edge["node"]["attachments"].as_array().unwrap().clone())
        .collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn documents_round_trip_byte_for_byte(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(Some("Ada")).await;
    let admin = app.admin_token().await;
    let (pdf, docx, text_file) = (samples::pdf(), samples::docx(), samples::text());
    let files: [FilePart; 3] = [
        ("invoice.pdf", &pdf, PDF),
        ("letter.docx", &docx, DOCX),
        ("notes.txt", &text_file, "text/plain"),
    ];
    let response = app
        .upload_with_body(&visitor, &chat_id, Some("my documents"), &files, None)
        .await;
    assert!(response.get("errors").is_none(), "{response}");
    let message = &response["data"]["sendMessage"];
    assert_eq!(message["body"], "my documents");
    assert_eq!(message["sender"], "VISITOR");
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 3);
    for (attachment, (name, bytes, mime)) in attachments.iter().zip(files) {
        assert_eq!(attachment["name"], name);
        assert_eq!(attachment["mimeType"], mime);
        assert_eq!(attachment["sizeBytes"], bytes.len());
        assert_eq!(attachment["width"], Value::Null);
        assert_eq!(attachment["height"], Value::Null);
        assert_eq!(attachment["thumbnailUrl"], Value::Null);
        assert_eq!(attachment["purged"], false);
        // Through the signed link, as an <a href> in the widget fetches it.
        let downloaded = app.download(text(&attachment["url"])).await;
        assert_eq!(sha256(&downloaded), sha256(bytes), "{name} via its link");
        // With a credential instead, as an API client may.
        let path = app.url(&format!("/api/chat/files/{}", text(&attachment["id"])));
        for token in [&visitor, &admin] {
            let response = app.fetch(&path, Some(token), None).await;
            assert_eq!(response.status(), 200, "{name}");
            let downloaded = response.bytes().await.unwrap();
            assert_eq!(sha256(&downloaded), sha256(bytes), "{name} via a token");
        }
    }

    // Stored under random, dated keys: nothing of the user's names.
    let stored = app.stored_objects().await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    for key in &stored {
        let parts: Vec<&str> = key.split('/').collect();
        assert!(
            parts.len() == 4
                && parts[0] == "chat"
                && parts[1].len() == 4
                && parts[2].len() == 2
                && Uuid::parse_str(parts[3]).is_ok(),
            "{key}"
        );
    }

    // An admin sends files the same way; a message may be files alone.
    let reply = app
        .upload_ok(&admin, &chat_id, &[("answer.pdf", &pdf, PDF)])
        .await;
    assert_eq!(reply["sender"], "ADMIN");
    assert_eq!(reply["body"], Value::Null);
    let downloaded = app.download(text(&reply["attachments"][0]["url"])).await;
    assert_eq!(sha256(&downloaded), sha256(&pdf));

    let names: Vec<Value> = thread_attachments(&app, &visitor, &chat_id)
        .await
        .iter()
        .map(|attachment| attachment["name"].clone())
        .collect();
    assert_eq!(
        names,
        ["invoice.pdf", "letter.docx", "notes.txt", "answer.pdf"]
    );
}

async fn images_get_dimensions_and_a_thumbnail(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (wide, photo, icon) = (
        samples::png(1000, 600),
        samples::jpeg(480, 640),
        samples::png(40, 30),
    );
    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[
                ("wide.png", &wide, "image/png"),
                ("photo.jpg", &photo, "image/jpeg"),
                ("icon.png", &icon, "image/png"),
            ],
        )
        .await;
    let expected = [
        ("image/png", (1000, 600), (320, 192)),
        ("image/jpeg", (480, 640), (240, 320)),
        ("image/png", (40, 30), (40, 30)),
    ];
    for (attachment, (mime, size, thumbnail_size)) in message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected)
    {
        assert_eq!(attachment["mimeType"], mime);
        assert_eq!(
            (attachment["width"].clone(), attachment["height"].clone()),
            (json!(size.0), json!(size.1))
        );
        let original = app.download(text(&attachment["url"])).await;
        assert_eq!(attachment["sizeBytes"], original.len(), "the stored size");
        let decoded = image::load_from_memory(&original).unwrap();
        assert_eq!((decoded.width(), decoded.height()), size);

        let thumbnail = app.download(text(&attachment["thumbnailUrl"])).await;
        assert_eq!(
            image::guess_format(&thumbnail).unwrap().to_mime_type(),
            mime,
            "a thumbnail keeps its image's format"
        );
        let thumbnail = image::load_from_memory(&thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), thumbnail_size);
        assert!(thumbnail.width().max(thumbnail.height()) <= 320);
    }
    assert_eq!(
        app.stored_objects().await.len(),
        6,
        "three images, three thumbnails"
    );
}

async fn exif_is_removed_and_the_picture_turned_upright(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let input = samples::jpeg_with_exif();
    // The sample is what it claims: a decoder finds the EXIF block, the camera and the
    // orientation in it.
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(&input)).unwrap();
    let exif = decoder
        .exif_metadata()
        .unwrap()
        .expect("the sample has EXIF");
    assert!(contains(&exif, samples::EXIF_CAMERA.as_bytes()));
    assert!(contains(&input, b"Exif\0\0"));
    assert_eq!(
        decoder.orientation().unwrap(),
        image::metadata::Orientation::Rotate90
    );

    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[("IMG_0001.jpg", &input, "image/jpeg")],
        )
        .await;
    let attachment = &message["attachments"][0];
    // 40x30 as stored by the camera, 30x40 as the viewer sees it.
    assert_eq!(
        (attachment["width"].clone(), attachment["height"].clone()),
        (json!(30), json!(40))
    );
    for url in [&attachment["url"], &attachment["thumbnailUrl"]] {
        let served = app.download(text(url)).await;
        assert!(!contains(&served, b"Exif"), "no EXIF block");
        assert!(!contains(&served, samples::EXIF_CAMERA.as_bytes()));
        let mut decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(&served)).unwrap();
        assert_eq!(decoder.exif_metadata().unwrap(), None);
        assert_eq!(
            decoder.orientation().unwrap(),
            image::metadata::Orientation::NoTransforms
        );
        assert_eq!(
            decoder.dimensions(),
            (30, 40),
            "turned upright in the pixels"
        );
    }
}

async fn refused_uploads_leave_nothing_behind(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (pdf, png, exe, html, svg) = (
        samples::pdf(),
        samples::png(40, 30),
        samples::exe(),
        samples::html(),
        samples::svg(),
    );
    let zip = samples::zip(&[("readme.txt", b"hello")]);
    let bomb = samples::png_bomb_header(100_000, 100_000);
    let wide_bomb = samples::png_bomb_header(9_000, 9_000);
    const UNSUPPORTED: &str = "UNSUPPORTED_FILE_TYPE";
    let cases: [(&str, Vec<FilePart>, &str, &str); 10] = [
        (
            "an executable renamed .png",
            vec![("holiday.png", &exe, "image/png")],
            UNSUPPORTED,
            "executable",
        ),
        (
            "an .exe",
            vec![("setup.exe", &exe, "application/octet-stream")],
            UNSUPPORTED,
            ".exe files are not accepted",
        ),
        (
            "HTML named .txt",
            vec![("notes.txt", &html, "text/plain")],
            UNSUPPORTED,
            "HTML",
        ),
        (
            "SVG named .txt",
            vec![("drawing.txt", &svg, "text/plain")],
            UNSUPPORTED,
            "SVG",
        ),
        (
            "an .svg",
            vec![("drawing.svg", &svg, "image/svg+xml")],
            UNSUPPORTED,
            ".svg files are not accepted",
        ),
        (
            "a ZIP renamed .docx",
            vec![("report.docx", &zip, DOCX)],
            UNSUPPORTED,
            "not a Word document",
        ),
        (
            "a decompression bomb (100000 x 100000 px)",
            vec![("huge.png", &bomb, "image/png")],
            UNSUPPORTED,
            "",
        ),
        (
            "a decompression bomb within the pixel limits (9000 x 9000 RGBA)",
            vec![("wide.png", &wide_bomb, "image/png")],
            UNSUPPORTED,
            "",
        ),
        (
            "two good files, then a bad one",
            vec![
                ("a.pdf", &pdf, PDF),
                ("b.png", &png, "image/png"),
                ("c.txt", &html, "text/plain"),
            ],
            UNSUPPORTED,
            "HTML",
        ),
        (
            "four files",
            vec![("a.pdf", &pdf[..], PDF); 4],
            "TOO_MANY_FILES",
            "",
        ),
    ];
    for (what, files, code, reason) in cases {
        let retry_key = what.replace(' ', "-");
        let response = app
            .upload_with_body(
                &visitor,
                &chat_id,
                Some("see attached"),
                &files,
                Some(&retry_key),
            )
            .await;
        assert_eq!(error_code(&response), Some(code), "{what}: {response}");
        let message = text(&response["errors"][0]["message"]);
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(app.row_counts(&chat_id).await, (0, 0), "{what}: no rows");
        assert_eq!(
            app.stored_objects().await,
            Vec::<String>::new(),
            "{what}: no files"
        );
    }

    let response = app.upload(&visitor, &chat_id, &[], None).await;
    assert_eq!(
        error_code(&response),
        Some("BAD_USER_INPUT"),
        "neither body nor file: {response}"
    );

    // A refused request did not use up its clientMessageId: the corrected retry goes through.
    let response = app
        .upload(
            &visitor,
            &chat_id,
            &[("a.pdf", &pdf, PDF)],
            Some("four-files"),
        )
        .await;
    assert!(response.get("errors").is_none(), "{response}");
    assert_eq!(app.row_counts(&chat_id).await, (1, 1));
    assert_eq!(app.stored_objects().await.len(), 1);
}

async fn an_attachment_only_message_is_valid_and_a_retry_stores_one_copy(
    backend: Backend,
    store: Store,
) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let png = samples::png(400, 300);
    let first = app
        .upload(
            &visitor,
            &chat_id,
            &[("shot.png", &png, "image/png")],
            Some("c-1"),
        )
        .await;
    assert!(first.get("errors").is_none(), "{first}");
    let first = &first["data"]["sendMessage"];
    assert_eq!(first["body"], Value::Null);
    assert_eq!(first["clientMessageId"], "c-1");
    let retry = app
        .upload(
            &visitor,
            &chat_id,
            &[("shot.png", &png, "image/png")],
            Some("c-1"),
        )
        .await;
    assert_eq!(retry["data"]["sendMessage"]["id"], first["id"], "{retry}");
    assert_eq!(
        retry["data"]["sendMessage"]["attachments"][0]["id"],
        first["attachments"][0]["id"]
    );
    assert_eq!(app.row_counts(&chat_id).await, (1, 1));
    assert_eq!(
        app.stored_objects().await.len(),
        2,
        "one image, one thumbnail"
    );
}

async fn an_oversize_file_is_cut_off_while_streaming(backend: Backend, store: Store) {
    const MIB: usize = 1024 * 1024;
    let app = spawn_app_on(backend, &store, |settings| {
        settings.max_file_bytes = MIB as u64;
    })
    .await;
    let (chat_id, visitor) = app.start_chat(None).await;

    let mut at_limit = samples::pdf();
    at_limit.resize(MIB, b'%');
    let response = app
        .upload(&visitor, &chat_id, &[("exactly.pdf", &at_limit, PDF)], None)
        .await;
    assert!(
        response.get("errors").is_none(),
        "exactly the limit: {response}"
    );
    assert_eq!(app.row_counts(&chat_id).await, (1, 1));

    let mut over = samples::pdf();
    over.resize(MIB + MIB / 2, b'%');
    let response = app
        .upload(&visitor, &chat_id, &[("big.pdf", &over, PDF)], None)
        .await;
    assert_eq!(error_code(&response), Some("FILE_TOO_LARGE"), "{response}");
    assert!(
        text(&response["errors"][0]["message"]).contains(&MIB.to_string()),
        "the limit is named: {response}"
    );

    // A file that never ends: the server answers after about the limit and hangs up, without
    // reading on. (Whether the client still reads that answer is a race: HTTP/1.1 servers close
    // a connection with unread request bytes, which may reset it before the answer is read.)
    let produced = Arc::new(AtomicU64::new(0));
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        post_endless_file(&app, &visitor, &chat_id, produced.clone()),
    )
    .await
    .expect("an answer or a hang-up, not a server reading forever");
    let produced = produced.load(Ordering::Relaxed);
    assert!(
        produced < 32 * MIB as u64,
        "the client got to send {produced} of 256 MiB"
    );
    if let Some(response) = answer {
        assert_eq!(error_code(&response), Some("FILE_TOO_LARGE"), "{response}");
    }

    assert_eq!(app.row_counts(&chat_id).await, (1, 1), "only the first");
    assert_eq!(app.stored_objects().await.len(), 1);
}

/// Streams a multipart upload whose one file goes on for 256 MiB, counting the bytes the client
/// was let to send. The server's answer, or `None` when the connection was cut before it could
/// be read.
async fn post_endless_file(
    app: &TestApp,
    token: &str,
    chat_id: &str,
    produced: Arc<AtomicU64>,
) -> Option<Value> {
    let boundary = "chatdesk-endless-boundary";
    let operations = json!({
        "query": "mutation($chatId: UUID!, $files: [Upload!]) { sendMessage(chatId: $chatId, attachments: $files) { id } }",
        "variables": { "chatId": chat_id, "files": [null] },
    });
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.files.0\"]}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"endless.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    );
    let chunk = vec![b'a'; 64 * 1024];
    let chunks = std::iter::once(head.into_bytes()).chain(std::iter::repeat_n(chunk, 4096));
    let body = futures_util::stream::iter(chunks).map(move |chunk| {
        produced.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk)
    });
    let sent = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("Apollo-Require-Preflight", "true")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    match sent {
        Ok(response) => {
            assert_eq!(response.status(), 413);
            Some(response.json().await.expect("a JSON response"))
        }
        Err(error) => {
            assert!(error.is_request(), "{error:?}");
            None
        }
    }
}

async fn the_file_route_is_guarded(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (_other_chat, other_visitor) = app.start_chat(None).await;
    let admin = app.admin_token().await;
    let (pdf, png) = (samples::pdf(), samples::png(400, 300));
    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[("a.pdf", &pdf, PDF), ("b.png", &png, "image/png")],
        )
        .await;
    let pdf_id = text(&message["attachments"][0]["id"]).to_owned();
    let png_id = text(&message["attachments"][1]["id"]).to_owned();
    let pdf_path = app.url(&format!("/api/chat/files/{pdf_id}"));
    let png_path = app.url(&format!("/api/chat/files/{png_id}"));
    let signed = app.local_url(text(&message["attachments"][0]["url"]));
    let signed_thumbnail = app.local_url(text(&message["attachments"][1]["thumbnailUrl"]));
    let query_of = |url: &str| url.split_once('?').unwrap().1.to_owned();
    let (exp, sig) = {
        let query = query_of(&signed);
        let mut exp = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("exp", value) => exp = Some(value.parse::<i64>().unwrap()),
                ("sig", value) => sig = Some(value.to_owned()),
                other => panic!("unexpected parameter {other:?}"),
            }
        }
        (exp.unwrap(), sig.unwrap())
    };
    let now = chrono::Utc::now().timestamp();
    let signer = &app.state.file_signer;
    let pdf_uuid = Uuid::parse_str(&pdf_id).unwrap();
    let sign = |exp: i64| signer.sign(pdf_uuid, Variant::Original, exp);
    let mut tampered = sig.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let allowed = [
        ("the signed link", signed.clone(), None),
        (
            "a link signed just now",
            format!("{pdf_path}?exp={}&sig={}", now + 60, sign(now + 60)),
            None,
        ),
        (
            "the visitor's own token",
            pdf_path.clone(),
            Some(visitor.as_str()),
        ),
        ("an admin JWT", pdf_path.clone(), Some(admin.as_str())),
        ("the signed thumbnail link", signed_thumbnail.clone(), None),
        (
            "the thumbnail with a token",
            format!("{png_path}/thumbnail"),
            Some(visitor.as_str()),
        ),
    ];
    for (what, url, token) in allowed {
        let response = app.fetch(&url, token, None).await;
        assert_eq!(response.status(), 200, "{what}");
    }

    let refused = [
        ("no credential", pdf_path.clone(), None),
        (
            "a tampered signature",
            format!("{pdf_path}?exp={exp}&sig={tampered}"),
            None,
        ),
        (
            "a later expiry with the same signature",
            format!("{pdf_path}?exp={}&sig={sig}", exp + 300),
            None,
        ),
        (
            "an expired link",
            format!("{pdf_path}?exp={}&sig={}", now - 1, sign(now - 1)),
            None,
        ),
        (
            "an expiry but no signature",
            format!("{pdf_path}?exp={exp}"),
            None,
        ),
        (
            "a signature but no expiry",
            format!("{pdf_path}?sig={sig}"),
            None,
        ),
        (
            "another file's signature",
            format!("{png_path}?{}", query_of(&signed)),
            None,
        ),
        (
            "a thumbnail's signature on the original",
            format!("{png_path}?{}", query_of(&signed_thumbnail)),
            None,
        ),
        (
            "another chat's visitor token",
            pdf_path.clone(),
            Some(other_visitor.as_str()),
        ),
        (
            "a made-up token",
            pdf_path.clone(),
            Some("vt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        (
            "the thumbnail of a PDF",
            format!("{pdf_path}/thumbnail"),
            Some(admin.as_str()),
        ),
        (
            "an unknown file",
            app.url(&format!("/api/chat/files/{}", Uuid::now_v7())),
            Some(admin.as_str()),
        ),
        (
            "not a file id",
            app.url("/api/chat/files/..%2F..%2Fchatdesk.db"),
            Some(admin.as_str()),
        ),
    ];
    let mut bodies = Vec::new();
    for (what, url, token) in refused {
        let response = app.fetch(&url, token, None).await;
        assert_eq!(response.status(), 404, "{what}");
        bodies.push(response.bytes().await.unwrap());
    }
    // Forbidden and missing look the same: nothing to probe.
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
}

async fn downloads_carry_safe_headers(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (pdf, png, text_file) = (samples::pdf(), samples::png(400, 300), samples::text());
    // Declared types lie; names carry paths, quotes, a parameter separator, non-ASCII and a
    // right-to-left override.
    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[
                (
                    "../../Rapport \"Q3\"; résumé\u{202E}.pdf",
                    &pdf,
                    "text/html",
                ),
                ("photo.png", &png, "application/octet-stream"),
                ("notes.txt", &text_file, "image/png"),
            ],
        )
        .await;
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments[0]["name"], "Rapport \"Q3\"; résumé.pdf");
    let expected = [
        (
            &attachments[0]["url"],
            "application/pdf",
            "attachment; filename=\"Rapport _Q3__ r_sum_.pdf\"; \
             filename*=UTF-8''Rapport%20%22Q3%22%3B%20r%C3%A9sum%C3%A9.pdf",
            pdf.len(),
        ),
        (
            &attachments[1]["url"],
            "image/png",
            "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png",
            attachments[1]["sizeBytes"].as_u64().unwrap() as usize,
        ),
        (
            &attachments[1]["thumbnailUrl"],
            "image/png",
            "inline; filename=\"thumbnail-photo.png\"; filename*=UTF-8''thumbnail-photo.png",
            0,
        ),
        (
            &attachments[2]["url"],
            "text/plain",
            "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt",
            text_file.len(),
        ),
    ];
    for (url, content_type, disposition, length) in expected {
        let response = app.fetch(&app.local_url(text(url)), None, None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), content_type);
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "content-security-policy"), "sandbox");
        assert_eq!(header(&response, "content-disposition"), disposition);
        let cache = header(&response, "cache-control");
        assert!(cache.starts_with("private"), "{cache}");
        assert_eq!(header(&response, "accept-ranges"), "bytes");
        let declared: usize = header(&response, "content-length").parse().unwrap();
        let body = response.bytes().await.unwrap();
        assert_eq!(declared, body.len());
        if length > 0 {
            assert_eq!(body.len(), length);
        }
    }
}

async fn range_requests_are_served(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let pdf = samples::pdf();
    let size = pdf.len();
    let message = app
        .upload_ok(&visitor, &chat_id, &[("range.pdf", &pdf, PDF)])
        .await;
    let signed = app.local_url(text(&message["attachments"][0]["url"]));
    let path = app.url(&format!(
        "/api/chat/files/{}",
        text(&message["attachments"][0]["id"])
    ));

    let partial = [
        ("bytes=0-99".to_owned(), 0..100),
        ("bytes=100-".to_owned(), 100..size),
        ("bytes=-50".to_owned(), size - 50..size),
        ("bytes=-1000000".to_owned(), 0..size),
        ("bytes=10-99999999".to_owned(), 10..size),
        (format!("bytes={}-{}", size - 1, size - 1), size - 1..size),
    ];
    for (range, expected) in partial {
        for (url, token) in [(&signed, None), (&path, Some(visitor.as_str()))] {
            let response = app.fetch(url, token, Some(&range)).await;
            assert_eq!(response.status(), 206, "{range}");
            assert_eq!(
                header(&response, "content-range"),
                format!("bytes {}-{}/{size}", expected.start, expected.end - 1),
                "{range}"
            );
            assert_eq!(
                header(&response, "content-length"),
                expected.len().to_string()
            );
            assert_eq!(header(&response, "content-type"), PDF);
            let body = response.bytes().await.unwrap();
            assert_eq!(&body[..], &pdf[expected.clone()], "{range}");
        }
    }

    for range in [format!("bytes={size}-"), format!("bytes={}-", size + 100)] {
        let response = app.fetch(&signed, None, Some(&range)).await;
        assert_eq!(response.status(), 416, "{range}");
        assert_eq!(
            header(&response, "content-range"),
            format!("bytes */{size}")
        );
    }
    let response = app.fetch(&signed, None, Some("bytes=50-10")).await;
    assert_eq!(response.status(), 416, "an inverted range");

    // Without Range, the whole file.
    let response = app.fetch(&signed, None, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], &pdf[..]);
}

async fn a_failed_transaction_removes_the_stored_files(backend: Backend, store: Store) {
    let app = spawn_app_on(backend.clone(), &store, |_| {}).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (pdf, png) = (samples::pdf(), samples::png(400, 300));
    let files: [FilePart; 2] = [("a.pdf", &pdf, PDF), ("b.png", &png, "image/png")];

    // An admin may name any chat, so a missing one is found out only in the transaction,
    // after the files were stored.
    let missing = Uuid::new_v4().to_string();
    let response = app
        .upload_with_body(&admin, &missing, Some("hello?"), &files, None)
        .await;
    assert_eq!(error_code(&response), Some("NOT_FOUND"), "{response}");
    assert_eq!(app.stored_objects().await, Vec::<String>::new());

    // The attachment rows fail after the message row was written: both roll back, and the
    // files go.
    let (create, drop) = match backend {
        Backend::Sqlite => (
            "CREATE TRIGGER refuse_attachments BEFORE INSERT ON chat_attachments \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                .to_owned(),
            "DROP TRIGGER refuse_attachments",
        ),
        Backend::Postgres(_) => (
            "CREATE FUNCTION refuse_attachments() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_attachments BEFORE INSERT ON chat_attachments \
             FOR EACH ROW EXECUTE FUNCTION refuse_attachments()"
                .to_owned(),
            "DROP TRIGGER refuse_attachments ON chat_attachments",
        ),
    };
    app.state.db.execute_unprepared(&create).await.unwrap();
    let response = app
        .upload_with_body(&visitor, &chat_id, Some("files"), &files, Some("k-1"))
        .await;
    assert_eq!(error_code(&response), Some("INTERNAL"), "{response}");
    assert!(
        !response.to_string().contains("refused by the test"),
        "no SQL reaches the client: {response}"
    );
    assert_eq!(
        app.row_counts(&chat_id).await,
        (0, 0),
        "the message rolled back too"
    );
    assert_eq!(app.stored_objects().await, Vec::<String>::new());

    app.state.db.execute_unprepared(drop).await.unwrap();
    let response = app
        .upload_with_body(&visitor, &chat_id, Some("files"), &files, Some("k-1"))
        .await;
    assert!(response.get("errors").is_none(), "{response}");
    assert_eq!(app.row_counts(&chat_id).await, (1, 2));
    assert_eq!(app.stored_objects().await.len(), 3);
}

async fn the_orphan_sweep_removes_only_old_unnamed_objects(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let (pdf, png) = (samples::pdf(), samples::png(400, 300));
    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[("a.pdf", &pdf, PDF), ("b.png", &png, "image/png")],
        )
        .await;
    let named = app.stored_objects().await;
    assert_eq!(named.len(), 3);
    let storage = app.state.storage.clone();
    let old_orphan = format!("chat/2020/01/{}", Uuid::new_v4());
    let old_thumbnail = format!("{old_orphan}.thumb");
    let fresh_orphan = format!("chat/2020/01/{}", Uuid::new_v4());
    for key in [&old_orphan, &old_thumbnail, &fresh_orphan] {
        storage
            .put_bytes(key, b"written before a crash".as_slice().into())
            .await
            .unwrap();
    }
    // Old enough to sweep, had no row named them: only the orphans may go.
    let mut can_backdate = true;
    for key in named.iter().chain([&old_orphan, &old_thumbnail]) {
        can_backdate &= app.backdate(key, TWO_HOURS);
    }
    // A crash mid-write leaves a hidden temp file in a local folder.
    let temp_leftover = format!("chat/2020/01/.{}.tmp", Uuid::new_v4());
    if let api::config::StorageLocation::Local(root) = &app.state.settings.storage {
        std::fs::write(root.join(&temp_leftover), b"half").unwrap();
        assert!(app.backdate(&temp_leftover, TWO_HOURS));
    }

    let report = retention::run_once(&app.state.db, storage.as_ref(), 90)
        .await
        .unwrap();
    let mut expected = named.clone();
    expected.push(fresh_orphan.clone());
    if can_backdate {
        let local = matches!(store, Store::Local);
        assert_eq!(report.removed_orphans, if local { 3 } else { 2 });
    } else {
        eprintln!("S3 without CHATDESK_TEST_S3_DATA: objects cannot be backdated");
        assert_eq!(report.removed_orphans, 0);
        expected.extend([old_orphan, old_thumbnail]);
    }
    expected.sort();
    assert_eq!(app.stored_objects().await, expected);
    assert_eq!(report.purged_attachments, 0);
    assert!(!report.skipped);
    // The named files still serve.
    for attachment in message["attachments"].as_array().unwrap() {
        app.download(text(&attachment["url"])).await;
    }
}

async fn retention_purges_old_files_and_keeps_the_rows(backend: Backend, store: Store) {
    let app = spawn_app_on(backend, &store, |_| {}).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let admin = app.admin_token().await;
    let (pdf, png) = (samples::pdf(), samples::png(400, 300));
    let old = app
        .upload_ok(&visitor, &chat_id, &[("old.png", &png, "image/png")])
        .await;
    let recent = app
        .upload_ok(&visitor, &chat_id, &[("recent.pdf", &pdf, PDF)])
        .await;
    let old_id = Uuid::parse_str(text(&old["attachments"][0]["id"])).unwrap();
    let old_url = app.local_url(text(&old["attachments"][0]["url"]));
    let old_row = entity::chat_attachment::Entity::find_by_id(old_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let old_keys = [
        old_row.storage_path.clone(),
        old_row.thumbnail_path.clone().unwrap(),
    ];

    entity::chat_attachment::Entity::update_many()
        .col_expr(
            entity::chat_attachment::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(100)),
        )
        .filter(entity::chat_attachment::Column::Id.eq(old_id))
        .exec(&app.state.db)
        .await
        .unwrap();

    // 0 keeps forever.
    let report = retention::run_once(&app.state.db, app.state.storage.as_ref(), 0)
        .await
        .unwrap();
    assert_eq!(report.purged_attachments, 0);
    assert_eq!(app.stored_objects().await.len(), 3);

    let report = retention::run_once(&app.state.db, app.state.storage.as_ref(), 90)
        .await
        .unwrap();
    assert_eq!(report.purged_attachments, 1);
    for key in &old_keys {
        assert!(
            app.state.storage.get(key, None).await.unwrap().is_none(),
            "{key} is gone"
        );
    }
    assert_eq!(app.stored_objects().await.len(), 1, "the recent PDF stays");

    for token in [&visitor, &admin] {
        let attachments = thread_attachments(&app, token, &chat_id).await;
        assert_eq!(attachments.len(), 2);
        let (purged, kept) = (&attachments[0], &attachments[1]);
        assert_eq!(purged["name"], "old.png", "the row stays");
        assert_eq!(purged["purged"], true);
        assert_eq!(purged["url"], Value::Null);
        assert_eq!(purged["thumbnailUrl"], Value::Null);
        assert_eq!(purged["width"], 400);
        assert_eq!(kept["purged"], false);
        assert_eq!(
            sha256(&app.download(text(&kept["url"])).await),
            sha256(&pdf)
        );
    }
    assert_eq!(recent["attachments"][0]["purged"], false);
    // Links handed out before the purge now lead nowhere.
    assert_eq!(app.fetch(&old_url, None, None).await.status(), 404);
    let by_token = app.url(&format!("/api/chat/files/{old_id}"));
    assert_eq!(
        app.fetch(&by_token, Some(&visitor), None).await.status(),
        404
    );

    let again = retention::run_once(&app.state.db, app.state.storage.as_ref(), 90)
        .await
        .unwrap();
    assert_eq!(again.purged_attachments, 0, "purging is done once");
}

storage_tests!(
    documents_round_trip_byte_for_byte,
    images_get_dimensions_and_a_thumbnail,
    exif_is_removed_and_the_picture_turned_upright,
    refused_uploads_leave_nothing_behind,
    an_attachment_only_message_is_valid_and_a_retry_stores_one_copy,
    an_oversize_file_is_cut_off_while_streaming,
    the_file_route_is_guarded,
    downloads_carry_safe_headers,
    range_requests_are_served,
    a_failed_transaction_removes_the_stored_files,
    the_orphan_sweep_removes_only_old_unnamed_objects,
    retention_purges_old_files_and_keeps_the_rows,
);

/// On Postgres the jobs take an advisory lock: while another instance holds it, a run does
/// nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_one_instance_at_a_time() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let app = common::spawn_app(Backend::Postgres(url)).await;
    let other_instance = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let holding = sea_orm::TransactionTrait::begin(&other_instance)
        .await
        .unwrap();
    holding
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [retention::JOBS_LOCK.into()],
        ))
        .await
        .unwrap();
    let report = retention::run_once(&app.state.db, app.state.storage.as_ref(), 90)
        .await
        .unwrap();
    assert!(report.skipped, "{report:?}");
    holding.commit().await.unwrap();
    let report = retention::run_once(&app.state.db, app.state.storage.as_ref(), 90)
        .await
        .unwrap();
    assert!(!report.skipped, "{report:?}");
}
