//! Storage in a local folder: a key `chat/2026/11/<uuid>` is the file
//! `<root>/chat/2026/11/<uuid>`. Plain `std::fs` in `spawn_blocking` rather than
//! object_store's `LocalFileSystem`, because we want the fsync before the rename and the
//! fsync of the folder after it: a row must never name a file a power cut could lose.

use std::fs;
use std::io::{self, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{Storage, StoredObject, clamp_range, unavailable, validate_key, validate_prefix};
use crate::error::{Error, Result};

/// Chunk size for downloads: big enough to keep syscalls few, small enough per connection.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// The folder is created on first write, so a fresh checkout needs no set-up.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    context: String,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| unavailable(context, error)),
        Err(join_error) => Err(Error::internal(join_error)),
    }
}

/// Puts `target` in place whole or not at all: `make_temp` creates a hidden temp file in the same
/// folder (same filesystem, so the rename is atomic) with the content, synced; it is renamed
/// over the target, and the folder is synced so the rename itself survives a crash. A temp file
/// left by a crash starts with `.` and ends in `.tmp`; it is listed like any key, so the orphan
/// sweep removes it.
fn place_atomically(
    target: &Path,
    make_temp: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| io::Error::other("a storage path has no parent folder"))?;
    fs::create_dir_all(parent)?;
    let temp = parent.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| {
        make_temp(&temp)?;
        fs::rename(&temp, target)?;
        // Best effort: some filesystems refuse fsync on a folder, and the data itself is safe.
        if let Ok(folder) = fs::File::open(parent) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes `target` whole or not at all (see `place_atomically`), its content from `fill`.
fn write_atomically(
    target: &Path,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    place_atomically(target, |temp| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)?;
        fill(&mut file)?;
        file.sync_all()
    })
}

