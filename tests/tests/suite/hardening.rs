//! Regression tests for the outside security review's findings: each one drives the attack as
//! the reviewer did and checks that it no longer works.

use crate::common::{self, eventually};

use std::time::{Duration, Instant};

use common::ws;
use common::{ADMIN_EMAIL, Backend, TestApp, error_code, spawn_app, spawn_app_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const INBOX_EVENTS: &str = "subscription { inboxEvents { kind chat { id } } }";
const CHAT_EVENTS: &str = "subscription($chatId: UUID!) { chatEvents(chatId: $chatId) { kind } }";

/// A socket past `connection_init` with this credential.
async fn open_socket(app: &TestApp, token: Option<&str>) -> Socket {
    let mut socket = ws::connect(app.port, None).await;
    let payload = token.map_or(
        json!({}),
        |token| json!({ "authorization": format!("Bearer {token}") }),
    );
    send_json(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    let ack = next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn send_json(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("websocket send");
}

/// The next protocol message (pings answered on the way); None on close or timeout.
async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(&text).ok()?;
                if message["type"] == "ping" {
                    send_json(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return Some(message);
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Waits for the server to close the socket; its close code, or None for a plain TCP close.
/// Panics if the socket is still open after `wait`.
async fn close_code(socket: &mut Socket, wait: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the socket is still open after {wait:?}"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"ping\"") => {
                send_json(socket, json!({ "type": "pong" })).await;
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The code of a refused subscription: an `error` message, or a `next` carrying errors.
fn subscription_error(message: &Value) -> Option<&str> {
    let errors = match message["type"].as_str() {
        Some("error") => &message["payload"],
        Some("next") => &message["payload"]["errors"],
        _ => return None,
    };
    errors[0]["extensions"]["code"].as_str()
}

// --- 1. an admin's socket ends with its session ------------------------------------------------

async fn an_admin_socket_ends_when_its_password_changes(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    // On Postgres the socket is on another instance than the one whose database sees the
    // change: the change travels by NOTIFY.
    let other = match backend {
        Backend::Postgres(_) => Some(app.spawn_another().await),
        Backend::Sqlite => None,
    };
    let socket_app = other.as_ref().unwrap_or(&app);
    let token = socket_app.admin_token().await;
    let mut socket = open_socket(socket_app, Some(&token)).await;
    send_json(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": INBOX_EVENTS } }),
    )
    .await;
    // The socket works before the change.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.start_chat(Some("before")).await;
    let event = next_json(&mut socket, Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(
        event["payload"]["data"]["inboxEvents"]["kind"], "CHAT_STARTED",
        "{event}"
    );

    let changed = Instant::now();
    api::service::admins::set_password(&app.state.db, ADMIN_EMAIL, "a brand new passphrase 9")
        .await
        .map_err(|error| error.message())
        .expect("password changed");
    let code = close_code(&mut socket, Duration::from_secs(12)).await;
    eprintln!("socket closed {:?} after the change", changed.elapsed());
    assert_eq!(code, Some(4401));
    // And the old token is refused over HTTP, on every instance.
    for instance in [Some(&app), other.as_ref()].into_iter().flatten() {
        assert!(
            eventually(Duration::from_secs(8), || async {
                error_code(
                    &instance
                        .graphql("{ me { email } }", json!({}), Some(&token))
                        .await,
                ) == Some("UNAUTHENTICATED")
            })
            .await,
            "the old token still works"
        );
    }
    // A socket opened with the old token cannot subscribe to the inbox any more.
    let mut late = open_socket(socket_app, Some(&token)).await;
    send_json(
        &mut late,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": INBOX_EVENTS } }),
    )
    .await;
    let refused = next_json(&mut late, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(
        subscription_error(&refused),
        Some("UNAUTHENTICATED"),
        "{refused}"
    );
}

async fn an_admin_socket_ends_when_its_token_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = api::service::admins::list(&app.state.db)
        .await
        .map_err(|e| e.message())
        .unwrap()
        .remove(0);
    // Issued 12 h minus 2 s ago: valid for two more seconds.
    let issued = chrono::Utc::now() - api::auth::jwt::LIFETIME + chrono::Duration::seconds(2);
    let (token, _) = app
        .state
        .jwt
        .issue(admin.id, admin.password_changed_at, issued)
        .map_err(|e| e.message())
        .unwrap();
    let mut socket = open_socket(&app, Some(&token)).await;
    send_json(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": INBOX_EVENTS } }),
    )
    .await;
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(6)).await,
        Some(4401)
    );
    // A visitor's socket has no expiry and stays.
    let (chat_id, visitor) = app.start_chat(None).await;
    let mut visitor_socket = open_socket(&app, Some(&visitor)).await;
    send_json(
        &mut visitor_socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": CHAT_EVENTS, "variables": { "chatId": chat_id } } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.send(&visitor, &chat_id, "still here").await;
    // On Postgres the chat's own start can still be on its way through NOTIFY on a busy
    // machine: what matters is that the message comes through on the open socket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut kinds = Vec::new();
    while !kinds.contains(&json!("MESSAGE_ADDED")) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(event) = next_json(&mut visitor_socket, left).await else {
            panic!("no MESSAGE_ADDED on the visitor's socket, only {kinds:?}");
        };
        kinds.push(event["payload"]["data"]["chatEvents"]["kind"].clone());
    }
}

// --- 4. operations per socket, whatever the frame; subscriptions per chat ----------------------

async fn binary_frames_count_toward_the_operation_cap(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let mut socket = open_socket(&app, Some(&admin)).await;
    let cap = api::graphql::websocket::MAX_SUBSCRIPTIONS_PER_SOCKET;
    for id in 0..=cap {
        let subscribe = json!({ "id": id.to_string(), "type": "subscribe",
            "payload": { "query": INBOX_EVENTS } });
        if socket
            .send(Message::binary(subscribe.to_string().into_bytes()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(5)).await,
        Some(4429)
    );
}

async fn finished_operations_give_back_their_place(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, visitor) = app.start_chat(None).await;
    let mut socket = open_socket(&app, Some(&visitor)).await;
    let cap = api::graphql::websocket::MAX_SUBSCRIPTIONS_PER_SOCKET;
    // Twice the cap of queries, one after the other, never sending `complete` ourselves: the
    // server's own `complete` ends each one.
    for id in 0..cap * 2 {
        send_json(
            &mut socket,
            json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": "{ uploadPolicy { maxFiles } }" } }),
        )
        .await;
        let answer = next_json(&mut socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("query {id}: the socket closed"));
        assert_eq!(answer["type"], "next", "{answer}");
        let done = next_json(&mut socket, Duration::from_secs(5))
            .await
            .expect("complete");
        assert_eq!(done["type"], "complete", "{done}");
    }
}

async fn subscriptions_to_one_chat_are_capped(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let cap = api::graphql::subscription::MAX_SUBSCRIPTIONS_PER_CHAT;
    let mut sockets = Vec::new();
    let mut refused = None;
    for n in 0..=cap {
        if n % 10 == 0 {
            sockets.push(open_socket(&app, Some(&visitor)).await);
        }
        if n == cap {
            // Let the sockets register what they were sent before asking for one more.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let socket = sockets.last_mut().expect("a socket");
        send_json(
            socket,
            json!({ "id": n.to_string(), "type": "subscribe", "payload": { "query": CHAT_EVENTS, "variables": { "chatId": chat_id } } }),
        )
        .await;
        if n == cap {
            refused = next_json(socket, Duration::from_secs(5)).await;
        }
    }
    let refused = refused.expect("an answer to the subscription past the cap");
    assert_eq!(
        subscription_error(&refused),
        Some("BAD_USER_INPUT"),
        "{refused}"
    );
    // Closing sockets gives the places back.
    drop(sockets);
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.state
                .chat_subscriptions
                .lock()
                .map(|open| open.is_empty())
                .unwrap_or(false)
        })
        .await
    );
}

// --- 7. the upload marker over a socket --------------------------------------------------------

async fn the_upload_marker_over_a_socket_is_refused_and_the_server_lives(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let mut socket = open_socket(&app, Some(&visitor)).await;
    send_json(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "mutation($f: [Upload!]) { sendMessage(chatId: \"00000000-0000-0000-0000-000000000000\", attachments: $f) { id } }",
            "variables": { "f": ["#__graphql_file__:0"], "chatId": chat_id } } }),
    )
    .await;
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(5)).await,
        Some(4400)
    );
    let policy = app
        .data("{ uploadPolicy { maxFiles } }", json!({}), None)
        .await;
    assert_eq!(policy["uploadPolicy"]["maxFiles"], 3);
}

