//! The GraphQL endpoint as every client expects it (issue 16), and the hardening findings of
//! issue 15 that live in the same code (15.2 alias floods and body sizes, 15.5 multipart map
//! edge cases, 15.10 no CDN for the explorer, 15.12 a CSRF refusal clients can read).
//!
//! `client_libraries` runs suites we did not write (tests/graphql-clients: graphql-http's
//! `serverAudits`, graphql-js introspection, Apollo Client 4 + apollo-upload-client with
//! persisted queries, urql, graphql-ws, subscriptions-transport-ws) with `node` against the
//! server; without node or the installed packages it is skipped, unless
//! `CHATDESK_REQUIRE_NODE_CLIENTS=1` (CI) makes that a failure.

use crate::common;
use crate::common::resilience_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Backend, TestApp, error_code, spawn_app};
use resilience_support::{Part, multipart, post_multipart, upload_parts};
use serde_json::{Value, json};

fn node_project() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/graphql-clients"))
}

/// Whether node and the packages are there; under `CHATDESK_REQUIRE_NODE_CLIENTS=1` their
/// absence fails the test.
fn node_clients_available() -> bool {
    let installed = node_project().join("node_modules/graphql-http").is_dir();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if installed && node {
        return true;
    }
    let why = if node {
        "the packages are not installed (npm ci --prefix tests/graphql-clients)"
    } else {
        "node is not installed"
    };
    assert!(
        std::env::var("CHATDESK_REQUIRE_NODE_CLIENTS").as_deref() != Ok("1"),
        "CHATDESK_REQUIRE_NODE_CLIENTS=1 but {why}"
    );
    eprintln!("skipping the client-library suites: {why}");
    false
}

