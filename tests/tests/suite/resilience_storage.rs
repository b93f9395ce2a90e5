//! Storage faults (issue 9, point 3), local folder: while the upload folder cannot be written,
//! a send with files fails with `UNAVAILABLE` and leaves no message row without its file,
//! `/readyz` says the storage is unavailable, text messages still go through, and once the
//! folder is back sending files works again by itself. (The S3 variant is
//! `resilience_storage_s3.rs`, a binary of its own because it must set `AWS_ENDPOINT_URL`.)
//!
//! Tests run as root here, where `chmod 000` does not stop writes; the folder is made unwritable
//! by putting a regular file in its place, which fails every write under it for anyone.

use crate::common;
use crate::common::resilience_support;

use std::time::{Duration, Instant};

use common::{Backend, error_code, spawn_app};
use resilience_support::{attachment_count, consistency, message_count, upload, uploads_dir};
use serde_json::Value;

async fn readiness(app: &common::TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn an_unwritable_upload_folder_fails_sends_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let uploads = uploads_dir(&app);
    let png = || common::samples::png(120, 90);

    let (status, answer) = upload(&app, &visitor, &chat_id, None, &[("before.png", png())]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
    let (status, ready) = readiness(&app).await;
    assert_eq!(
        (status, ready["storage"].as_str()),
        (200, Some("ok")),
        "{ready}"
    );

    // The storage breaks: the folder is replaced by a regular file.
    let away = app.dir.path().join("uploads.away");
    std::fs::rename(&uploads, &away).unwrap();
    std::fs::write(&uploads, b"not a folder").unwrap();

    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["storage"], "unavailable", "{ready}");
    assert_eq!(ready["database"], "ok", "{ready}");

    let messages_before = message_count(&app.state.db, &chat_id).await;
    let rows_before = attachment_count(&app.state.db).await;
    for attempt in 0..3 {
        let started = Instant::now();
        let (status, answer) = upload(
            &app,
            &visitor,
            &chat_id,
            Some("a photo and a document"),
            &[
                ("during.png", png()),
                ("during.pdf", common::samples::small_pdf()),
            ],
        )
        .await;
        assert!(status == 200 || status == 503, "{status} {answer}");
        assert_eq!(
            error_code(&answer),
            Some("UNAVAILABLE"),
            "attempt {attempt}: {answer}"
        );
        assert!(answer["data"].is_null(), "{answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains(app.dir.path().to_string_lossy().as_ref()),
            "the error names a path: {message}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    }
    assert_eq!(
        message_count(&app.state.db, &chat_id).await,
        messages_before
    );
    assert_eq!(attachment_count(&app.state.db).await, rows_before);

    // Text needs no storage: the conversation goes on meanwhile.
    app.send(&visitor, &chat_id, "can you hear me without the photo?")
        .await;

    // The storage comes back; nothing needs restarting.
    std::fs::remove_file(&uploads).unwrap();
    std::fs::rename(&away, &uploads).unwrap();
    let (status, ready) = readiness(&app).await;
    assert_eq!(status, 200, "{ready}");
    let (status, answer) = upload(&app, &visitor, &chat_id, None, &[("after.png", png())]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(attachment_count(&app.state.db).await, rows_before + 1);

    // Every row has its files, and no file is left without a row.
    let report = consistency(&app.state.db, &uploads).await;
    assert_eq!(report.rows, 2, "{report:?}");
    assert!(
        report.missing.is_empty() && report.corrupt.is_empty() && report.unnamed.is_empty(),
        "{report:?}"
    );
}

backend_tests!(an_unwritable_upload_folder_fails_sends_cleanly);
