//! The accept loop: what axum's `serve` does, plus the limits a public server needs.
//!
//! - a header-read timeout, so a client that opens a connection and trickles (or never sends)
//!   its headers is cut off instead of holding a descriptor for ever;
//! - a cap of open connections per peer address (above the WebSocket cap, so a busy but
//!   honest client is never refused by it), so one address cannot take every descriptor;
//! - a global cap below the descriptor limit, answered with 503, so that the process keeps
//!   descriptors for its database, files and logs instead of failing `accept` for everyone;
//! - the soft `RLIMIT_NOFILE` raised to the hard limit at start;
//! - a graceful stop that drains in-flight requests for at most [`DRAIN_LIMIT`].
//!
//! A connection that becomes a WebSocket keeps its place until the socket closes: the permit
//! travels with the request ([`ConnectionPermit`]) and the socket task holds it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::config::Settings;

/// How long a stopping server waits for in-flight requests before it exits anyway.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Descriptors kept back from the global cap for the database pool, files, logs and sockets
/// that are not HTTP connections.
const RESERVED_DESCRIPTORS: usize = 256;

/// The caps, with the connections that count against them.
#[derive(Clone)]
pub struct ConnectionLimits {
    inner: Arc<LimitsInner>,
}

struct LimitsInner {
    max_total: usize,
    /// `None` behind a trusted proxy: every connection comes from the proxy's address.
    max_per_address: Option<usize>,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    AddressFull,
}

/// One admitted connection; its place is given back when the last clone is dropped.
#[derive(Clone)]
pub struct ConnectionPermit(#[allow(dead_code)] Arc<Permit>);

pub struct Permit {
    limits: ConnectionLimits,
    address: IpAddr,
}

impl ConnectionLimits {
    pub fn new(settings: &Settings, descriptor_limit: usize) -> Self {
        let max_total = match settings.max_connections {
            0 => descriptor_limit
                .saturating_sub(RESERVED_DESCRIPTORS)
                .max(64),
            configured => configured,
        };
        Self {
            inner: Arc::new(LimitsInner {
                max_total,
                max_per_address: (!settings.trust_proxy)
                    .then_some(settings.max_connections_per_address),
                open: Mutex::new(OpenConnections::default()),
            }),
        }
    }

    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConnections> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admit(&self, address: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut open = self.lock();
        if open.total >= self.inner.max_total {
            return Err(Refusal::ServerFull);
        }
        let from_address = open.per_address.entry(address).or_insert(0);
        if self
            .inner
            .max_per_address
            .is_some_and(|max| *from_address >= max)
        {
            return Err(Refusal::AddressFull);
        }
        *from_address += 1;
        open.total += 1;
        Ok(ConnectionPermit(Arc::new(Permit {
            limits: self.clone(),
            address,
        })))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_address.remove(&self.address);
            }
        }
    }
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_descriptor_limit() -> usize {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                tracing::warn!(
                    soft = limit.rlim_cur,
                    hard = limit.rlim_max,
                    "cannot raise the open-file limit"
                );
            }
        }
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    }
}

/// Serves `router` on `listener` until `stop` completes, then stops accepting, lets in-flight
/// requests finish (at most [`DRAIN_LIMIT`]) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, stop_seen) = tokio::sync::watch::channel(());
    tokio::pin!(stop);
    let mut accept_failures_logged = false;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors (or a connection reset before accept): wait a moment
                    // rather than spin; say so once per episode, not thousands of times.
                    if !accept_failures_logged {
                        tracing::warn!(%error, open = limits.open(), "accept failed");
                        accept_failures_logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        accept_failures_logged = false;
        let permit = match limits.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal));
                continue;
            }
        };
        let router = router.clone();
        let stop_seen = stop_seen.clone();
        tokio::spawn(serve_connection(
            stream,
            peer,
            router,
            permit,
            header_read_timeout,
            stop_seen,
        ));
    }
    drop(listener);
    drop(stop_seen);
    let _ = stopping.send(());
    // Every connection task holds a receiver; all gone = all drained.
    if tokio::time::timeout(DRAIN_LIMIT, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!("stopped with requests still in flight after {DRAIN_LIMIT:?}");
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    permit: ConnectionPermit,
    header_read_timeout: Duration,
    mut stop_seen: tokio::sync::watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(permit.clone());
        let router = router.clone();
        async move { router.oneshot(Request::from(request)).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_connection_end(result),
        _ = stop_seen.changed() => {
            connection.as_mut().graceful_shutdown();
            log_connection_end(connection.await);
        }
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts, resets and malformed requests are the client's business; worth a debug
        // line, not a warning.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A minimal answer for a connection we will not serve, written without reading the request;
/// a client that never reads it cannot hold the task for long.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (status, body) = match refusal {
        Refusal::ServerFull => (
            "503 Service Unavailable",
            "the server is at its connection limit",
        ),
        Refusal::AddressFull => (
            "429 Too Many Requests",
            "too many open connections from this address",
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(total: usize, per_address: usize, trust_proxy: bool) -> Settings {
        let mut settings = Settings::from_lookup(|_| None).expect("defaults parse");
        settings.max_connections = total;
        settings.max_connections_per_address = per_address;
        settings.trust_proxy = trust_proxy;
        settings
    }

    #[test]
    fn permits_count_and_return_their_places() {
        let limits = ConnectionLimits::new(&settings(3, 2, false), 1024);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::AddressFull));
        let third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::ServerFull));
        drop(first);
        assert_eq!(limits.open(), 2);
        let again = limits.admit(a).unwrap();
        // A clone (a WebSocket holding on) keeps the place until the last one goes.
        let socket = again.clone();
        drop(again);
        assert_eq!(limits.open(), 3);
        drop(socket);
        drop((second, third));
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn behind_a_trusted_proxy_only_the_total_counts() {
        let limits = ConnectionLimits::new(&settings(0, 1, true), 1024);
        assert_eq!(limits.max_total(), 1024 - RESERVED_DESCRIPTORS);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| limits.admit(proxy).unwrap()).collect();
        assert_eq!(limits.open(), held.len());
    }
}
