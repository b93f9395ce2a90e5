//! Fuzzing (issue 9, point 5): proptest throws random requests at a live server, through our
//! own extractor (CSRF rule, multipart limits, the upload-marker guard, the batch cap) and
//! async-graphql's parsing: random bytes and content types, JSON of every shape, token soup
//! that looks like GraphQL, variables carrying upload markers, batches, and multipart bodies
//! with random parts, maps and truncations. Whatever comes in: no panic anywhere in the server,
//! no 5xx except a deliberate `INTERNAL`, the server still serves, and no row without its file.
//!
//! Bounded: a few hundred cases of each kind (`PROPTEST_CASES` changes it), well under 30 s.
//! Failures are not persisted to files; proptest prints the smallest failing input.

use crate::common;
use crate::common::resilience_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Backend, TestApp, spawn_app};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use resilience_support::{Part, consistency, multipart_with, uploads_dir};
use serde_json::{Value, json};

/// Panics on this test's runtime threads, where its server runs (the other tests of the binary
/// run theirs on threads of their own).
static PANICS: AtomicUsize = AtomicUsize::new(0);
const SERVER_THREADS: &str = "fuzzed-server";

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ":",
    "$",
    "!",
    "[",
    "]",
    "=",
    ",",
    "...",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "on",
    "Chat",
    "F",
    "chat",
    "chats",
    "me",
    "uploadPolicy",
    "sendMessage",
    "startChat",
    "markChatRead",
    "setChatStatus",
    "login",
    "id",
    "body",
    "messages(last: 5)",
    "edges",
    "node",
    "attachments",
    "url",
    "chatId: $id",
    "body: \"hi\"",
    "attachments: $files",
    "$id: UUID!",
    "$files: [Upload!]",
    "@skip(if: true)",
    "@include(if: $x)",
    "__schema",
    "__typename",
    "__type(name: \"Chat\")",
    "\"x\"",
    "123",
    "null",
    "true",
    "#__graphql_file__:0",
    "\"#__graphql_file__:9\"",
    "\u{0}",
    "\\u0000",
];

fn graphql_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|tokens| tokens.join(" "))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        (0usize..12).prop_map(|n| json!(format!("#__graphql_file__:{n}"))),
        Just(json!("#__graphql_file__")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("query".to_owned()),
                    Just("variables".to_owned()),
                    Just("operationName".to_owned()),
                    Just("extensions".to_owned()),
                    Just("files".to_owned()),
                    Just("chatId".to_owned()),
                    "[a-z]{0,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A request object: a real operation or token soup, with random variables.
fn operation(chat_id: String) -> impl Strategy<Value = Value> {
    let send = resilience_support::SEND_WITH_FILES;
    (
        prop_oneof![
            Just(send.to_owned()),
            Just("{ uploadPolicy { maxFiles } }".to_owned()),
            Just("query($id: UUID!) { chat(id: $id) { id messages(last: 3) { edges { node { body } } } } }".to_owned()),
            graphql_text(),
        ],
        prop_oneof![
            3 => Just(Value::String(chat_id)),
            1 => ".{0,40}".prop_map(Value::String),
            1 => json_value(),
        ],
        prop_oneof![
            // Upload markers in the variables, as if files had been sent: there are none in a
            // JSON body, and the extractor must refuse them before async-graphql looks them up.
            2 => prop::collection::vec(
                (0usize..6).prop_map(|n| json!(format!("#__graphql_file__:{n}"))),
                0..4
            ),
            1 => prop::collection::vec(json_value(), 0..4),
        ],
        prop_oneof![
            2 => Just(Value::Null),
            2 => ".{0,20}".prop_map(Value::String),
            1 => json_value(),
        ],
        prop::option::weighted(0.1, "[A-Za-z]{0,8}"),
    )
        .prop_map(|(query, chat_id, files, body, operation_name)| {
            json!({
                "query": query,
                "variables": { "chatId": chat_id, "id": chat_id, "files": files, "body": body },
                "operationName": operation_name,
            })
        })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            6 => Just("application/json".to_owned()),
            1 => Just("application/json; charset=utf-8".to_owned()),
            1 => Just("application/graphql".to_owned()),
            1 => Just("application/graphql-response+json".to_owned()),
            1 => Just("text/plain".to_owned()),
            1 => Just("application/x-www-form-urlencoded".to_owned()),
            1 => Just("multipart/form-data".to_owned()),
            1 => Just("multipart/form-data; boundary=fuzz".to_owned()),
            1 => "[ -~]{0,40}",
        ],
    )
}

