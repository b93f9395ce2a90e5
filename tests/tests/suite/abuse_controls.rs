//! Abuse controls (SPEC §8): rate limits that trip and recover, the CSRF rule, and malformed or
//! hostile requests answered with an error while the server keeps serving.

use crate::common;
use crate::common::helpers;

use std::time::Duration;

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, error_code, spawn_app, spawn_app_with,
};
use helpers::{graphql_from, post_json, post_raw, retry_after, stored_chats, stored_messages};
use serde_json::{Value, json};

const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
const SEND: &str =
    "mutation($id: UUID!, $body: String) { sendMessage(chatId: $id, body: $body) { id } }";
const START: &str = "mutation { startChat { chatToken chat { id } } }";

fn login_as(password: &str) -> Value {
    json!({ "email": ADMIN_EMAIL, "password": password })
}

/// A refusal must say why in words a client can show, and give nothing away.
fn assert_clean_error(response: &Value, code: &str) {
    assert_eq!(error_code(response), Some(code), "{response}");
    let text = response["errors"].to_string().to_lowercase();
    for leak in [
        "panick",
        "thread",
        "src/",
        ".rs:",
        "select ",
        "sqlx",
        "backtrace",
    ] {
        assert!(!text.contains(leak), "the error leaks {leak:?}: {response}");
    }
}

async fn sign_in_attempts_are_limited_per_client_address(backend: Backend) {
    let app = spawn_app_with(backend, |settings| settings.rate_login_per_min = 2).await;
    for _ in 0..2 {
        let response = app.graphql(LOGIN, login_as("guessing"), None).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    }
    // Even the right password waits now, so guessing cannot continue.
    let limited = app.graphql(LOGIN, login_as(ADMIN_PASSWORD), None).await;
    assert_clean_error(&limited, "RATE_LIMITED");
    assert_eq!(limited["data"], Value::Null);
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "retryAfterSeconds {wait}");
    // A forged X-Forwarded-For does not make a new client when no proxy is trusted.
    let forged = graphql_from(&app, "198.51.100.77", LOGIN, login_as(ADMIN_PASSWORD), None).await;
    assert_eq!(error_code(&forged), Some("RATE_LIMITED"), "{forged}");
    // Other operations are not held up.
    let (chat_id, visitor) = app.start_chat(None).await;
    app.send(&visitor, &chat_id, "still here").await;
}

async fn behind_a_trusted_proxy_limits_follow_the_forwarded_address(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.rate_login_per_min = 2;
        settings.trust_proxy = true;
    })
    .await;
    for _ in 0..2 {
        let response = graphql_from(&app, "203.0.113.1", LOGIN, login_as("guessing"), None).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    }
    let limited = graphql_from(&app, "203.0.113.1", LOGIN, login_as(ADMIN_PASSWORD), None).await;
    assert_clean_error(&limited, "RATE_LIMITED");
    assert!((1..=60).contains(&retry_after(&limited)), "{limited}");
    // Another client behind the same proxy is not punished for the first one's guesses.
    let other = graphql_from(&app, "203.0.113.2", LOGIN, login_as(ADMIN_PASSWORD), None).await;
    assert!(other["data"]["login"]["token"].is_string(), "{other}");
}

async fn sending_is_limited_per_visitor_token_and_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.rate_send_per_min = 3;
        settings.trust_proxy = true;
    })
    .await;
    let admin = app.admin_token().await;
    let (chat_a, visitor_a) = app.start_chat(Some("A")).await;
    let (chat_b, visitor_b) = app.start_chat(Some("B")).await;
    let (chat_c, visitor_c) = app.start_chat(Some("C")).await;
    let send = |address: &'static str, token: String, chat_id: String| {
        let app = &app;
        async move {
            graphql_from(
                app,
                address,
                SEND,
                json!({ "id": chat_id, "body": "hello" }),
                Some(&token),
            )
            .await
        }
    };

    for _ in 0..3 {
        let sent = send("10.0.0.1", visitor_a.clone(), chat_a.clone()).await;
        assert!(sent["data"]["sendMessage"]["id"].is_string(), "{sent}");
    }
    let limited = send("10.0.0.1", visitor_a.clone(), chat_a.clone()).await;
    assert_clean_error(&limited, "RATE_LIMITED");
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "retryAfterSeconds {wait}");

    // Another visitor from another address is not limited.
    let other = send("10.0.0.2", visitor_b.clone(), chat_b.clone()).await;
    assert!(other["data"]["sendMessage"]["id"].is_string(), "{other}");
    // The same token from a new address is: the limit follows the token.
    let moved = send("10.0.0.3", visitor_a.clone(), chat_a.clone()).await;
    assert_eq!(error_code(&moved), Some("RATE_LIMITED"), "{moved}");
    // A fresh token from the busy address is too: the limit follows the address.
    let same_address = send("10.0.0.1", visitor_c.clone(), chat_c.clone()).await;
    assert_eq!(
        error_code(&same_address),
        Some("RATE_LIMITED"),
        "{same_address}"
    );
    // The team is not limited.
    for _ in 0..5 {
        app.send(&admin, &chat_a, "an answer").await;
    }
    // Refused sends stored nothing.
    assert_eq!(stored_messages(&app, &chat_a).await, 3 + 5);
    assert_eq!(stored_messages(&app, &chat_c).await, 0);
}

