//! Storage faults (issue 9, point 3), S3: the S3-compatible server stops answering (a loopback
//! proxy in front of the one `.ci/start-s3.sh` starts is closed, so the shared server and the
//! other tests are untouched); a send with files fails with `UNAVAILABLE`, no row is written,
//! `/readyz` reports the storage; when the proxy opens again, sending works again by itself.
//!
//! A binary with a single test on purpose, the one test outside `suite/`: the server builds its
//! S3 client from `AWS_*` variables, so this test points `AWS_ENDPOINT_URL` at its proxy before
//! any thread starts, which no test sharing a process with others may do.

#[path = "suite/common/mod.rs"]
mod common;

use common::resilience_support;

use std::time::{Duration, Instant};

use api::config::StorageLocation;
use common::{Backend, error_code, free_port, spawn_app_with};
use resilience_support::{attachment_count, message_count, upload};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards loopback connections to the S3 server while up; while down the port is closed and
/// every forwarded connection is cut.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the proxy port is free again");
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Dropping the task drops the listener and aborts every forwarded connection.
    fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn readiness(app: &common::TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn an_unreachable_s3_server_fails_sends_cleanly() {
    let Some(common::files::S3Server { bucket, .. }) = common::files::s3_server() else {
        return;
    };
    // s3_server checked that AWS_ENDPOINT_URL names the test server.
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is set");
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let port = free_port();
    // SAFETY: this binary holds this one test, and no other thread exists yet (the runtime is
    // built below), so nothing reads the environment while it changes.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let mut proxy = Proxy {
            port,
            upstream,
            task: None,
        };
        proxy.up().await;
        let prefix = format!("resilience-{}", uuid::Uuid::now_v7().simple());
        let app = spawn_app_with(Backend::Sqlite, |settings| {
            settings.storage = StorageLocation::S3 { bucket, prefix };
        })
        .await;
        let (chat_id, visitor) = app.start_chat(None).await;
        let png = || common::samples::png(120, 90);

        let (status, answer) = upload(&app, &visitor, &chat_id, None, &[("a.png", png())]).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer["errors"].is_null(), "{answer}");
        let (status, ready) = readiness(&app).await;
        assert_eq!(status, 200, "{ready}");

        proxy.down();
        let started = Instant::now();
        let (status, ready) = readiness(&app).await;
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["storage"], "unavailable", "{ready}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "readyz answers in time"
        );

        let messages_before = message_count(&app.state.db, &chat_id).await;
        let rows_before = attachment_count(&app.state.db).await;
        let started = Instant::now();
        let (_, answer) = upload(&app, &visitor, &chat_id, Some("x"), &[("b.png", png())]).await;
        assert_eq!(error_code(&answer), Some("UNAVAILABLE"), "{answer}");
        assert!(answer["data"].is_null(), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "failed after {:?}",
            started.elapsed()
        );
        assert_eq!(
            message_count(&app.state.db, &chat_id).await,
            messages_before
        );
        assert_eq!(attachment_count(&app.state.db).await, rows_before);

        proxy.up().await;
        let (status, ready) = readiness(&app).await;
        assert_eq!(status, 200, "{ready}");
        let (status, answer) = upload(&app, &visitor, &chat_id, None, &[("c.png", png())]).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer["errors"].is_null(), "{answer}");
        assert_eq!(attachment_count(&app.state.db).await, rows_before + 1);
        // Each row's file is there to download.
        for row in entity::chat_attachment::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
        {
            let object = app
                .state
                .storage
                .get(&row.storage_path, None)
                .await
                .map_err(|error| error.message())
                .expect("storage answers");
            assert!(object.is_some(), "{} is missing", row.storage_path);
        }
        proxy.down();
    });
}

use sea_orm::EntityTrait;
