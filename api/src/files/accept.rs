//! Turning a message's uploads into stored files: policy checks and image processing (off the
//! async runtime), then storage, before any row is written.

use async_graphql::{Context, Upload};
use uuid::Uuid;

use super::policy::FilePolicy;
use super::scan::Scanner;
use super::upload::{PreparedFile, prepare_file};
use crate::clock::now;
use crate::error::{Error, Result};
use crate::service::messages::NewAttachment;
use crate::state::AppState;
use crate::storage::{Storage, new_key, thumbnail_key};

/// Files accepted and stored for one message, not yet named by any row.
#[derive(Default)]
pub struct AcceptedFiles(Vec<NewAttachment>);

impl AcceptedFiles {
    pub fn rows(&self) -> Vec<NewAttachment> {
        self.0.clone()
    }

    /// Removes the stored files again: the row was not written, or a retry made them surplus.
    /// A failure here leaves an orphan that the hourly sweep removes.
    pub async fn discard(self, app: &AppState) {
        discard(app.storage.as_ref(), self.0).await;
    }
}

/// Removes stored files no row will name. A failure here leaves an orphan for the sweep.
pub async fn discard(storage: &dyn Storage, files: Vec<NewAttachment>) {
    for file in files {
        for key in std::iter::once(file.storage_path).chain(file.thumbnail_path) {
            if let Err(error) = storage.delete(&key).await {
                tracing::warn!(key, error = ?error, "could not remove an unused upload");
            }
        }
    }
}

pub async fn accept_uploads(
    ctx: &Context<'_>,
    app: &AppState,
    uploads: &[Upload],
) -> Result<AcceptedFiles> {
    let policy = FilePolicy::from_settings(&app.settings);
    let scanner = Scanner::from_settings(&app.settings);
    policy.check_count(uploads.len())?;
    let mut accepted = AcceptedFiles::default();
    for upload in uploads {
        match accept_one(ctx, app, &policy, scanner.as_ref(), upload).await {
            Ok(file) => accepted.0.push(file),
            Err(error) => {
                accepted.discard(app).await;
                return Err(error);
            }
        }
    }
    Ok(accepted)
}

async fn accept_one(
    ctx: &Context<'_>,
    app: &AppState,
    policy: &FilePolicy,
    scanner: Option<&Scanner>,
    upload: &Upload,
) -> Result<NewAttachment> {
    let value = upload
        .value(ctx)
        .map_err(|_| Error::bad_input("an upload could not be read"))?;
    let prepared = prepare_file(policy, scanner, &value.filename, value.content).await?;
    store_prepared(app.storage.as_ref(), &prepared).await
}

/// Stores a prepared file (and its thumbnail) under a fresh key and returns the row to write.
/// On failure nothing of it stays stored. Uploads and the demo seeder both come through here.
pub async fn store_prepared(
    storage: &dyn Storage,
    prepared: &PreparedFile,
) -> Result<NewAttachment> {
    let key = new_key(now());
    storage.put_file(&key, prepared.path()).await?;
    let thumbnail_path = match &prepared.image {
        Some(image) => {
            let thumb = thumbnail_key(&key);
            if let Err(error) = storage
                .put_bytes(&thumb, image.thumbnail.clone().into())
                .await
            {
                let _ = storage.delete(&key).await;
                return Err(error);
            }
            Some(thumb)
        }
        None => None,
    };
    Ok(NewAttachment {
        id: Uuid::now_v7(),
        original_name: prepared.original_name.clone(),
        mime_type: prepared.mime_type.to_owned(),
        size_bytes: i64::try_from(prepared.size_bytes).unwrap_or(i64::MAX),
        sha256: prepared.sha256_hex.clone(),
        storage_path: key,
        width: prepared
            .image
            .as_ref()
            .and_then(|image| i32::try_from(image.width).ok()),
        height: prepared
            .image
            .as_ref()
            .and_then(|image| i32::try_from(image.height).ok()),
        thumbnail_path,
    })
}
