//! Hostile input (issue 9, point 4): every request here is answered with an error, the server
//! keeps serving, and nothing is stored: malformed JSON and multipart bodies, broken `map`s,
//! truncated and dropped uploads, slow-loris bodies, queries past the limits, probing for field
//! suggestions, hostile file names, type confusion, and markup in message bodies.

use crate::common;
use crate::common::resilience_support;

use std::time::{Duration, Instant};

use common::{Backend, TestApp, error_code, spawn_app, spawn_app_with};
use resilience_support::{
    ANSWER_WITHIN, Part, attachment_count, connect, consistency, local_url, multipart,
    multipart_with, post_graphql, post_multipart, read_response, request_head, upload,
    upload_parts, uploads_dir,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const SEND: &str = "mutation($chatId: UUID!, $body: String, $files: [Upload!]) { \
     sendMessage(chatId: $chatId, body: $body, attachments: $files) { id attachments { id } } }";

/// The answer is an error: a 4xx, or a GraphQL response with errors and no data. Returns the
/// error code (or `HTTP <status>` for answers from below GraphQL).
fn assert_refused(case: &str, status: u16, body: &Value) -> String {
    let graphql_error = status == 200
        && body["errors"].as_array().is_some_and(|e| !e.is_empty())
        && (body["data"].is_null()
            || body["data"]
                .as_object()
                .is_some_and(|data| data.values().all(Value::is_null)));
    let text = body.to_string();
    assert!(
        (400..500).contains(&status) || graphql_error,
        "{case}: expected an error, got {status} {}",
        &text[..text.len().min(500)]
    );
    for leak in ["panicked", "/work/", "src/", "SELECT ", "INSERT ", "sqlx"] {
        assert!(
            !text.contains(leak),
            "{case}: the error leaks {leak:?}: {text}"
        );
    }
    error_code(body).map_or_else(|| format!("HTTP {status}"), str::to_owned)
}

/// Nothing reached the database or the storage, and the server still answers.
async fn assert_nothing_stored_and_serving(app: &TestApp, chat_id: &str) {
    assert_eq!(
        resilience_support::message_count(&app.state.db, chat_id).await,
        0,
        "no message may be stored"
    );
    assert_eq!(
        attachment_count(&app.state.db).await,
        0,
        "no attachment row"
    );
    let files = resilience_support::stored_keys(&uploads_dir(app));
    assert!(
        files.iter().all(|key| !key.starts_with("chat/")),
        "no stored file: {files:?}"
    );
    let policy = app
        .data("{ uploadPolicy { maxFiles } }", json!({}), None)
        .await;
    assert!(policy["uploadPolicy"]["maxFiles"].as_i64().is_some());
    assert_eq!(app.get("/healthz").await.status(), 200);
}

async fn malformed_json_bodies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let marker_variables = json!({ "query": SEND, "variables": {
        "chatId": chat_id, "files": ["#__graphql_file__:0"] } });
    let marker_in_query = json!({ "query": format!(
        "mutation {{ sendMessage(chatId: \"{chat_id}\", attachments: [\"#__graphql_file__:0\"]) {{ id }} }}") });
    let cases: Vec<(&str, Option<&str>, bool, Vec<u8>)> = vec![
        ("empty body", Some("application/json"), false, Vec::new()),
        (
            "half an object",
            Some("application/json"),
            false,
            b"{".to_vec(),
        ),
        ("null", Some("application/json"), false, b"null".to_vec()),
        (
            "empty batch",
            Some("application/json"),
            false,
            b"[]".to_vec(),
        ),
        (
            "a number for the query",
            Some("application/json"),
            false,
            br#"{"query": 5}"#.to_vec(),
        ),
        (
            "a bare string",
            Some("application/json"),
            false,
            br#""mutation""#.to_vec(),
        ),
        (
            "variables that are not an object",
            Some("application/json"),
            false,
            br#"{"query": "{ uploadPolicy { maxFiles } }", "variables": 7}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            false,
            b"{\"query\": \"\xff\xfe\xfd\"}".to_vec(),
        ),
        (
            "JSON nested 100,000 deep",
            Some("application/json"),
            false,
            "[".repeat(100_000).into_bytes(),
        ),
        (
            "a GraphQL syntax error",
            Some("application/json"),
            false,
            serde_json::to_vec(&json!({ "query": "mutation { sendMessage(" })).unwrap(),
        ),
        (
            "an upload marker in the variables",
            Some("application/json"),
            false,
            serde_json::to_vec(&marker_variables).unwrap(),
        ),
        (
            "an upload marker in the query text",
            Some("application/json"),
            false,
            serde_json::to_vec(&marker_in_query).unwrap(),
        ),
        (
            "a multipart body labelled JSON",
            Some("application/json"),
            false,
            multipart(&[Part::field("operations", "{}")]).1,
        ),
        (
            "a form post (CSRF)",
            Some("application/x-www-form-urlencoded"),
            false,
            format!("query=mutation%7BsendMessage(chatId:%22{chat_id}%22,body:%22x%22)%7Bid%7D%7D")
                .into_bytes(),
        ),
        (
            "text/plain JSON without a preflight header (CSRF)",
            Some("text/plain"),
            false,
            serde_json::to_vec(
                &json!({ "query": SEND, "variables": { "chatId": chat_id, "body": "csrf" } }),
            )
            .unwrap(),
        ),
        (
            "no content type (CSRF)",
            None,
            false,
            serde_json::to_vec(
                &json!({ "query": SEND, "variables": { "chatId": chat_id, "body": "csrf" } }),
            )
            .unwrap(),
        ),
        (
            "an unknown content type",
            Some("application/x-evil"),
            true,
            b"\x00\x01\x02".to_vec(),
        ),
    ];
    let mut seen = Vec::new();
    for (case, content_type, preflight, body) in cases {
        let (status, answer) =
            post_graphql(&app, content_type, preflight, Some(&token), body).await;
        let code = assert_refused(case, status, &answer);
        seen.push(format!("{case}: {status} {code}"));
    }
    // The CSRF rule answers 400 with a code, whatever else the request holds.
    for line in seen.iter().filter(|line| line.contains("CSRF")) {
        assert!(line.contains(": 400 BAD_USER_INPUT"), "{line}");
    }
    for line in seen.iter().filter(|line| line.contains("upload marker")) {
        assert!(line.contains(": 400 BAD_USER_INPUT"), "{line}");
    }
    println!("{}", seen.join("\n"));
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn broken_multipart_bodies_are_refused(backend: Backend) {
    // A small file limit, to check "larger than allowed" cheaply.
    let app = spawn_app_with(backend, |settings| settings.max_file_bytes = 256 * 1024).await;
    let (chat_id, token) = app.start_chat(None).await;
    let pdf = common::samples::small_pdf();
    let good = upload_parts(&chat_id, None, None, &[("a.pdf", pdf.clone())]);
    let operations = good[0].clone();
    let map = good[1].clone();
    let file = good[2].clone();
    let renamed = |part: &Part, name: &str| Part {
        name: name.to_owned(),
        ..part.clone()
    };
    let with_body = |part: &Part, body: &str| Part {
        body: body.as_bytes().to_vec(),
        ..part.clone()
    };
    let ops_no_files = Part::field(
        "operations",
        json!({ "query": SEND, "variables": { "chatId": chat_id, "files": [] } }).to_string(),
    );

    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "no boundary in the content type",
            "multipart/form-data".to_owned(),
            multipart(&good).1,
        ),
        (
            "another boundary than declared",
            "multipart/form-data; boundary=not-the-one".to_owned(),
            multipart(&good).1,
        ),
        ("an empty body", multipart(&[]).0, Vec::new()),
        (
            "no closing delimiter",
            multipart(&good).0,
            multipart_with(resilience_support::BOUNDARY, &good, false).1,
        ),
        (
            "garbage between the delimiters",
            multipart(&good).0,
            format!(
                "--{b}\r\nthis is not a part header\r\n\r\n--{b}--\r\n",
                b = resilience_support::BOUNDARY
            )
            .into_bytes(),
        ),
        (
            "no operations part",
            multipart(&[map.clone(), file.clone()]).0,
            multipart(&[map.clone(), file.clone()]).1,
        ),
        (
            "no map part",
            multipart(&[operations.clone(), file.clone()]).0,
            multipart(&[operations.clone(), file.clone()]).1,
        ),
        (
            "operations that are not JSON",
            multipart(&good).0,
            multipart(&[
                with_body(&operations, "not json"),
                map.clone(),
                file.clone(),
            ])
            .1,
        ),
        (
            "a map that is not JSON",
            multipart(&good).0,
            multipart(&[operations.clone(), with_body(&map, "{{{"), file.clone()]).1,
        ),
        (
            "a map of the wrong shape",
            multipart(&good).0,
            multipart(&[
                operations.clone(),
                with_body(&map, r#"{"0": "variables.files.0"}"#),
                file.clone(),
            ])
            .1,
        ),
        (
            "a map naming a part that was not sent",
            multipart(&good).0,
            multipart(&[operations.clone(), map.clone(), renamed(&file, "1")]).1,
        ),
        (
            "a map pointing at a variable that does not exist",
            multipart(&good).0,
            multipart(&[
                ops_no_files.clone(),
                with_body(&map, r#"{"0": ["variables.nothing.here"]}"#),
                file.clone(),
            ])
            .1,
        ),
        (
            "a map pointing past the end of the list",
            multipart(&good).0,
            multipart(&[
                ops_no_files.clone(),
                with_body(&map, r#"{"0": ["variables.files.5"]}"#),
                file.clone(),
            ])
            .1,
        ),
        (
            "a map pointing into the query text",
            multipart(&good).0,
            multipart(&[
                ops_no_files.clone(),
                with_body(&map, r#"{"0": ["query"]}"#),
                file.clone(),
            ])
            .1,
        ),
        (
            "a file part without a file name",
            multipart(&good).0,
            multipart(&[
                operations.clone(),
                map.clone(),
                Part {
                    filename: None,
                    ..file.clone()
                },
            ])
            .1,
        ),
        (
            "a file larger than allowed",
            multipart(&good).0,
            multipart(&[
                operations.clone(),
                map.clone(),
                with_body(&file, &"a".repeat(300 * 1024)),
            ])
            .1,
        ),
        (
            "more files than allowed",
            multipart(&good).0,
            multipart(&upload_parts(
                &chat_id,
                None,
                None,
                &[
                    ("1.pdf", pdf.clone()),
                    ("2.pdf", pdf.clone()),
                    ("3.pdf", pdf.clone()),
                    ("4.pdf", pdf.clone()),
                    ("5.pdf", pdf.clone()),
                    ("6.pdf", pdf.clone()),
                ],
            ))
            .1,
        ),
    ];
    let mut seen = Vec::new();
    for (case, content_type, body) in cases {
        let (status, answer) = post_multipart(&app, Some(&token), &content_type, body).await;
        let code = assert_refused(case, status, &answer);
        seen.push(format!("{case}: {status} {code}"));
    }
    println!("{}", seen.join("\n"));
    for expected in [
        "a file larger than allowed: 413 FILE_TOO_LARGE",
        "more files than allowed: 400 TOO_MANY_FILES",
        "no operations part: 400 BAD_USER_INPUT",
        "no map part: 400 BAD_USER_INPUT",
        "a map naming a part that was not sent: 400 BAD_USER_INPUT",
    ] {
        assert!(
            seen.iter().any(|line| line == expected),
            "{expected}: {seen:#?}"
        );
    }
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn duplicate_and_unknown_parts_never_become_attachments(backend: Backend) {
    // The multipart spec does not forbid extra parts and async-graphql ignores them; what must
    // hold is that only the part the map names becomes an attachment, once.
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let pdf = common::samples::small_pdf();
    let good = upload_parts(&chat_id, None, None, &[("named.pdf", pdf.clone())]);
    let mut unknown_file = Part::file("evil", "evil.pdf", pdf.clone());
    unknown_file.content_type = Some("application/pdf".into());
    let cases: Vec<(&str, Vec<Part>)> = vec![
        (
            "an unknown file part",
            vec![
                good[0].clone(),
                good[1].clone(),
                good[2].clone(),
                unknown_file.clone(),
            ],
        ),
        (
            "an unknown field",
            vec![
                good[0].clone(),
                Part::field(
                    "extra",
                    "{\"query\": \"mutation { startChat { chatToken } }\"}",
                ),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
        (
            "the file part twice",
            vec![
                good[0].clone(),
                good[1].clone(),
                good[2].clone(),
                good[2].clone(),
            ],
        ),
    ];
    for (case, parts) in cases {
        let before = attachment_count(&app.state.db).await;
        let (content_type, body) = multipart(&parts);
        let (status, answer) = post_multipart(&app, Some(&token), &content_type, body).await;
        let after = attachment_count(&app.state.db).await;
        if status == 200 && answer["errors"].is_null() {
            let attachments = answer["data"]["sendMessage"]["attachments"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(attachments.len(), 1, "{case}: {answer}");
            assert_eq!(after, before + 1, "{case}: one row for the named part only");
        } else {
            assert_refused(case, status, &answer);
            assert_eq!(after, before, "{case}: nothing stored");
        }
    }
    let report = consistency(&app.state.db, &uploads_dir(&app)).await;
    assert!(
        report.missing.is_empty() && report.unnamed.is_empty(),
        "{report:?}"
    );
}

/// Thousands of tiny file parts would each hold an open temp file if they were spooled before
/// being counted; they are refused as the body streams instead, and no file handles pile up.
async fn a_flood_of_file_parts_is_cut_off(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    // Temp files only: the other tests of the binary share this process and its sockets.
    let temp = std::env::temp_dir();
    let open_files = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .filter(|target| target.starts_with(&temp))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = open_files();

    // Parts the map does not name: refused at the first one. (Few enough to fit the socket
    // buffers, so the client can read the early answer.)
    let mut unnamed = upload_parts(
        &chat_id,
        None,
        None,
        &[("one.pdf", common::samples::small_pdf())],
    );
    for n in 0..300 {
        unnamed.push(Part::file(&format!("x{n}"), "x.pdf", Vec::new()));
    }
    // A map naming more files than a message may carry: refused before any file part.
    let many: Vec<(&str, Vec<u8>)> = (0..1_500).map(|_| ("x.pdf", Vec::new())).collect();
    let named = upload_parts(&chat_id, None, None, &many);

    for (parts, code) in [(unnamed, "BAD_USER_INPUT"), (named, "TOO_MANY_FILES")] {
        // The server answers these before reading them to the end and closes the connection,
        // so each goes out on a connection of its own.
        app.client = reqwest::Client::new();
        let (content_type, body) = multipart(&parts);
        let (status, answer) = post_multipart(&app, Some(&token), &content_type, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], code, "{answer}");
    }
    let after = open_files();
    assert!(
        after < before + 100,
        "open files grew from {before} to {after}"
    );
    app.client = reqwest::Client::new();
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn truncated_and_dropped_uploads_leave_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let auth = format!("Bearer {token}");
    let pdf = [common::samples::small_pdf(), vec![b' '; 64 * 1024]].concat();
    let (content_type, body) = multipart(&upload_parts(&chat_id, None, None, &[("a.pdf", pdf)]));

    // 1. The body ends (half-close) before its Content-Length: an error comes back.
    let mut stream = connect(app.port).await;
    let head = request_head(
        app.port,
        &content_type,
        Some(body.len()),
        &[("Authorization", &auth)],
    );
    stream.write_all(&head).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_response(&mut stream, ANSWER_WITHIN).await;
    if let Some((status, text)) = &answer {
        assert!(
            (400..500).contains(status),
            "truncated upload: {status} {text}"
        );
    }

    // 2. The client vanishes mid-body, several times, at different points.
    for cut in [10, body.len() / 3, body.len() - 10] {
        let mut stream = connect(app.port).await;
        stream.write_all(&head).await.unwrap();
        stream.write_all(&body[..cut]).await.unwrap();
        drop(stream);
    }

    // 3. More bytes than declared: only the declared ones are read, which cut the upload short.
    let mut stream = connect(app.port).await;
    let short = request_head(
        app.port,
        &content_type,
        Some(400),
        &[("Authorization", &auth)],
    );
    stream.write_all(&short).await.unwrap();
    let _ = stream.write_all(&body).await;
    let (status, text) = read_response(&mut stream, ANSWER_WITHIN)
        .await
        .expect("an answer to a body longer than declared");
    assert!(
        (400..500).contains(&status),
        "longer than declared: {status} {text}"
    );

    // 4. A chunked body with a broken chunk header.
    let mut stream = connect(app.port).await;
    let chunked = request_head(
        app.port,
        &content_type,
        None,
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
    );
    stream.write_all(&chunked).await.unwrap();
    stream.write_all(b"zz\r\nnot a chunk\r\n").await.unwrap();
    if let Some((status, text)) = read_response(&mut stream, ANSWER_WITHIN).await {
        assert!(
            (400..500).contains(&status),
            "broken chunk: {status} {text}"
        );
    }

    // 5. A declared length past the body limit is refused before a byte of it is read.
    let mut stream = connect(app.port).await;
    let huge = request_head(
        app.port,
        &content_type,
        Some(app.state.settings.max_body_bytes() + 1),
        &[("Authorization", &auth)],
    );
    stream.write_all(&huge).await.unwrap();
    let (status, _) = read_response(&mut stream, ANSWER_WITHIN)
        .await
        .expect("an answer to an oversize Content-Length");
    assert_eq!(status, 413, "oversize Content-Length");

    // Give the server a moment to notice the dropped connections, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn slow_loris_bodies_are_cut_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let auth = format!("Bearer {token}");
    let pdf = [common::samples::small_pdf(), vec![b' '; 32 * 1024]].concat();
    let (content_type, body) = multipart(&upload_parts(&chat_id, None, None, &[("a.pdf", pdf)]));
    let head = request_head(
        app.port,
        &content_type,
        Some(body.len()),
        &[("Authorization", &auth)],
    );
    let limit = api::graphql::http::BODY_GRACE + Duration::from_secs(8);

    // Headers, then silence.
    let silent = {
        let head = head.clone();
        let port = app.port;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = connect(port).await;
            stream.write_all(&head).await.unwrap();
            let answer = read_response(&mut stream, Duration::from_secs(40)).await;
            (answer, started.elapsed())
        })
    };
    // Headers, then a byte every 300 ms: never silent for long, yet hopelessly slow.
    let trickle = {
        let head = head.clone();
        let body = body.clone();
        let port = app.port;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = connect(port).await;
            stream.write_all(&head).await.unwrap();
            for byte in body.iter().take(200) {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut probe = [0u8; 1];
                // Stop trickling as soon as the server has answered.
                if let Ok(Ok(read)) =
                    tokio::time::timeout(Duration::from_millis(300), stream.peek(&mut probe)).await
                    && read > 0
                {
                    break;
                }
            }
            let answer = read_response(&mut stream, Duration::from_secs(40)).await;
            (answer, started.elapsed())
        })
    };
    for (name, task) in [("silent", silent), ("trickle", trickle)] {
        let (answer, elapsed) = task.await.unwrap();
        let (status, text) =
            answer.unwrap_or_else(|| panic!("{name}: no answer (the server waited forever?)"));
        assert!((400..500).contains(&status), "{name}: {status} {text}");
        assert!(text.contains("too slowly"), "{name}: {text}");
        assert!(elapsed < limit, "{name}: cut off only after {elapsed:?}");
        println!("slow-loris {name}: {status} after {elapsed:?}");
    }
    assert_nothing_stored_and_serving(&app, &chat_id).await;

    // A slow but honest upload (about 16 KiB/s for 2 s) is not cut off.
    let mut stream = connect(app.port).await;
    stream.write_all(&head).await.unwrap();
    for chunk in body.chunks(4096) {
        stream.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, text) = read_response(&mut stream, ANSWER_WITHIN)
        .await
        .expect("an answer to a slow upload");
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("\"errors\""), "{text}");
}

async fn queries_past_the_limits_are_refused(backend: Backend) {
    use api::graphql::schema::{MAX_COMPLEXITY, MAX_DEPTH, MAX_DIRECTIVES};
    let app = spawn_app(backend).await;
    let (_, visitor) = app.start_chat(None).await;

    let mut deep = String::from("name");
    for _ in 0..MAX_DEPTH + 3 {
        deep = format!("ofType {{ {deep} }}");
    }
    let too_deep = format!("{{ __schema {{ types {{ fields {{ type {{ {deep} }} }} }} }} }}");
    let too_complex = format!(
        "{{ {} }}",
        (0..MAX_COMPLEXITY)
            .map(|i| format!("a{i}: uploadPolicy {{ maxFiles }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let alias_flood = format!(
        "{{ {} }}",
        (0..MAX_COMPLEXITY)
            .map(|i| format!("a{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let directives = format!(
        "{{ uploadPolicy {} {{ maxFiles }} }}",
        "@include(if: true) ".repeat(MAX_DIRECTIVES + 1)
    );
    for (case, query, needle) in [
        ("too deep", too_deep.as_str(), "nested too deep"),
        ("too complex", too_complex.as_str(), "too complex"),
        ("an alias flood", alias_flood.as_str(), "too complex"),
        ("too many directives", directives.as_str(), "directives"),
    ] {
        let started = Instant::now();
        let (status, answer) =
            resilience_support_post_json(&app, &json!({ "query": query }), Some(&visitor)).await;
        assert_refused(case, status, &answer);
        assert!(
            answer.to_string().to_lowercase().contains(needle),
            "{case}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{case}: slow");
    }

    let one = json!({ "query": "{ uploadPolicy { maxFiles } }" });
    let batch = |n: usize| Value::Array(vec![one.clone(); n]);
    let max = api::graphql::http::MAX_BATCH;
    let (status, answer) = resilience_support_post_json(&app, &batch(max), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().map(Vec::len), Some(max), "{answer}");
    let (status, answer) = resilience_support_post_json(&app, &batch(max + 1), None).await;
    assert_eq!(assert_refused("batch", status, &answer), "BAD_USER_INPUT");
    assert_eq!(status, 400);
    // A batch of mutations past the cap runs none of them.
    let (chat_id, token) = app.start_chat(None).await;
    let send = json!({ "query": SEND, "variables": { "chatId": chat_id, "body": "batched" } });
    let (status, _) =
        resilience_support_post_json(&app, &Value::Array(vec![send; max + 1]), Some(&token)).await;
    assert_eq!(status, 400);
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn resilience_support_post_json(
    app: &TestApp,
    body: &Value,
    token: Option<&str>,
) -> (u16, Value) {
    post_graphql(
        app,
        Some("application/json"),
        false,
        token,
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

async fn errors_suggest_no_field_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let admin = app.admin_token().await;
    let probes = [
        "{ chatz }".to_owned(),
        "{ uploadPolicy { maxFile } }".to_owned(),
        "{ chats(filter: { stauts: [OPEN] }) { totalCount } }".to_owned(),
        format!("mutation {{ setChatStatus(chatId: \"{chat_id}\", status: OPNE) {{ id }} }}"),
        format!("mutation {{ sendMesage(chatId: \"{chat_id}\", body: \"x\") {{ id }} }}"),
        "{ uploadPolicy { ...F } } fragment F on UploadPolicyy { maxFiles }".to_owned(),
        "query($f: ChatFiltr) { chats(filter: $f) { totalCount } }".to_owned(),
        "{ me { emial } }".to_owned(),
    ];
    for token in [None, Some(visitor.as_str()), Some(admin.as_str())] {
        for probe in &probes {
            let (status, answer) =
                resilience_support_post_json(&app, &json!({ "query": probe }), token).await;
            assert_refused(probe, status, &answer);
            let text = answer.to_string();
            assert!(
                !text.to_lowercase().contains("did you mean"),
                "{probe}: suggestions leak the schema: {text}"
            );
        }
    }
    assert_nothing_stored_and_serving(&app, &chat_id).await;
}

async fn hostile_file_names_are_sanitised(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let long = format!("{}.pdf", "a".repeat(9_996));
    // (name as sent in the part header, must it be stored?) Raw NUL, CR, LF and other C0
    // controls cannot travel in a multipart header at all: the parser refuses the body, which
    // is also fine. Everything that can travel is stored under a sanitised name.
    let names = [
        ("../../../../etc/passwd.pdf".to_owned(), true),
        ("..\\..\\Windows\\System32\\evil.pdf".to_owned(), true),
        ("/absolute/path/report.pdf".to_owned(), true),
        ("tab\there\u{85}next\u{9b}[31mcsi.pdf".to_owned(), true),
        ("invoice\u{202E}fdp.exe.pdf".to_owned(), true),
        ("isolate\u{2067}gnp\u{2069}.pdf".to_owned(), true),
        ("quote\\\"semi;colon.pdf".to_owned(), true),
        (long.clone(), true),
        ("nul\u{0}byte.pdf".to_owned(), false),
        ("bell\u{7}escape\u{1b}[31mred\u{8}.pdf".to_owned(), false),
        ("new\nline\r.pdf".to_owned(), false),
        ("....pdf".to_owned(), false),
    ];
    let mut stored = 0;
    for (name, must_store) in &names {
        let (status, answer) = upload(
            &app,
            &token,
            &chat_id,
            None,
            &[(name, common::samples::small_pdf())],
        )
        .await;
        let shown = name.escape_debug().to_string();
        let shown = &shown[..shown.len().min(60)];
        if status != 200 || !answer["errors"].is_null() {
            // Refusing a name the multipart parser cannot read is fine; storing it raw is not.
            assert!(!must_store, "{shown}: {status} {answer}");
            let code = assert_refused(shown, status, &answer);
            println!(
                "refused {shown}: {status} {code} {}",
                answer["errors"][0]["message"]
            );
            continue;
        }
        stored += 1;
        let kept = answer["data"]["sendMessage"]["attachments"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: {answer}"))
            .to_owned();
        assert!(!kept.is_empty() && kept.len() <= 255, "{shown}: {kept:?}");
        assert!(
            !kept.contains(['/', '\\'])
                && !kept.chars().any(|c| c.is_control()
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
            "{shown}: kept {kept:?}"
        );
        assert!(
            kept.ends_with(".pdf") || kept == "file",
            "{shown}: {kept:?}"
        );
        // The download names the file safely: one header line, nothing injected.
        let url = local_url(
            &app,
            answer["data"]["sendMessage"]["attachments"][0]["url"]
                .as_str()
                .unwrap(),
        );
        let response = app.client.get(&url).send().await.expect("download");
        assert_eq!(response.status(), 200, "{shown}");
        let disposition = response
            .headers()
            .get("content-disposition")
            .map(|value| value.as_bytes().to_vec())
            .unwrap_or_default();
        assert!(
            !disposition.iter().any(|b| b.is_ascii_control()) && !disposition.is_empty(),
            "{shown}: {:?}",
            String::from_utf8_lossy(&disposition)
        );
    }
    assert!(stored >= names.iter().filter(|(_, must)| *must).count());
    // Whatever the name, the file is stored under a name of the server's choosing.
    let rows = entity::chat_attachment::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), stored);
    for row in &rows {
        let parts: Vec<&str> = row.storage_path.split('/').collect();
        assert!(
            parts.len() == 4
                && parts[0] == "chat"
                && uuid::Uuid::parse_str(parts[3]).is_ok()
                && !row.storage_path.contains(".pdf"),
            "{}",
            row.storage_path
        );
        assert!(row.original_name.len() <= 255);
    }
    let kept_long = rows
        .iter()
        .find(|row| row.original_name.starts_with("aaaa"))
        .expect("the 10,000-character name was stored");
    assert!(kept_long.original_name.ends_with(".pdf"));
}

use sea_orm::EntityTrait;

async fn type_confusion_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let refused: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "a Linux executable named .png",
            "photo.png",
            resilience_support::elf(),
        ),
        (
            "a Windows executable named .jpg",
            "photo.jpg",
            resilience_support::windows_exe(),
        ),
        (
            "a ZIP that is not a Word document",
            "letter.docx",
            common::samples::zip(&[("readme.txt", b"hello"), ("run.sh", b"#!/bin/sh\n")]),
        ),
        (
            "SVG named .png",
            "logo.png",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
        ),
        (
            "HTML named .txt",
            "notes.txt",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
        (
            "a shell script named .txt",
            "notes.txt",
            b"#!/bin/sh\nrm -rf /\n".to_vec(),
        ),
        (
            "a PDF named .png",
            "photo.png",
            common::samples::small_pdf(),
        ),
        ("a PNG named .exe", "photo.exe", common::samples::png(8, 8)),
    ];
    for (case, name, bytes) in refused {
        let (status, answer) = upload(&app, &token, &chat_id, None, &[(name, bytes)]).await;
        assert_eq!(
            assert_refused(case, status, &answer),
            "UNSUPPORTED_FILE_TYPE",
            "{case}: {answer}"
        );
    }
    // A decompression bomb: 2 MB that would inflate to 324 MB of pixels.
    let bomb = resilience_support::png_bomb();
    assert!(bomb.len() < 3 * 1024 * 1024);
    let started = Instant::now();
    let (status, answer) = upload(&app, &token, &chat_id, None, &[("bomb.png", bomb)]).await;
    assert_eq!(
        assert_refused("a decompression bomb", status, &answer),
        "UNSUPPORTED_FILE_TYPE",
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the bomb was refused only after {:?}",
        started.elapsed()
    );
    assert_nothing_stored_and_serving(&app, &chat_id).await;

    // A PNG carrying script is accepted as the image it also is, and stored re-encoded: the
    // script is gone, and the download cannot be sniffed into a page.
    let (status, answer) = upload(
        &app,
        &token,
        &chat_id,
        None,
        &[("polyglot.png", resilience_support::png_polyglot())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let attachment = &answer["data"]["sendMessage"]["attachments"][0];
    assert_eq!(attachment["mimeType"], "image/png", "{answer}");
    let response = app
        .client
        .get(local_url(&app, attachment["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let served = response.bytes().await.unwrap();
    assert!(served.starts_with(b"\x89PNG"));
    let lowered = served.to_ascii_lowercase();
    for needle in [&b"<script"[..], b"<html", b"alert("] {
        assert!(
            !lowered.windows(needle.len()).any(|w| w == needle),
            "the stored image still carries {}",
            String::from_utf8_lossy(needle)
        );
    }
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    // A real (minimal) Word document passes, so the ZIP refusal above was about content.
    let (status, answer) = upload(
        &app,
        &token,
        &chat_id,
        None,
        &[("letter.docx", common::samples::docx())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
}

async fn markup_in_messages_is_served_back_as_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app
        .start_chat(Some("<img src=x onerror=alert('name')>"))
        .await;
    let admin = app.admin_token().await;
    let body =
        "<script>alert(\"x\")</script><img src=x onerror=alert(1)>&amp; <b>bold</b> {{7*7}} ${7*7}";
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&visitor)
        .json(&json!({ "query": SEND, "variables": { "chatId": chat_id, "body": body } }))
        .send()
        .await
        .unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/") && content_type.contains("json"),
        "{content_type}"
    );
    let sent: Value = response.json().await.unwrap();
    assert!(sent["errors"].is_null(), "{sent}");
    let read = app
        .data(
            "query($id: UUID!) { chat(id: $id) { visitor { name } messages(last: 5) { edges { node { body } } } } }",
            json!({ "id": chat_id }),
            Some(&admin),
        )
        .await;
    assert_eq!(
        read["chat"]["messages"]["edges"][0]["node"]["body"], body,
        "stored and served verbatim, as a JSON string"
    );
    assert_eq!(
        read["chat"]["visitor"]["name"],
        "<img src=x onerror=alert('name')>"
    );
    let inbox = app
        .data(
            "{ chats { edges { node { lastMessage { body } } } } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        inbox["chats"]["edges"][0]["node"]["lastMessage"]["body"],
        body
    );
}

backend_tests!(
    a_flood_of_file_parts_is_cut_off,
    malformed_json_bodies_are_refused,
    broken_multipart_bodies_are_refused,
    duplicate_and_unknown_parts_never_become_attachments,
    truncated_and_dropped_uploads_leave_nothing,
    slow_loris_bodies_are_cut_off,
    queries_past_the_limits_are_refused,
    errors_suggest_no_field_names,
    hostile_file_names_are_sanitised,
    type_confusion_is_refused,
    markup_in_messages_is_served_back_as_data,
);