#[derive(Debug, Clone)]
struct JsonCase {
    content_type: Option<String>,
    preflight: bool,
    body: Vec<u8>,
}

fn json_case(chat_id: String) -> impl Strategy<Value = JsonCase> {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        operation(chat_id.clone()).prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(operation(chat_id), 0..14)
            .prop_map(|batch| Value::Array(batch).to_string().into_bytes()),
    ];
    (content_type(), any::<bool>(), body).prop_map(|(content_type, preflight, body)| JsonCase {
        content_type,
        preflight,
        body,
    })
}

#[derive(Debug, Clone)]
struct MultipartCase {
    boundary: String,
    /// Mostly the real boundary; sometimes another.
    declared_boundary: Option<Option<String>>,
    parts: Vec<Part>,
    close: bool,
    /// Mostly none; sometimes the body is cut at this length.
    cut: Option<Option<usize>>,
}

fn map_body() -> impl Strategy<Value = Vec<u8>> {
    let path = prop_oneof![
        Just("variables.files.0".to_owned()),
        Just("variables.files.1".to_owned()),
        Just("variables.files.7".to_owned()),
        Just("variables.files".to_owned()),
        Just("variables".to_owned()),
        Just("variables.chatId".to_owned()),
        Just("query".to_owned()),
        Just("0.variables.files.0".to_owned()),
        "[a-z0-9.]{0,20}",
    ];
    prop_oneof![
        prop::collection::btree_map(
            prop_oneof![Just("0".to_owned()), Just("1".to_owned()), "[a-z0-9]{0,3}"],
            prop::collection::vec(path, 0..3),
            0..4
        )
        .prop_map(|map| serde_json::to_vec(&map).unwrap()),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn part(chat_id: String) -> impl Strategy<Value = Part> {
    let name = prop_oneof![
        Just("operations".to_owned()),
        Just("map".to_owned()),
        Just("0".to_owned()),
        Just("1".to_owned()),
        "[a-z0-9]{0,5}",
    ];
    let body = prop_oneof![
        operation(chat_id).prop_map(|value| value.to_string().into_bytes()),
        map_body(),
        Just(common::samples::small_pdf()),
        Just(common::samples::png(16, 16)),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    (
        name,
        prop::option::of("[^\"\r\n\\\\]{0,24}"),
        prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/octet-stream".to_owned()),
            Just("image/png".to_owned()),
            "[a-z/+.-]{0,16}",
        ]),
        body,
    )
        .prop_map(|(name, filename, content_type, body)| Part {
            name,
            filename,
            content_type,
            body,
        })
}

/// A well-formed upload of 1 to 4 files, then perhaps bent: a part dropped, one repeated,
/// the map replaced. Keeps many cases close enough to valid to reach the upload path.
fn bent_upload(chat_id: String) -> impl Strategy<Value = Vec<Part>> {
    let file = prop_oneof![
        3 => Just(("a.pdf".to_owned(), common::samples::small_pdf())),
        3 => Just(("b.png".to_owned(), common::samples::png(16, 16))),
        2 => Just(("c.txt".to_owned(), b"plain text\n".to_vec())),
        1 => (
            "[^\"\r\n\\\\]{0,12}",
            prop::collection::vec(any::<u8>(), 0..128)
        ),
    ];
    (
        prop::collection::vec(file, 1..5),
        prop::option::weighted(0.2, 0usize..6),
        prop::option::weighted(0.2, 0usize..6),
        prop::option::weighted(0.2, map_body()),
    )
        .prop_map(move |(files, drop, repeat, map)| {
            let files: Vec<(&str, Vec<u8>)> = files
                .iter()
                .map(|(name, bytes)| (name.as_str(), bytes.clone()))
                .collect();
            let mut parts = resilience_support::upload_parts(&chat_id, None, None, &files);
            if let Some(index) = repeat.filter(|index| *index < parts.len()) {
                parts.push(parts[index].clone());
            }
            if let Some(index) = drop.filter(|index| *index < parts.len()) {
                parts.remove(index);
            }
            if let (Some(map), Some(part)) = (map, parts.iter_mut().find(|p| p.name == "map")) {
                part.body = map;
            }
            parts
        })
}

fn multipart_case(chat_id: String) -> impl Strategy<Value = MultipartCase> {
    (
        "[A-Za-z0-9_-]{1,40}",
        prop::option::weighted(0.15, prop::option::of("[ -~]{0,30}")),
        prop_oneof![
            prop::collection::vec(part(chat_id.clone()), 0..6),
            bent_upload(chat_id),
        ],
        any::<bool>(),
        prop::option::weighted(0.15, prop::option::of(0usize..4096)),
    )
        .prop_map(
            |(boundary, declared_boundary, parts, close, cut)| MultipartCase {
                boundary,
                declared_boundary,
                parts,
                close,
                cut,
            },
        )
}

async fn post(
    app: &TestApp,
    token: &str,
    content_type: Option<&str>,
    preflight: bool,
    body: Vec<u8>,
) -> Result<(u16, Value), String> {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if preflight {
        request = request.header("apollo-require-preflight", "true");
    }
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|error| error.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// No 5xx, except an error the server chose to report as `INTERNAL`.
fn acceptable(outcome: Result<(u16, Value), String>) -> Result<(), TestCaseError> {
    let (status, body) =
        outcome.map_err(|error| TestCaseError::fail(format!("no answer: {error}")))?;
    let deliberate = status == 500
        && (common::error_code(&body) == Some("INTERNAL") || body["error"]["code"] == "INTERNAL");
    prop_assert!(status < 500 || deliberate, "{status} {body}");
    let text = body.to_string();
    prop_assert!(!text.contains("panicked"), "{text}");
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 20_000,
        ..Config::default()
    }
}

#[test]
fn random_requests_never_break_the_server() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(SERVER_THREADS) {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default_hook(info);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, chat_id, token) = runtime.block_on(async {
        let app = spawn_app(Backend::Sqlite).await;
        let (chat_id, token) = app.start_chat(None).await;
        (app, chat_id, token)
    });

    let mut runner = TestRunner::new(config(1000));
    runner
        .run(&json_case(chat_id.clone()), |case| {
            let outcome = runtime.block_on(post(
                &app,
                &token,
                case.content_type.as_deref(),
                case.preflight,
                case.body,
            ));
            acceptable(outcome)
        })
        .unwrap_or_else(|failure| panic!("JSON and other bodies: {failure}"));

    let mut runner = TestRunner::new(config(600));
    runner
        .run(&multipart_case(chat_id.clone()), |case| {
            let (_, mut body) = multipart_with(&case.boundary, &case.parts, case.close);
            if let Some(Some(cut)) = case.cut {
                body.truncate(cut);
            }
            let declared = match &case.declared_boundary {
                Some(Some(other)) => other.as_str(),
                _ => case.boundary.as_str(),
            };
            let content_type = format!("multipart/form-data; boundary={declared}");
            let outcome = runtime.block_on(post(&app, &token, Some(&content_type), true, body));
            acceptable(outcome)
        })
        .unwrap_or_else(|failure| panic!("multipart bodies: {failure}"));

    runtime.block_on(async {
        assert_eq!(app.get("/healthz").await.status(), 200);
        let policy = app
            .data("{ uploadPolicy { maxFiles } }", json!({}), None)
            .await;
        assert!(policy["uploadPolicy"]["maxFiles"].is_number());
        app.send(&token, &chat_id, "still here").await;
        let report = consistency(&app.state.db, &uploads_dir(&app)).await;
        assert!(
            report.missing.is_empty() && report.unnamed.is_empty() && report.corrupt.is_empty(),
            "{report:?}"
        );
        println!(
            "fuzzing stored {} attachment(s), all consistent",
            report.rows
        );
    });
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked while serving fuzzed requests (see above)"
    );
}