/// Stores the file at `source` as `target`, whole or not at all (see `place_atomically`). On
/// the same file system (the usual case: the upload's temp file and the storage folder on one
/// disk) the file is hard-linked rather than copied: the bytes are written once, not twice, and
/// are only synced here. The caller may remove `source` afterwards; `target` keeps the bytes
/// (and the temp file's owner-only permissions; the server alone reads stored files). Anywhere
/// else (another file system, one without hard links) it is copied.
fn store_file_atomically(target: &Path, source: &Path) -> io::Result<()> {
    place_atomically(target, |temp| {
        if fs::hard_link(source, temp).is_ok() {
            return fs::File::open(temp)?.sync_all();
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)?;
        io::copy(&mut fs::File::open(source)?, &mut file)?;
        file.sync_all()
    })
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let target = self.path_of(key)?;
        let source = path.to_owned();
        blocking(format!("storage: writing {key}"), move || {
            store_file_atomically(&target, &source)
        })
        .await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<()> {
        let target = self.path_of(key)?;
        blocking(format!("storage: writing {key}"), move || {
            write_atomically(&target, |file| file.write_all(&bytes))
        })
        .await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<StoredObject>> {
        let path = self.path_of(key)?;
        let context = || format!("storage: reading {key}");
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(unavailable(context(), error)),
        };
        let metadata = file
            .metadata()
            .await
            .map_err(|error| unavailable(context(), error))?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let size = metadata.len();
        let range = clamp_range(range, size);
        // An empty range (one starting at or past the end, however far: a client may ask for
        // `bytes=9223372036854775807-`) reads nothing, so there is nowhere to seek to.
        if range.is_empty() {
            return Ok(Some(StoredObject {
                size,
                range,
                body: futures_util::stream::empty().boxed(),
            }));
        }
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .await
                .map_err(|error| unavailable(context(), error))?;
        }
        let body = ReaderStream::with_capacity(file.take(range.end - range.start), READ_CHUNK);
        Ok(Some(StoredObject {
            size,
            range,
            body: body.boxed(),
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(unavailable(format!("storage: deleting {key}"), error)),
        }
    }

    async fn list_older_than(&self, prefix: &str, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
        let prefix = validate_prefix(prefix)?.to_owned();
        let root = self.root.clone();
        let cutoff = SystemTime::from(cutoff);
        blocking(format!("storage: listing {prefix}"), move || {
            let mut keys = Vec::new();
            let start = root.join(&prefix);
            match fs::symlink_metadata(&start) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(keys),
                Err(error) => return Err(error),
                Ok(metadata) if metadata.is_file() => {
                    if metadata.modified()? < cutoff {
                        keys.push(prefix);
                    }
                    return Ok(keys);
                }
                Ok(_) => {}
            }
            // An explicit stack rather than recursion: depth is small, but this never overflows.
            let mut folders = vec![(start, prefix)];
            while let Some((folder, key_prefix)) = folders.pop() {
                for entry in fs::read_dir(&folder)? {
                    let entry = entry?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue; // not a name we could have written
                    };
                    let key = format!("{key_prefix}/{name}");
                    let file_type = entry.file_type()?;
                    if file_type.is_dir() {
                        folders.push((entry.path(), key));
                    } else if file_type.is_file() && entry.metadata()?.modified()? < cutoff {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn check(&self) -> Result<()> {
        let probe = format!(".chatdesk-probe-{}", uuid::Uuid::new_v4());
        self.put_bytes(&probe, Bytes::from_static(b"probe")).await?;
        self.delete(&probe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn read_all(object: StoredObject) -> Vec<u8> {
        let chunks: Vec<Bytes> = object.body.try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn round_trip_with_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("uploads"));
        let source = dir.path().join("source");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&source, &content).unwrap();

        let key = "chat/2026/11/abc";
        storage.put_file(key, &source).await.unwrap();
        // The stored file does not depend on the source (an upload's temp file goes away).
        fs::remove_file(&source).unwrap();
        assert_eq!(
            fs::read(dir.path().join("uploads/chat/2026/11/abc")).unwrap(),
            content
        );

        let whole = storage.get(key, None).await.unwrap().unwrap();
        assert_eq!((whole.size, whole.range.clone()), (200_000, 0..200_000));
        assert_eq!(read_all(whole).await, content);

        let part = storage.get(key, Some(100..70_000)).await.unwrap().unwrap();
        assert_eq!((part.size, part.range.clone()), (200_000, 100..70_000));
        assert_eq!(read_all(part).await, &content[100..70_000]);

        let tail = storage
            .get(key, Some(199_990..300_000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tail.range, 199_990..200_000);
        assert_eq!(read_all(tail).await, &content[199_990..]);

        let beyond = storage
            .get(key, Some(200_000..200_010))
            .await
            .unwrap()
            .unwrap();
        assert!(beyond.range.is_empty());
        assert!(read_all(beyond).await.is_empty());

        // Replacing is whole; no temp files are left behind.
        storage
            .put_bytes(key, Bytes::from_static(b"new"))
            .await
            .unwrap();
        let replaced = storage.get(key, None).await.unwrap().unwrap();
        assert_eq!(read_all(replaced).await, b"new");
        let names: Vec<_> = fs::read_dir(dir.path().join("uploads/chat/2026/11"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["abc"]);

        storage.delete(key).await.unwrap();
        assert!(storage.get(key, None).await.unwrap().is_none());
        storage.delete(key).await.unwrap(); // missing is fine
        assert!(storage.get("chat/2026", None).await.unwrap().is_none()); // a folder is no object
    }

    #[tokio::test]
    async fn bad_keys_never_touch_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("uploads"));
        for key in ["../escape", "/abs", "a\\b", "chat/../../x"] {
            let put = storage.put_bytes(key, Bytes::from_static(b"x")).await;
            assert!(matches!(put, Err(Error::Internal(_))), "{key}");
            assert!(
                matches!(storage.get(key, None).await, Err(Error::Internal(_))),
                "{key}"
            );
            assert!(
                matches!(storage.delete(key).await, Err(Error::Internal(_))),
                "{key}"
            );
        }
        assert!(!dir.path().join("escape").exists());
    }

    #[tokio::test]
    async fn lists_old_keys_under_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        for key in ["chat/2026/10/a", "chat/2026/11/b", "chatter/c", "other/d"] {
            storage
                .put_bytes(key, Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let future = Utc::now() + chrono::Duration::hours(1);
        let past = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(
            storage.list_older_than("chat", future).await.unwrap(),
            ["chat/2026/10/a", "chat/2026/11/b"]
        );
        assert_eq!(
            storage
                .list_older_than("chat/2026/11/", future)
                .await
                .unwrap(),
            ["chat/2026/11/b"]
        );
        assert!(
            storage
                .list_older_than("chat", past)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            storage
                .list_older_than("missing", future)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(storage.list_older_than("../", future).await.is_err());
    }

    #[tokio::test]
    async fn check_fails_when_the_folder_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        LocalStorage::new(dir.path().join("fresh"))
            .check()
            .await
            .unwrap();
        // A file where the folder should be: unwritable even for root, unlike chmod.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"").unwrap();
        let error = LocalStorage::new(blocker.join("uploads"))
            .check()
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        let error = LocalStorage::new(&blocker)
            .put_bytes("chat/x", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }
}