async fn starting_chats_is_limited_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.rate_start_per_hour = 2;
        settings.trust_proxy = true;
    })
    .await;
    for _ in 0..2 {
        let started = graphql_from(&app, "192.0.2.10", START, json!({}), None).await;
        assert!(
            started["data"]["startChat"]["chatToken"].is_string(),
            "{started}"
        );
    }
    let limited = graphql_from(&app, "192.0.2.10", START, json!({}), None).await;
    assert_clean_error(&limited, "RATE_LIMITED");
    // An hourly limit of two frees a slot every half hour.
    let wait = retry_after(&limited);
    assert!((60..=1800).contains(&wait), "retryAfterSeconds {wait}");
    let elsewhere = graphql_from(&app, "192.0.2.11", START, json!({}), None).await;
    assert!(
        elsewhere["data"]["startChat"]["chatToken"].is_string(),
        "{elsewhere}"
    );
    assert_eq!(stored_chats(&app).await, 3);
}

async fn a_tripped_limit_recovers_after_retry_after(backend: Backend) {
    // 60 a minute: one more every second once the burst is spent.
    let app = spawn_app_with(backend, |settings| settings.rate_send_per_min = 60).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let variables = json!({ "id": chat_id, "body": "tick" });
    let mut sent = 0;
    let limited = loop {
        let response = app.graphql(SEND, variables.clone(), Some(&visitor)).await;
        if response.get("errors").is_some() {
            break response;
        }
        sent += 1;
        assert!(sent <= 120, "a limit of 60 a minute never tripped");
    };
    assert_clean_error(&limited, "RATE_LIMITED");
    assert!(sent >= 60, "tripped after {sent}");
    let wait = retry_after(&limited);
    assert!((1..=2).contains(&wait), "retryAfterSeconds {wait}");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let recovered = app.graphql(SEND, variables.clone(), Some(&visitor)).await;
    assert!(
        recovered["data"]["sendMessage"]["id"].is_string(),
        "still limited after {wait} s: {recovered}"
    );
    assert_eq!(stored_messages(&app, &chat_id).await, sent + 1);
}

async fn simple_and_multipart_posts_need_a_preflight_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let start = serde_json::to_vec(&json!({ "query": START })).unwrap();
    let policy = serde_json::to_vec(&json!({ "query": "{ uploadPolicy { maxFiles } }" })).unwrap();

    // What a cross-site form or fetch could send without a preflight is refused.
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, body) = post_raw(&app, content_type, &[], start.clone()).await;
        assert_eq!(status, 400, "{content_type:?}: {body}");
        assert_clean_error(&body, "BAD_USER_INPUT");
        // An empty header does not count.
        let (status, _) = post_raw(
            &app,
            content_type,
            &[("apollo-require-preflight", "")],
            start.clone(),
        )
        .await;
        assert_eq!(status, 400, "{content_type:?} with an empty header");
    }
    assert_eq!(
        stored_chats(&app).await,
        0,
        "a refused request started a chat"
    );

    // With the header (which a browser cannot add cross-site without a preflight) it is served.
    for header in ["apollo-require-preflight", "x-apollo-operation-name"] {
        let (status, body) =
            post_raw(&app, Some("text/plain"), &[(header, "1")], policy.clone()).await;
        assert_eq!(status, 200, "{header}: {body}");
        assert_eq!(body["data"]["uploadPolicy"]["maxFiles"], 3);
    }
    let form = || {
        reqwest::multipart::Form::new()
            .text(
                "operations",
                r#"{"query":"{ uploadPolicy { maxFiles } }","variables":{}}"#,
            )
            .text("map", "{}")
    };
    let refused = app
        .client
        .post(app.url("/graphql"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let accepted = app
        .client
        .post(app.url("/graphql"))
        .header("apollo-require-preflight", "true")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["data"]["uploadPolicy"]["maxFiles"], 3, "{body}");

    // JSON needs a preflight anyway, so it needs no header.
    let (status, body) = post_raw(&app, Some("application/json"), &[], start).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["startChat"]["chatToken"].is_string());
    assert_eq!(stored_chats(&app).await, 1);
}