// --- 8. a range far past the end ---------------------------------------------------------------

async fn a_range_far_past_the_end_is_416(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let message = app
        .upload_ok(
            &visitor,
            &chat_id,
            &[("notes.txt", &b"hello there"[..], "text/plain")],
        )
        .await;
    let url = app.local_url(message["attachments"][0]["url"].as_str().expect("url"));
    for range in [
        "bytes=9223372036854775807-",
        "bytes=18446744073709551615-",
        "bytes=100-",
    ] {
        let response = app
            .client
            .get(&url)
            .header("range", range)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 416, "{range}");
    }
}

// --- 9. admin passwords ------------------------------------------------------------------------

async fn weak_admin_passwords_are_refused_with_a_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    for weak in ["password", "12345678", "        ", "password1234"] {
        let error = api::service::admins::create(&app.state.db, "new@example.com", None, weak)
            .await
            .expect_err(weak);
        assert_eq!(error.code(), "BAD_USER_INPUT", "{weak}");
        let error = api::service::admins::set_password(&app.state.db, ADMIN_EMAIL, weak)
            .await
            .expect_err(weak);
        assert_eq!(error.code(), "BAD_USER_INPUT", "{weak}");
    }
    // An admin's own email is no password for that admin.
    let error = api::service::admins::set_password(&app.state.db, ADMIN_EMAIL, ADMIN_EMAIL)
        .await
        .expect_err("own email");
    assert_eq!(error.code(), "BAD_USER_INPUT");
    let why = api::service::admins::create(&app.state.db, "new@example.com", None, "password1234")
        .await
        .expect_err("weak")
        .message();
    assert!(why.contains("too easy to guess"), "{why}");
    // Nothing was created or changed: the old password still signs in.
    assert_eq!(
        api::service::admins::list(&app.state.db)
            .await
            .map_err(|e| e.message())
            .unwrap()
            .len(),
        1
    );
    app.admin_token().await;
}

