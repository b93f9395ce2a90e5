//! The WebSocket end of the API (`/graphql/ws`): the origin check, sockets per address, the
//! credential in `connection_init`, and the per-socket subscription cap.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::{Data, ErrorExtensions};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::Message as WsMessage;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::{Stream, StreamExt};

use super::http::GraphqlState;
use super::schema::ClientAddress;
use crate::auth::Viewer;
use crate::state::AppState;
use crate::web::client_ip;

/// A page served by this very host (say, opened as `localhost` while the public URL says
/// `127.0.0.1`) is not cross-site, whatever the configuration.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// What a socket reads into at a time.
const WS_READ_BUFFER: usize = 4 * 1024;
/// The largest message a client may send on the socket (a subscribe with its query).
pub const WS_MAX_MESSAGE: usize = 64 * 1024;

/// How long a socket may stay silent before `connection_init`.
pub const CONNECTION_INIT_DEADLINE: Duration = Duration::from_secs(10);

pub async fn graphql_ws(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !crate::web::origin_allowed(&state.app.settings, origin)
        && !same_origin(origin, &headers)
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
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let (initialised, init_seen) = tokio::sync::oneshot::channel::<()>();
            let (sink, stream) = socket.split();
            let serve = GraphQLWebSocket::new_with_pair(sink, capped(stream), schema, protocol)
                .keepalive_timeout(Duration::from_secs(30))
                .on_connection_init(move |payload| async move {
                    let _ = initialised.send(());
                    let authorization = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    let viewer = Viewer::from_authorization(
                        &app.db,
                        &app.jwt,
                        &app.visitor_chats,
                        authorization.as_deref(),
                    )
                    .await
                    .map_err(|error| error.extend())?;
                    let mut data = Data::default();
                    data.insert(viewer);
                    data.insert(ClientAddress(address));
                    Ok(data)
                })
                .serve();
            // A socket that never says `connection_init` is dropped after the deadline, so idle
            // upgrades cannot pile up.
            let deadline = async {
                if tokio::time::timeout(CONNECTION_INIT_DEADLINE, init_seen)
                    .await
                    .is_ok()
                {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = serve => {}
                () = deadline => tracing::debug!("websocket closed: no connection_init in time"),
            }
        })
}

/// Subscriptions one socket may hold open at once.
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 25;

/// Passes client messages through while counting open operations; past the cap the stream
/// ends, which closes the socket (the client may reconnect with fewer).
fn capped(
    stream: impl Stream<Item = Result<WsMessage, axum::Error>>,
) -> impl Stream<Item = Result<WsMessage, axum::Error>> {
    stream.scan(HashSet::<String>::new(), |open, message| {
        if let Ok(WsMessage::Text(text)) = &message
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str())
            && let Some(id) = value["id"].as_str()
        {
            match value["type"].as_str() {
                Some("subscribe" | "start") => {
                    open.insert(id.to_owned());
                }
                Some("complete" | "stop") => {
                    open.remove(id);
                }
                _ => {}
            }
            if open.len() > MAX_SUBSCRIPTIONS_PER_SOCKET {
                tracing::debug!("websocket closed: too many subscriptions");
                return std::future::ready(None);
            }
        }
        std::future::ready(Some(message))
    })
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