/// The server still answers ordinary requests.
async fn assert_still_serving(app: &TestApp) {
    let policy = app
        .data("{ uploadPolicy { maxFiles } }", json!({}), None)
        .await;
    assert_eq!(policy["uploadPolicy"]["maxFiles"], 3);
    let (chat_id, visitor) = app.start_chat(Some("After")).await;
    assert_eq!(
        app.send(&visitor, &chat_id, "still fine").await["body"],
        "still fine"
    );
}

async fn malformed_requests_get_an_error_and_the_server_keeps_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(Some("Target")).await;

    // Bodies that are not a GraphQL request.
    for body in [
        &b"{\"query\": \"{ uploadPolicy { maxFiles } }\""[..],
        b"not json at all",
        b"",
        b"\"a string\"",
        b"\xff\xfe\x00garbage",
        b"{\"query\": 42}",
    ] {
        let (status, response) = post_raw(&app, Some("application/json"), &[], body.to_vec()).await;
        assert_eq!(status, 400, "{}: {response}", String::from_utf8_lossy(body));
        assert_clean_error(&response, "BAD_USER_INPUT");
    }
    // An empty array reads as a request without a query: refused, though not as a batch.
    let (_, response) = post_raw(&app, Some("application/json"), &[], &b"[]"[..]).await;
    assert!(response["errors"][0]["message"].is_string(), "{response}");
    assert!(response["data"].is_null(), "{response}");
    // JSON nested far deeper than any request needs.
    let nested = format!(
        "{{\"query\": \"{{ uploadPolicy {{ maxFiles }} }}\", \"variables\": {{\"x\": {}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, response) = post_raw(&app, Some("application/json"), &[], nested).await;
    assert_eq!(status, 400, "{response}");
    assert_clean_error(&response, "BAD_USER_INPUT");

    // async-graphql's own upload marker, smuggled in variables (it used to panic on these).
    let marker = "#__graphql_file__:3";
    let smuggled = [
        (SEND, json!({ "id": chat_id, "body": marker })),
        (
            "mutation($id: UUID!, $files: [Upload!]) { sendMessage(chatId: $id, attachments: $files) { id } }",
            json!({ "id": chat_id, "files": ["#__graphql_file__:0"] }),
        ),
        (
            "mutation($input: StartChatInput) { startChat(input: $input) { chatToken } }",
            json!({ "input": { "visitorName": marker } }),
        ),
    ];
    for (query, variables) in smuggled {
        let (status, response) =
            post_json(&app, &json!({ "query": query, "variables": variables })).await;
        assert_eq!(status, 400, "{variables}: {response}");
        assert_clean_error(&response, "BAD_USER_INPUT");
    }
    // ... and in the query text itself.
    for query in [
        format!("mutation {{ sendMessage(chatId: \"{chat_id}\", body: \"{marker}\") {{ id }} }}"),
        format!(
            "mutation {{ sendMessage(chatId: \"{chat_id}\", attachments: [\"#__graphql_file__:0\"]) {{ id }} }}"
        ),
    ] {
        let response = app.graphql(&query, json!({}), Some(&visitor)).await;
        assert_clean_error(&response, "BAD_USER_INPUT");
    }
    // The marker inside ordinary text is just text.
    let quoted = app
        .send(&visitor, &chat_id, "my file was called #__graphql_file__:3")
        .await;
    assert_eq!(quoted["body"], "my file was called #__graphql_file__:3");
    assert_eq!(stored_messages(&app, &chat_id).await, 1);
    assert_eq!(stored_chats(&app).await, 1);

    // Queries that are not valid GraphQL, or not valid against the schema.
    for query in [
        "{ uploadPolicy { maxFiles }",
        "{ noSuchField }",
        "query { uploadPolicy { maxFiles } } query { uploadPolicy { maxFiles } }",
        "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
        "{ chat(id: \"not-a-uuid\") { id } }",
    ] {
        let response = app.graphql(query, json!({}), Some(&visitor)).await;
        assert!(
            response["errors"][0]["message"].is_string(),
            "{query}: {response}"
        );
        assert!(response["data"].is_null(), "{query}: {response}");
    }
    let (_, response) = post_json(
        &app,
        &json!({ "query": "query A { uploadPolicy { maxFiles } }", "operationName": "B" }),
    )
    .await;
    assert!(response["errors"][0]["message"].is_string(), "{response}");

    assert_still_serving(&app).await;
}

