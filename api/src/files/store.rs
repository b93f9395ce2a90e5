//! Putting prepared files into storage, and taking them out again when no row will name them.
//! Which files a message carries, and when they go, is the send's business
//! (`service::sending`); this knows storage keys only.

use uuid::Uuid;

use super::upload::PreparedFile;
use crate::clock::now;
use crate::error::Result;
use crate::storage::{Storage, new_key, thumbnail_key};

/// A file already written to storage, waiting for its row.
#[derive(Clone, Debug)]
pub struct NewAttachment {
    pub id: Uuid,
    pub original_name: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_path: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_path: Option<String>,
}

/// Removes stored files no row will name. A failure here leaves an orphan that the hourly
/// sweep removes.
pub async fn discard(storage: &dyn Storage, files: Vec<NewAttachment>) {
    for file in files {
        for key in std::iter::once(file.storage_path).chain(file.thumbnail_path) {
            if let Err(error) = storage.delete(&key).await {
                tracing::warn!(key, error = ?error, "could not remove an unused upload");
            }
        }
    }
}

/// Stores a prepared file (and its thumbnail) under a fresh key and returns the row to write.
/// On failure nothing of it stays stored.
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