// --- 11. metrics, page headers, socket origins -------------------------------------------------

async fn metrics_need_the_token_when_one_is_set(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.metrics_token = Some(api::config::Secret::new("scrape-me-0123456789"));
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-me-0123456780")
        .send()
        .await
        .expect("response");
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-me-0123456789")
        .send()
        .await
        .expect("response");
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap_or_default()
            .contains("http_requests_total")
    );
}

async fn pages_carry_their_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let demo = app.get("/").await;
    assert_eq!(demo.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header(&demo, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(header(&demo, "x-frame-options"), "SAMEORIGIN");
    assert_eq!(
        header(&demo, "referrer-policy"),
        "strict-origin-when-cross-origin"
    );

    let admin = app.get("/admin666/").await;
    let csp = header(&admin, "content-security-policy");
    let connect = csp
        .split(';')
        .find(|directive| directive.trim().starts_with("connect-src"))
        .unwrap_or_default();
    // Only its own origin: no bare scheme that would allow a socket to any host.
    assert!(
        connect
            .split_whitespace()
            .all(|source| !["ws:", "wss:", "*", "http:", "https:"].contains(&source)),
        "{connect}"
    );
    assert!(connect.contains("ws://127.0.0.1:8080"), "{connect}");
}

async fn socket_origins_are_checked_against_the_configuration_not_the_host(backend: Backend) {
    let app = spawn_app(backend).await;
    // A DNS-rebinding page: its Origin and the Host the browser sends agree.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/graphql/ws",
            app.port
        ))
        .expect("request");
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    headers.insert(
        "host",
        format!("rebind.example:{}", app.port).parse().unwrap(),
    );
    headers.insert(
        "origin",
        format!("http://rebind.example:{}", app.port)
            .parse()
            .unwrap(),
    );
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a rebinding origin opened a socket");
    // The server's own address and the public URL still may.
    for origin in [
        format!("http://127.0.0.1:{}", app.port),
        format!("http://localhost:{}", app.port),
        "http://127.0.0.1:8080".to_owned(),
    ] {
        ws::try_connect(app.port, Some(&origin))
            .await
            .unwrap_or_else(|error| panic!("{origin}: {error}"));
    }
}

