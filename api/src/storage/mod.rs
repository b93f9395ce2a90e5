//! Where attachment bytes live: a local folder or an S3-compatible bucket, behind one trait so
//! the rest of the API never knows which.
//!
//! Keys are relative, `/`-separated paths such as `chat/2026/11/<uuid>` (see [`new_key`]); they
//! are chosen by the server, never by a user, and [`validate_key`] refuses anything that could
//! climb out of the storage root.

mod local;
mod s3;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use futures_util::stream::BoxStream;

pub use local::LocalStorage;
pub use s3::S3Storage;

use crate::config::StorageLocation;
use crate::error::{Error, Result};

/// The body of a stored object, streamed in chunks so a download never holds a whole file.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// One object read back from storage.
pub struct StoredObject {
    /// The size of the whole object, whatever range was asked for.
    pub size: u64,
    /// The bytes `body` carries: `0..size` when no range was asked for, else the requested range
    /// with its end clamped to `size`. Empty (`start == end`) when a requested range starts at or
    /// beyond the end of the object: the caller answers `416` with `Content-Range: bytes */size`.
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a finished local file under `key`, replacing any object there. The object appears
    /// whole or not at all.
    async fn put_file(&self, key: &str, path: &Path) -> Result<()>;

    /// Stores a small in-memory body (thumbnails, probes, generated demo files).
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<()>;

    /// Streams the object, or the part of it in `range`; `None` when there is no such object.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<StoredObject>>;

    /// Removes the object; a missing object is not an error, so retries and sweeps are safe.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Keys under `prefix` (whole path segments: `chat` matches `chat/…`, not `chatter/…`) last
    /// modified before `cutoff`. The orphan sweep compares these with the keys rows name.
    async fn list_older_than(&self, prefix: &str, cutoff: DateTime<Utc>) -> Result<Vec<String>>;

    /// Readiness: writes and deletes a small probe object.
    async fn check(&self) -> Result<()>;
}

/// Opens the storage `CHATDESK_STORAGE` names. S3 settings other than bucket and prefix come
/// from the standard `AWS_*` variables.
pub fn from_settings(location: &StorageLocation) -> Result<Arc<dyn Storage>> {
    Ok(match location {
        StorageLocation::Local(root) => Arc::new(LocalStorage::new(root.clone())),
        StorageLocation::S3 { bucket, prefix } => Arc::new(S3Storage::from_env(bucket, prefix)?),
    })
}

/// A fresh random key for an upload made at `now`: `chat/<yyyy>/<mm>/<uuid>`. The month folders
/// keep directories small and make a month's files easy to find; the random v4 UUID means a
/// key reveals nothing and cannot be guessed.
pub fn new_key(now: DateTime<Utc>) -> String {
    format!(
        "chat/{:04}/{:02}/{}",
        now.year(),
        now.month(),
        uuid::Uuid::new_v4()
    )
}

/// The key of an image's thumbnail, beside the original.
pub fn thumbnail_key(key: &str) -> String {
    format!("{key}.thumb")
}

/// Refuses keys that are empty, absolute, contain `.`/`..`/empty segments, backslashes or
/// control characters. Keys come from [`new_key`], so a bad one is a bug: `Internal`.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.starts_with('/')
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad {
        return Err(Error::internal(anyhow::anyhow!(
            "invalid storage key {key:?}"
        )));
    }
    Ok(())
}

/// A prefix for listing: a key, optionally with a trailing `/`.
fn validate_prefix(prefix: &str) -> Result<&str> {
    let trimmed = prefix.trim_end_matches('/');
    validate_key(trimmed)?;
    Ok(trimmed)
}

/// Storage failures are worth retrying later (disk full, S3 down): `Unavailable`, with context
/// for the log.
fn unavailable(context: String, error: impl Into<anyhow::Error>) -> Error {
    Error::Unavailable(error.into().context(context))
}

/// The requested part of an object of `size` bytes, as [`StoredObject::range`] describes it.
fn clamp_range(requested: Option<Range<u64>>, size: u64) -> Range<u64> {
    match requested {
        None => 0..size,
        Some(range) if range.start >= size || range.start >= range.end => range.start..range.start,
        Some(range) => range.start..range.end.min(size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn new_keys_are_random_and_dated() {
        let now = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
        let key = new_key(now);
        assert!(key.starts_with("chat/2026/03/"), "{key}");
        let uuid = key.rsplit('/').next().unwrap();
        assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
        assert_ne!(key, new_key(now));
        validate_key(&key).unwrap();
        validate_key(&thumbnail_key(&key)).unwrap();
    }

    #[test]
    fn bad_keys_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "chat/../../x",
            "chat/./x",
            "chat//x",
            "chat\\x",
            "chat/x/",
            "chat/\u{0}x",
            "chat/x\n",
        ] {
            assert!(
                matches!(validate_key(key), Err(Error::Internal(_))),
                "{key:?}"
            );
        }
        validate_key("chat/2026/11/abc").unwrap();
        assert_eq!(validate_prefix("chat/").unwrap(), "chat");
    }

    #[test]
    fn ranges_clamp_to_the_object() {
        assert_eq!(clamp_range(None, 10), 0..10);
        assert_eq!(clamp_range(Some(2..5), 10), 2..5);
        assert_eq!(clamp_range(Some(2..50), 10), 2..10);
        assert_eq!(clamp_range(Some(10..20), 10), 10..10);
        assert_eq!(clamp_range(Some(5..5), 10), 5..5);
        assert_eq!(clamp_range(None, 0), 0..0);
    }
}
