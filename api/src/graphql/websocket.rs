//! The WebSocket end of the API (`/graphql/ws`): the origin check, sockets per address, the
//! credential in `connection_init` (and an admin socket's end with its session), the
//! per-socket operation cap, and the upload-marker guard.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::{Data, ErrorExtensions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use axum::extract::{ConnectInfo, Extension, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt, Stream, StreamExt};

use super::http::GraphqlState;
use super::schema::{AppSchema, ClientAddress};
use crate::auth::Viewer;
use crate::auth::admin_sessions::AdminSession;
use crate::server::ConnectionPermit;
use crate::state::AppState;
use crate::web::client_ip;

/// Whether a page at `origin` may open a socket: the public URL, the allowed origins, and the
/// address this server itself listens on (say, opened as `127.0.0.1:<port>` while the public
/// URL names a proxy). Never the request's own `Host`: a DNS-rebinding page sends a `Host` and
/// an `Origin` that agree, both naming the attacker's domain.
fn origin_may_connect(app: &AppState, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    crate::web::origin_allowed(&app.settings, origin)
        || own_origins(app.local_address).any(|own| own == origin)
}

/// `http://<ip>:<port>` of the listener, and `http://localhost:<port>` when it is loopback:
/// names that resolve to this host in every browser, so no other site can stand behind them.
fn own_origins(local: SocketAddr) -> impl Iterator<Item = String> {
    let literal = format!("http://{local}");
    let localhost = local
        .ip()
        .is_loopback()
        .then(|| format!("http://localhost:{}", local.port()));
    std::iter::once(literal).chain(localhost)
}

/// What a socket reads into at a time.
const WS_READ_BUFFER: usize = 4 * 1024;
/// The largest message a client may send on the socket (a subscribe with its query).
pub const WS_MAX_MESSAGE: usize = 64 * 1024;

/// How long a socket may stay silent before `connection_init`.
pub const CONNECTION_INIT_DEADLINE: Duration = Duration::from_secs(10);

/// Close codes (graphql-transport-ws's own range, 4400-4499).
const CLOSE_BAD_MESSAGE: u16 = 4400;
const CLOSE_SESSION_ENDED: u16 = 4401;
const CLOSE_TOO_MANY_OPERATIONS: u16 = 4429;

pub async fn graphql_ws(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    connection: Option<Extension<ConnectionPermit>>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !origin_may_connect(&state.app, origin)
    {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let address = client_ip(&headers, peer, state.app.settings.trust_proxy);
    let Some(slot) = SocketSlot::take(&state.app, address) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open sockets from this address",
        )
            .into_response();
    };
    let app = state.app.clone();
    let schema = state.schema.clone();
    upgrade
        .protocols(["graphql-transport-ws", "graphql-ws"])
        // tungstenite reserves 128 KiB to read into and lets 128 KiB of writes pile up per
        // socket by default: 145 KiB of memory for every idle widget. A client only ever sends
        // small JSON messages (connection_init, subscribe, complete) and the server's events
        // are a few KiB, so small buffers cost nothing, and the caps refuse a client that
        // sends a 64 MiB message (tungstenite's default) to make the server hold it.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_upgrade(move |socket| {
            // The socket keeps its connection's place under the connection caps.
            let _connection = connection;
            serve_socket(socket, app, schema, protocol, address, slot)
        })
}