/// Runs `node <script> <args>` in the node project: (success, stdout + stderr).
async fn node(script: &str, args: Vec<String>) -> (bool, String) {
    let script = script.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(node_project())
            .env("CHATDESK_ADMIN_EMAIL", common::ADMIN_EMAIL)
            .env("CHATDESK_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
            .output()
            .expect("node runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .expect("the node task ends")
}

async fn client_libraries(backend: Backend) {
    if !node_clients_available() {
        return;
    }
    let app = spawn_app(backend).await;
    let endpoint = app.url("/graphql");

    // graphql-http's audits: every one ok (MUST, SHOULD and MAY alike).
    let (passed, output) = node("audit.mjs", vec![endpoint.clone()]).await;
    assert!(passed, "graphql-http serverAudits:\n{output}");
    let audits = output.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(audits >= 60, "only {audits} audits ok:\n{output}");
    assert!(
        output.lines().all(|line| line.starts_with("ok ")),
        "an audit is not ok:\n{output}"
    );

    // graphql-js: the standard introspection query, the schema printed from it equals
    // schema.graphql, and no breaking change either way.
    let sdl = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql").to_owned();
    let (passed, output) = node("introspect.mjs", vec![endpoint, sdl]).await;
    assert!(passed, "graphql-js introspection:\n{output}");
    assert!(output.contains("schema identical"), "{output}");

    // Apollo Client (uploads, persisted queries), urql (GET), both socket protocols.
    let (passed, output) = node("clients.mjs", vec![app.url("")]).await;
    assert!(passed, "client libraries:\n{output}");
    for check in [
        "apollo-client-upload-apq",
        "urql-get",
        "graphql-ws",
        "subscriptions-transport-ws",
        "csrf-refusal-readable",
    ] {
        assert!(
            output.lines().any(|line| line == format!("ok {check}")),
            "{check}:\n{output}"
        );
    }
}

/// A POST of JSON text with an `Accept` header: (status, content type, body).
async fn post_accepting(app: &TestApp, accept: &str, body: &str) -> (u16, String, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn responses_follow_the_accept_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let ok = r#"{"query":"{ __typename }"}"#;
    let (status, kind, _) = post_accepting(&app, "application/json", ok).await;
    assert_eq!(
        (status, kind.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let (status, kind, _) = post_accepting(&app, "*/*", ok).await;
    assert_eq!(
        (status, kind.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let graphql_response = "application/graphql-response+json, application/json;q=0.9";
    let (status, kind, _) = post_accepting(&app, graphql_response, ok).await;
    assert_eq!(status, 200);
    assert!(
        kind.starts_with("application/graphql-response+json"),
        "{kind}"
    );

    // Request errors: 400 without `data` for the new media type; 200 (and still no `data`:
    // nothing was executed) for application/json, as its clients expect.
    for query in ["{", "{ noSuchField }"] {
        let body = json!({ "query": query }).to_string();
        let (status, _, answer) = post_accepting(&app, graphql_response, &body).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer.get("data").is_none(), "{query}: {answer}");
        assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
        let (status, _, answer) = post_accepting(&app, "application/json", &body).await;
        assert_eq!(status, 200, "{query}: {answer}");
        assert!(answer.get("data").is_none(), "{query}: {answer}");
    }
    // A missing or misspelt query is not a GraphQL request at all.
    for body in [r#"{"qeury":"{ __typename }"}"#, r#"{"query":0}"#, "{}"] {
        let (status, _, answer) = post_accepting(&app, "application/json", body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    }
    // An error while executing keeps its `data` (null here) and the 200.
    let (status, _, answer) =
        post_accepting(&app, graphql_response, r#"{"query":"{ me { id } }"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("data").is_some(), "{answer}");
    assert_eq!(error_code(&answer), Some("UNAUTHENTICATED"), "{answer}");
}

async fn get_runs_queries_and_only_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = |query: &str, token: Option<&str>| {
        let mut request = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", query)]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = get("{ uploadPolicy { maxFiles } }", None).await.unwrap();
    assert_eq!(response.status(), 200);
    // No credential and no error: the same for everyone, so cacheable for a short while.
    assert_eq!(response.headers()["cache-control"], "public, max-age=10");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["uploadPolicy"]["maxFiles"], 3, "{body}");

    let (chat_id, token) = app.start_chat(None).await;
    let query = format!(r#"{{ chat(id: "{chat_id}") {{ id }} }}"#);
    let response = get(&query, Some(&token)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");

    let response = get(
        &format!(r#"mutation {{ setTyping(chatId: "{chat_id}", typing: true) }}"#),
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");

    // A browser gets the explorer; nothing on it comes from elsewhere.
    let page = app
        .get_accepting("/graphql", "text/html,application/xhtml+xml,*/*;q=0.8")
        .await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/explorer/explorer.js"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let script = app.get("/explorer/explorer.js").await;
    assert_eq!(script.status(), 200);
    assert!(!script.text().await.unwrap().contains("https://"));
}

async fn persisted_queries(backend: Backend) {
    use sha2::Digest;
    let app = spawn_app(backend).await;
    let query = "query Policy { uploadPolicy { maxFiles } }";
    let hash: String = sha2::Sha256::digest(query.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let by_hash = json!({ "extensions": extensions }).to_string();

    let (status, _, answer) = post_accepting(&app, "application/json", &by_hash).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(error_code(&answer), Some("PERSISTED_QUERY_NOT_FOUND"));

    let wrong = json!({ "query": "{ __typename }", "extensions": extensions }).to_string();
    let (status, _, answer) = post_accepting(&app, "application/json", &wrong).await;
    assert_eq!(status, 400, "{answer}");

    let both = json!({ "query": query, "extensions": extensions }).to_string();
    let (status, _, answer) = post_accepting(&app, "application/json", &both).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["uploadPolicy"]["maxFiles"], 3, "{answer}");

    // Now the hash alone, by POST and by GET.
    let (_, _, answer) = post_accepting(&app, "application/json", &by_hash).await;
    assert_eq!(answer["data"]["uploadPolicy"]["maxFiles"], 3, "{answer}");
    let answer: Value = app
        .client
        .get(app.url("/graphql"))
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["data"]["uploadPolicy"]["maxFiles"], 3, "{answer}");
}

/// 15.2: every selected field counts, `__typename` included, and a JSON body is small.
async fn alias_floods_and_large_bodies_are_refused_cheaply(backend: Backend) {
    let app = spawn_app(backend).await;
    let aliases: String = (0..12_000).map(|i| format!("a{i}:__typename ")).collect();
    let body = json!({ "query": format!("{{ {aliases} }}") }).to_string();
    assert!(body.len() < api::graphql::http::MAX_JSON_BODY_BYTES);
    let started = Instant::now();
    let (status, _, answer) = post_accepting(&app, "application/json", &body).await;
    // A debug build on a busy machine parses 200 KB in well under a second; executing the
    // aliases took seconds.
    assert!(started.elapsed() < Duration::from_secs(5), "slow refusal");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("more than 1000 fields"),
        "{answer}"
    );
    assert!(answer.get("data").is_none(), "{answer}");
    // Introspection counts too.
    let aliases: String = (0..1_001)
        .map(|i| format!("s{i}:__schema {{ description }} "))
        .collect();
    let body = json!({ "query": format!("{{ {aliases} }}") }).to_string();
    let (_, _, answer) = post_accepting(&app, "application/json", &body).await;
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");

    // A 1 MB JSON body: 413 (the multipart limit applies to multipart bodies only).
    let padding = "x".repeat(1024 * 1024);
    let body = json!({ "query": "{ __typename }", "variables": { "padding": padding } });
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("an answer, not a broken connection");
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    // The same without a Content-Length (chunked) is cut off at the limit too.
    let stream = futures_util::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 16 * 1024]))),
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }
    // The server still answers.
    app.data("{ uploadPolicy { maxFiles } }", json!({}), None)
        .await;
}

/// 15.5 / 16.6: one part fills one variable; the map names existing null placeholders only,
/// each key once; an Upload variable is never a plain value.
async fn multipart_maps_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let pdf = common::samples::small_pdf();
    let operations = |files: usize| {
        json!({
            "query": resilience_support::SEND_WITH_FILES,
            "variables": { "chatId": chat_id, "body": "x", "files": vec![Value::Null; files] },
        })
        .to_string()
    };
    let cases: Vec<(&str, String, String)> = vec![
        (
            "one part, two paths",
            operations(2),
            r#"{"0":["variables.files.0","variables.files.1"]}"#.to_owned(),
        ),
        (
            "a duplicate key",
            operations(2),
            r#"{"0":["variables.files.0"],"0":["variables.files.1"]}"#.to_owned(),
        ),
        (
            "a path that is not in operations",
            operations(1),
            r#"{"0":["variables.files.5"]}"#.to_owned(),
        ),
        (
            "a path to a variable that is not null",
            operations(1),
            r#"{"0":["variables.body"]}"#.to_owned(),
        ),
        ("no path", operations(1), r#"{"0":[]}"#.to_owned()),
    ];
    for (case, operations, map) in cases {
        let parts = [
            Part::field("operations", operations),
            Part::field("map", map),
            Part::file("0", "a.pdf", pdf.clone()),
        ];
        let (content_type, body) = multipart(&parts);
        let (status, answer) = post_multipart(&app, Some(&token), &content_type, body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(
            error_code(&answer),
            Some("BAD_USER_INPUT"),
            "{case}: {answer}"
        );
    }

    // An Upload given as a plain value, by JSON and inside a multipart request.
    let send = json!({
        "query": resilience_support::SEND_WITH_FILES,
        "variables": { "chatId": chat_id, "body": "x", "files": ["not a file"] },
    })
    .to_string();
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(send)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    let mut parts = upload_parts(&chat_id, Some("x"), None, &[("a.pdf", pdf.clone())]);
    parts[0] = Part::field(
        "operations",
        json!({
            "query": resilience_support::SEND_WITH_FILES,
            "variables": { "chatId": chat_id, "body": "x", "files": [null, "plain"] },
        })
        .to_string(),
    );
    let (content_type, body) = multipart(&parts);
    let (status, answer) = post_multipart(&app, Some(&token), &content_type, body).await;
    assert_eq!(status, 400, "{answer}");

    // Nothing was stored by any of these; the well-formed upload still works.
    let history = app
        .data(
            "query($id: UUID!) { chat(id: $id) { messages { edges { node { id } } } } }",
            json!({ "id": chat_id }),
            Some(&token),
        )
        .await;
    assert_eq!(history["chat"]["messages"]["edges"], json!([]), "{history}");
    let (status, answer) =
        resilience_support::upload(&app, &token, &chat_id, Some("ok"), &[("a.pdf", pdf)]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
}

/// 15.12: a client still writing its body reads our CSRF refusal instead of a broken pipe.
async fn csrf_refusals_are_readable(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, token) = app.start_chat(None).await;
    let big = vec![b'%'; 2 * 1024 * 1024];
    let (content_type, body) = multipart(&upload_parts(&chat_id, None, None, &[("a.pdf", big)]));
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the refusal arrives, not a broken pipe");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["connection"], "close");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cross-site"),
        "{answer}"
    );
}

backend_tests!(
    client_libraries,
    responses_follow_the_accept_header,
    get_runs_queries_and_only_queries,
    persisted_queries,
    alias_floods_and_large_bodies_are_refused_cheaply,
    multipart_maps_are_checked,
    csrf_refusals_are_readable
);

/// 15.10: the explorer that replaced GraphiQL works in a browser under its CSP, with nothing
/// loaded from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_runs_queries_in_a_browser() {
    use common::browser::{Browser, chromium_path};
    let Some(chromium) = chromium_path() else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.page(1280, 900).await;
    page.goto(&app.url("/graphql")).await;
    let wait = Duration::from_secs(15);
    page.wait_for("document.getElementById('run')", wait).await;
    page.click("document.getElementById('run')").await;
    page.wait_for(
        "document.getElementById('result').textContent.includes('\"maxFiles\": 3')",
        wait,
    )
    .await;
    page.click("document.getElementById('schema')").await;
    page.wait_for(
        "document.getElementById('result').textContent.includes('sendMessage(chatId: UUID!')",
        wait,
    )
    .await;
    let resources = page
        .eval("performance.getEntriesByType('resource').map(r => r.name).join(' ')")
        .await;
    let origin = app.url("");
    let resources = resources.as_str().unwrap_or_default();
    assert!(
        resources.split(' ').all(|url| url.starts_with(&origin)),
        "{resources}"
    );
    page.assert_no_script_errors();
}