async fn expensive_queries_are_refused_and_the_server_keeps_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let one = json!({ "query": "{ uploadPolicy { maxFiles } }" });

    // Batches: a few are fine, more than ten are refused whole.
    for size in [2, 10] {
        let (status, response) = post_json(&app, &Value::Array(vec![one.clone(); size])).await;
        assert_eq!(status, 200, "{response}");
        let answers = response.as_array().unwrap_or_else(|| panic!("{response}"));
        assert_eq!(answers.len(), size);
        assert!(
            answers
                .iter()
                .all(|a| a["data"]["uploadPolicy"]["maxFiles"] == 3)
        );
    }
    let starts = json!({ "query": START });
    let (status, response) = post_json(&app, &Value::Array(vec![starts; 11])).await;
    assert_eq!(status, 400, "{response}");
    assert_clean_error(&response, "BAD_USER_INPUT");
    assert_eq!(stored_chats(&app).await, 0, "part of a refused batch ran");

    // Deeper than introspection's own limit (18: the standard introspection query needs 15;
    // ordinary fields keep 12).
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {}name{} }} }} }} }}",
        "{ ofType ".repeat(16),
        " }".repeat(16)
    );
    let response = app.graphql(&deep, json!({}), None).await;
    assert!(response["data"].is_null(), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("deep"), "{response}");
    // The deepest query the clients send is within the limit.
    let inbox = "{ chats(first: 5) { edges { node { messages(last: 5) { edges { node { attachments { id name } } } } } } } }";
    app.data(inbox, json!({}), Some(&admin)).await;

    // Nesting meant to exhaust the parser's stack.
    let nested = format!("{}{}", "{ a ".repeat(20_000), "}".repeat(20_000));
    let (_, response) = post_json(&app, &json!({ "query": nested })).await;
    assert!(response["errors"][0]["message"].is_string(), "{response}");
    assert!(response["data"].is_null(), "{response}");

    // An alias fan-out past the complexity limit.
    let fan_out: String = (0..400)
        .map(|n| format!("a{n}: uploadPolicy {{ maxFiles }} "))
        .collect();
    let response = app
        .graphql(&format!("{{ {fan_out} }}"), json!({}), None)
        .await;
    assert!(response["data"].is_null(), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("complex"), "{response}");
    let fan_out: String = (0..400)
        .map(|n| format!("c{n}: chats(first: 100) {{ totalCount }} "))
        .collect();
    let response = app
        .graphql(&format!("{{ {fan_out} }}"), json!({}), Some(&admin))
        .await;
    assert!(response["data"].is_null(), "{response}");
    assert!(
        response["errors"][0]["message"] == "Query is too complex.",
        "{response}"
    );
    // Many directives on one field.
    let directives = "@skip(if: false) ".repeat(50);
    let response = app
        .graphql(
            &format!("{{ uploadPolicy {directives} {{ maxFiles }} }}"),
            json!({}),
            None,
        )
        .await;
    assert!(response["data"].is_null(), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("directives"), "{response}");

    assert_still_serving(&app).await;
}

/// The parser's and validator's own refusals carry a code too, and never quote a huge query
/// back whole.
async fn every_refusal_carries_a_code(backend: Backend) {
    let app = common::spawn_app(backend).await;
    let admin = app.admin_token().await;
    let nested = format!("query {{ {} }}", "chat(id: \"x\") { ".repeat(2000));
    for (query, what) in [
        ("{ uploadPolicy { ", "a syntax error"),
        ("{ uploadPolicy { noSuchField } }", "an unknown field"),
        ("{ chat(id: \"not-a-uuid\") { id } }", "a bad UUID literal"),
        (nested.as_str(), "a 2,000-level query"),
        ("{ uploadPolicy { maxFiles } }", "a valid query (control)"),
    ] {
        let response = app.graphql(query, json!({}), Some(&admin)).await;
        if what.ends_with("(control)") {
            assert!(response.get("errors").is_none(), "{what}: {response}");
            continue;
        }
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{what}: {response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.chars().count() <= 301,
            "{what}: a {}-character message",
            message.len()
        );
    }
    // `first` may be left out (it defaults to 50), even through a nullable variable.
    let data = app
        .data(
            "query($first: Int) { chats(first: $first) { totalCount } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(data["chats"]["totalCount"], 0);
}

backend_tests!(
    every_refusal_carries_a_code,
    sign_in_attempts_are_limited_per_client_address,
    behind_a_trusted_proxy_limits_follow_the_forwarded_address,
    sending_is_limited_per_visitor_token_and_per_address,
    starting_chats_is_limited_per_address,
    a_tripped_limit_recovers_after_retry_after,
    simple_and_multipart_posts_need_a_preflight_header,
    malformed_requests_get_an_error_and_the_server_keeps_serving,
    expensive_queries_are_refused_and_the_server_keeps_serving,
);