async fn serve_socket(
    socket: WebSocket,
    app: AppState,
    schema: AppSchema,
    protocol: GraphQLProtocol,
    address: IpAddr,
    _slot: SocketSlot,
) {
    // Sent once `connection_init` is answered: the admin session to watch, if any.
    let (initialised, init_seen) = tokio::sync::oneshot::channel::<Option<AdminSession>>();
    let (mut sink, stream) = socket.split();
    let operations = Arc::new(Operations::default());
    let init_app = app.clone();
    let serve = GraphQLWebSocket::new_with_pair(
        Outgoing {
            sink: &mut sink,
            operations: operations.clone(),
        },
        incoming(stream, operations.clone()),
        schema,
        protocol,
    )
    .keepalive_timeout(Duration::from_secs(30))
    .on_connection_init(move |payload| async move {
        let app = init_app;
        let authorization = payload
            .get("authorization")
            .or_else(|| payload.get("Authorization"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let viewer = Viewer::from_authorization(&app.credentials(), authorization.as_deref())
            .await
            .map_err(|error| error.extend())?;
        let session = match &viewer {
            Viewer::Admin(admin) => admin.session,
            _ => None,
        };
        let _ = initialised.send(session);
        let mut data = Data::default();
        data.insert(viewer);
        data.insert(ClientAddress(address));
        Ok(data)
    })
    .serve();
    // A socket that never says `connection_init` is dropped after the deadline, so idle
    // upgrades cannot pile up. An admin's socket lives as long as its session: the viewer was
    // decided at `connection_init`, and a socket must not outlive an expired token or a
    // changed password.
    let watch = async {
        match tokio::time::timeout(CONNECTION_INIT_DEADLINE, init_seen).await {
            Err(_) => {
                tracing::debug!("websocket closed: no connection_init in time");
                None
            }
            Ok(Ok(Some(session))) => {
                app.admin_rows.until_ended(&app.db, &session).await;
                tracing::info!(admin = %session.admin_id, "websocket closed: admin session ended");
                Some((CLOSE_SESSION_ENDED, "session ended: sign in again"))
            }
            Ok(_) => std::future::pending().await,
        }
    };
    let close = tokio::select! {
        () = serve => operations.refusal(),
        close = watch => close,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(WsMessage::Close(Some(frame))).await;
    }
}

/// Subscriptions one socket may hold open at once.
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 25;

/// The operations a socket has running, seen from both ends: a client's `subscribe` opens
/// one, the client's `complete` or the server's `complete`/`error` ends it. And why the
/// socket was refused, if it was.
#[derive(Default)]
struct Operations {
    open: Mutex<HashSet<String>>,
    refused: Mutex<Option<(u16, &'static str)>>,
}

impl Operations {
    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refuse(&self, code: u16, reason: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((code, reason));
    }

    fn refusal(&self) -> Option<(u16, &'static str)> {
        *self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads one client message; `false` refuses it, which ends the socket.
    fn client_sent(&self, data: &[u8]) -> bool {
        // async-graphql's upload marker in a variable indexes past the (absent) uploads and
        // panics inside async-graphql; files never travel over the socket.
        if contains(data, FILE_MARKER.as_bytes()) {
            self.refuse(CLOSE_BAD_MESSAGE, "files cannot be sent over the socket");
            return false;
        }
        let Ok(message) = serde_json::from_slice::<ClientMessage<'_>>(data) else {
            // Not ours to judge: async-graphql answers malformed messages itself.
            return true;
        };
        let Some(id) = message.id else {
            return true;
        };
        let mut open = self.lock_open();
        match message.kind {
            "subscribe" | "start" => {
                open.insert(id.into_owned());
            }
            "complete" | "stop" => {
                open.remove(id.as_ref());
            }
            _ => {}
        }
        if open.len() > MAX_SUBSCRIPTIONS_PER_SOCKET {
            drop(open);
            tracing::debug!("websocket closed: too many operations");
            self.refuse(
                CLOSE_TOO_MANY_OPERATIONS,
                "too many operations on one socket",
            );
            return false;
        }
        true
    }

    /// Notes an operation the server ended (a finished query or mutation, an error).
    fn server_sent(&self, text: &str) {
        // Cheap test first: `next` messages, the bulk of the traffic, are not parsed.
        if !(text.contains("\"complete\"") || text.contains("\"error\"")) {
            return;
        }
        if let Ok(message) = serde_json::from_str::<ClientMessage<'_>>(text)
            && matches!(message.kind, "complete" | "error")
            && let Some(id) = message.id
        {
            self.lock_open().remove(id.as_ref());
        }
    }
}

/// The fields of a protocol message that the caps need.
#[derive(serde::Deserialize)]
struct ClientMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// async-graphql's internal marker for an upload (see `http.rs`).
const FILE_MARKER: &str = "#__graphql_file__";

/// Passes client messages through, text and binary alike, while counting open operations;
/// a refused message ends the stream, which ends the socket with the refusal's close code.
fn incoming(
    stream: impl Stream<Item = Result<WsMessage, axum::Error>>,
    operations: Arc<Operations>,
) -> impl Stream<Item = Result<WsMessage, axum::Error>> {
    stream.take_while(move |message| {
        let keep = match message {
            Ok(WsMessage::Text(text)) => operations.client_sent(text.as_bytes()),
            Ok(WsMessage::Binary(data)) => operations.client_sent(data),
            _ => true,
        };
        std::future::ready(keep)
    })
}

/// The socket's sending half, watching the server's messages end operations.
struct Outgoing<'a> {
    sink: &'a mut SplitSink<WebSocket, WsMessage>,
    operations: Arc<Operations>,
}

impl Sink<WsMessage> for Outgoing<'_> {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.sink).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, message: WsMessage) -> Result<(), Self::Error> {
        if let WsMessage::Text(text) = &message {
            self.operations.server_sent(text.as_str());
        }
        Pin::new(&mut *self.sink).start_send(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.sink).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.sink).poll_close(cx)
    }
}

/// One open socket counted against its client address; released on drop.
struct SocketSlot {
    app: AppState,
    address: std::net::IpAddr,
}

impl SocketSlot {
    fn take(app: &AppState, address: std::net::IpAddr) -> Option<Self> {
        let mut open = app
            .open_sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= app.settings.max_sockets_per_address {
            return None;
        }
        *count += 1;
        Some(Self {
            app: app.clone(),
            address,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .app
            .open_sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}
