//! A small graphql-transport-ws client, as a browser's would speak it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub struct Subscription {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Opens a socket, authenticates in `connection_init`, and subscribes.
pub async fn subscribe(
    port: u16,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Subscription {
    let mut socket = connect(port, None).await;
    let payload = match token {
        Some(token) => json!({ "authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    let ack = receive(&mut socket, Duration::from_secs(5))
        .await
        .expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    // graphql-transport-ws has no acknowledgement for `subscribe`: give the server a moment to
    // register the stream, or an event published right away could come before it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Subscription { socket }
}

pub async fn connect(
    port: u16,
    origin: Option<&str>,
) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    try_connect(port, origin).await.expect("websocket upgrade")
}

pub async fn try_connect(
    port: u16,
    origin: Option<&str>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    Ok(connect_async(request).await?.0)
}

async fn send(socket: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("websocket send");
}

/// The next protocol message, answering pings on the way; None on timeout or close.
async fn receive(
    socket: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    wait: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match frame {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).ok()?;
                if message["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return Some(message);
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

impl Subscription {
    /// Adds another subscription on the same socket, with the given operation id.
    pub async fn subscribe_again(&mut self, id: &str, query: &str, variables: Value) {
        send(
            &mut self.socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
        )
        .await;
    }

    /// Whether the server closed the socket within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next `next` payload's data, or the error messages it got instead; None on timeout.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = receive(&mut self.socket, wait).await?;
            match message["type"].as_str() {
                Some("next") => return Some(message["payload"].clone()),
                Some("error") => return Some(json!({ "errors": message["payload"] })),
                Some("complete") => return None,
                _ => continue,
            }
        }
    }

    /// Skips events until one of `kind` arrives (others may interleave).
    pub async fn expect_kind(&mut self, field: &str, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self
                .next_event(left)
                .await
                .unwrap_or_else(|| panic!("no {kind} event within 5 s"));
            if event["data"][field]["kind"] == kind {
                return event["data"][field].clone();
            }
            assert!(event.get("errors").is_none(), "subscription error: {event}");
        }
    }
}