// --- 3. connections ----------------------------------------------------------------------------

/// A TCP connection from a chosen loopback address (127.0.0.0/8 is all this host).
async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind");
    socket
        .connect(format!("127.0.0.1:{port}").parse().expect("address"))
        .await
        .expect("connect")
}

/// Sends a GET for `/healthz` and reads the status line, or None if the connection closes.
async fn status_of(mut stream: TcpStream) -> Option<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines().next().map(str::to_owned)
}

async fn half_sent_headers_are_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect_from("127.0.0.1", app.port).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(
        read.is_ok(),
        "the half-open connection was still open after 10 s"
    );
    eprintln!("cut off after {:?}", started.elapsed());
}

async fn connections_are_capped_per_address_and_in_all(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.max_connections_per_address = 5;
        settings.max_connections = 12;
    })
    .await;
    // One address holding its five idle connections gets 429 for the sixth...
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.2", app.port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sixth = status_of(connect_from("127.0.0.2", app.port).await).await;
    assert_eq!(
        sixth.as_deref(),
        Some("HTTP/1.1 429 Too Many Requests"),
        "{sixth:?}"
    );
    // ...while another address is served.
    let other = status_of(connect_from("127.0.0.3", app.port).await).await;
    assert_eq!(other.as_deref(), Some("HTTP/1.1 200 OK"), "{other:?}");
    // Past the total, everyone gets 503 rather than a failed accept.
    for source in ["127.0.0.4", "127.0.0.5"] {
        for _ in 0..4 {
            held.push(connect_from(source, app.port).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let full = status_of(connect_from("127.0.0.6", app.port).await).await;
    assert_eq!(
        full.as_deref(),
        Some("HTTP/1.1 503 Service Unavailable"),
        "{full:?}"
    );
    // Closing connections gives their places back.
    held.clear();
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(connect_from("127.0.0.6", app.port).await)
                .await
                .as_deref()
                == Some("HTTP/1.1 200 OK")
        })
        .await
    );
    // And the descriptor limit was raised to the hard limit at start.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    assert_eq!(limit.rlim_cur, limit.rlim_max);
}

backend_tests!(
    an_admin_socket_ends_when_its_password_changes,
    an_admin_socket_ends_when_its_token_expires,
    binary_frames_count_toward_the_operation_cap,
    finished_operations_give_back_their_place,
    subscriptions_to_one_chat_are_capped,
    the_upload_marker_over_a_socket_is_refused_and_the_server_lives,
    a_range_far_past_the_end_is_416,
    weak_admin_passwords_are_refused_with_a_reason,
    metrics_need_the_token_when_one_is_set,
    pages_carry_their_security_headers,
    socket_origins_are_checked_against_the_configuration_not_the_host,
    half_sent_headers_are_cut_off,
    connections_are_capped_per_address_and_in_all,
);
