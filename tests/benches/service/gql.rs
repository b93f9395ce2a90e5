//! A GraphQL-over-HTTP client and a graphql-transport-ws subscriber, as the clients speak them.
//! Every response is checked: HTTP status, an `errors` member, and `data` present.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub endpoint: String,
}

impl Api {
    pub fn new(port: u16) -> Self {
        Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            endpoint: format!("http://127.0.0.1:{port}/graphql"),
        }
    }

    /// A client with its own connection, as a separate browser would have.
    pub fn own_connection(&self) -> Self {
        Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            endpoint: self.endpoint.clone(),
        }
    }

    /// The `data` of a response, or a description of what was wrong with it.
    pub async fn data(&self, query: &str, variables: Value, token: &str) -> Result<Value, String> {
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        checked(response).await
    }

    /// A GraphQL multipart request with one file bound to `$file`.
    pub async fn upload(
        &self,
        query: &str,
        variables: Value,
        token: &str,
        file_name: &str,
        mime: &str,
        bytes: bytes::Bytes,
    ) -> Result<Value, String> {
        let operations = json!({ "query": query, "variables": variables });
        let length = bytes.len() as u64;
        let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::from(bytes), length)
            .file_name(file_name.to_owned())
            .mime_str(mime)
            .map_err(|error| error.to_string())?;
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part("0", part);
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(token)
            .header("Apollo-Require-Preflight", "true")
            .multipart(form)
            .send()
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        checked(response).await
    }
}

async fn checked(response: reqwest::Response) -> Result<Value, String> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("HTTP {status}: not JSON: {error}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {body}"));
    }
    if let Some(errors) = body.get("errors") {
        return Err(format!("GraphQL errors: {errors}"));
    }
    match body.get("data") {
        Some(data) if !data.is_null() => Ok(data.clone()),
        _ => Err(format!("no data: {body}")),
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a socket, authenticates, waits for the ack and subscribes.
pub async fn subscribe(
    port: u16,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<Socket, String> {
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws")
        .into_client_request()
        .map_err(|error| error.to_string())?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        http_value("graphql-transport-ws")?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|error| format!("websocket upgrade: {error}"))?;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    socket
        .send(WsMessage::text(init.to_string()))
        .await
        .map_err(|error| error.to_string())?;
    let ack = next_message(&mut socket, Duration::from_secs(30))
        .await
        .ok_or("no connection_ack")?;
    if ack["type"] != "connection_ack" {
        return Err(format!("expected connection_ack, got {ack}"));
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket
        .send(WsMessage::text(subscribe.to_string()))
        .await
        .map_err(|error| error.to_string())?;
    Ok(socket)
}

fn http_value(text: &str) -> Result<tokio_tungstenite::tungstenite::http::HeaderValue, String> {
    text.parse().map_err(|_| format!("bad header value {text}"))
}

/// The next protocol message, answering pings; None on timeout, close or a broken socket.
pub async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match frame {
            WsMessage::Text(text) => {
                let message: Value = serde_json::from_str(&text).ok()?;
                if message["type"] == "ping" {
                    let pong = json!({ "type": "pong" }).to_string();
                    socket.send(WsMessage::text(pong)).await.ok()?;
                    continue;
                }
                return Some(message);
            }
            WsMessage::Close(_) => return None,
            _ => continue,
        }
    }
}
