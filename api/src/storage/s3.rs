//! Storage in an S3-compatible bucket through the `object_store` crate (Apache Arrow's, used
//! by DataFusion, Polars and delta-rs), which speaks AWS S3, MinIO, R2, Garage and friends.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use super::{Storage, StoredObject, clamp_range, unavailable, validate_key, validate_prefix};
use crate::error::{Error, Result};

/// S3 needs parts of at least 5 MiB (but the last). Files up to one part go in a single PUT;
/// bigger ones are streamed from disk part by part, so an upload holds at most about two parts
/// in memory (one being filled, one in flight).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts sent at once; more would only add memory for a single 10 MiB file.
const PART_CONCURRENCY: usize = 1;
/// A readiness probe must answer quickly, whatever the retry settings.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    /// Prepended to every key, without slashes at either end; may be empty.
    prefix: String,
}

impl S3Storage {
    /// A bucket configured from the standard `AWS_*` variables: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` (S3-compatible stores),
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` (default false: path-style, which every
    /// S3-compatible server understands).
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self> {
        Self::new(AmazonS3Builder::from_env(), bucket, prefix)
    }

    /// The same from a builder the caller configured, e.g. tests that must not touch the
    /// process environment.
    pub fn new(builder: AmazonS3Builder, bucket: &str, prefix: &str) -> Result<Self> {
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        // object_store refuses plain http unless told; an explicit http:// endpoint (MinIO on
        // the same host, a test server) is that instruction.
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|url| url.starts_with("http://"));
        let mut builder = builder.with_bucket_name(bucket).with_retry(RetryConfig {
            // The default retries for up to three minutes; a chat upload should rather fail
            // with a clear "try again" while the user is still there.
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        });
        if allow_http {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(|error| {
            Error::internal(anyhow::Error::new(error).context("S3 storage configuration"))
        })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn path_of(&self, key: &str) -> Result<ObjectPath> {
        validate_key(key)?;
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full).map_err(|error| {
            Error::internal(anyhow::Error::new(error).context(format!("storage key {key:?}")))
        })
    }

    fn context(&self, action: &str, key: &str) -> String {
        format!(
            "storage: {action} s3://{}/{}",
            self.bucket,
            self.full_key(key)
        )
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    async fn put_multipart(&self, key: &str, location: &ObjectPath, path: &Path) -> Result<()> {
        let context = || self.context("uploading", key);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|error| Error::internal(anyhow::Error::new(error).context(context())))?;
        let upload = self
            .store
            .put_multipart(location)
            .await
            .map_err(|error| unavailable(context(), error))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; 1024 * 1024];
        let result: Result<()> = async {
            loop {
                let read = file.read(&mut buffer).await.map_err(|error| {
                    Error::internal(anyhow::Error::new(error).context(context()))
                })?;
                if read == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PART_CONCURRENCY)
                    .await
                    .map_err(|error| unavailable(context(), error))?;
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match result {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|error| unavailable(context(), error))?;
                Ok(())
            }
            Err(error) => {
                // Parts of an unfinished upload cost money until aborted.
                if let Err(abort_error) = writer.abort().await {
                    tracing::warn!(error = %abort_error, key, "aborting a multipart upload failed");
                }
                Err(error)
            }
        }
    }
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    async fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let location = self.path_of(key)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|error| {
                Error::internal(anyhow::Error::new(error).context(self.context("uploading", key)))
            })?
            .len();
        if size > PART_SIZE as u64 {
            return self.put_multipart(key, &location, path).await;
        }
        let bytes = tokio::fs::read(path).await.map_err(|error| {
            Error::internal(anyhow::Error::new(error).context(self.context("uploading", key)))
        })?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|error| unavailable(self.context("uploading", key), error))?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<()> {
        let location = self.path_of(key)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|error| unavailable(self.context("uploading", key), error))?;
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Option<StoredObject>> {
        let location = self.path_of(key)?;
        // An empty or inverted range cannot be sent as a Range header; answer it from the size.
        let wants_range = range.clone().filter(|range| range.start < range.end);
        if let Some(range) = range.clone().filter(|range| range.start >= range.end) {
            return Ok(self
                .head_size(key, &location)
                .await?
                .map(|size| StoredObject {
                    size,
                    range: range.start..range.start,
                    body: futures_util::stream::empty().boxed(),
                }));
        }
        let options = GetOptions {
            // "To the end" travels as `bytes=start-`: servers need not parse an end of u64::MAX
            // (s3s refuses it).
            range: wants_range.clone().map(|range| match range.end {
                u64::MAX => GetRange::Offset(range.start),
                _ => GetRange::Bounded(range),
            }),
            ..GetOptions::default()
        };
        match self.store.get_opts(&location, options).await {
            Ok(result) => {
                let size = result.meta.size;
                let served = result.range.clone();
                let body = result.into_stream().map_err(std::io::Error::other).boxed();
                Ok(Some(StoredObject {
                    size,
                    range: served,
                    body,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // S3 answers 416 to a range starting past the end; tell that apart from an outage
            // by the object's size.
            Err(error) if wants_range.is_some() => match self.head_size(key, &location).await? {
                None => Ok(None),
                Some(size) if clamp_range(range.clone(), size).is_empty() => {
                    let start = range.map_or(0, |range| range.start);
                    Ok(Some(StoredObject {
                        size,
                        range: start..start,
                        body: futures_util::stream::empty().boxed(),
                    }))
                }
                Some(_) => Err(unavailable(self.context("reading", key), error)),
            },
            Err(error) => Err(unavailable(self.context("reading", key), error)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let location = self.path_of(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(unavailable(self.context("deleting", key), error)),
        }
    }

    async fn list_older_than(&self, prefix: &str, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
        let prefix = validate_prefix(prefix)?;
        let location = self.path_of(prefix)?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut listing = self.store.list(Some(&location));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|error| unavailable(self.context("listing", prefix), error))?;
            if meta.last_modified < cutoff
                && let Some(key) = meta.location.as_ref().strip_prefix(&strip)
            {
                keys.push(key.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn check(&self) -> Result<()> {
        let probe = format!(".chatdesk-probe/{}", uuid::Uuid::new_v4());
        let probe_and_clean = async {
            self.put_bytes(&probe, Bytes::from_static(b"probe")).await?;
            self.delete(&probe).await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, probe_and_clean).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(
                self.context("probing", &probe),
                anyhow::anyhow!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            )),
        }
    }
}

impl S3Storage {
    /// The object's size, or `None` when it does not exist.
    async fn head_size(&self, key: &str, location: &ObjectPath) -> Result<Option<u64>> {
        match self.store.head(location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(unavailable(self.context("reading", key), error)),
        }
    }
}

/// Against a real S3-compatible server: `.ci/start-s3.sh` starts s3s-fs and prints the
/// variables. Without them the test says it skipped, unless `CHATDESK_REQUIRE_S3=1` (CI), where
/// a missing server is a failure.
#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use sha2::{Digest, Sha256};

    struct Server {
        endpoint: String,
        bucket: String,
        access_key: String,
        secret_key: String,
    }

    fn server() -> Option<Server> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let found = (|| {
            Some(Server {
                endpoint: var("CHATDESK_TEST_S3_ENDPOINT")?,
                bucket: var("CHATDESK_TEST_S3_BUCKET")?,
                access_key: var("AWS_ACCESS_KEY_ID")?,
                secret_key: var("AWS_SECRET_ACCESS_KEY")?,
            })
        })();
        if found.is_none() {
            assert!(
                var("CHATDESK_REQUIRE_S3").as_deref() != Some("1"),
                "CHATDESK_REQUIRE_S3=1 but CHATDESK_TEST_S3_ENDPOINT, CHATDESK_TEST_S3_BUCKET, \
                 AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set (run .ci/start-s3.sh)"
            );
            eprintln!("skipped: no S3 server (set CHATDESK_TEST_S3_ENDPOINT; see .ci/start-s3.sh)");
        }
        found
    }

    fn storage(server: &Server, secret_key: &str, prefix: &str) -> S3Storage {
        // Built explicitly rather than from_env: tests must not depend on, or change, the
        // process environment (other AWS_* variables may be set on a developer's machine).
        let builder = AmazonS3Builder::new()
            .with_endpoint(&server.endpoint)
            .with_region("us-east-1")
            .with_access_key_id(&server.access_key)
            .with_secret_access_key(secret_key);
        S3Storage::new(builder, &server.bucket, prefix).unwrap()
    }

    async fn read(
        storage: &S3Storage,
        key: &str,
        range: Option<Range<u64>>,
    ) -> (StoredObject, Vec<u8>) {
        let mut object = storage.get(key, range).await.unwrap().unwrap();
        let body = std::mem::replace(&mut object.body, futures_util::stream::empty().boxed());
        let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
        (object, chunks.concat())
    }

    #[tokio::test]
    async fn round_trip_against_a_real_server() {
        let Some(server) = server() else { return };
        // Each run in its own prefix, so runs never see each other's objects.
        let prefix = format!("test-{}/uploads", uuid::Uuid::new_v4());
        let storage = storage(&server, &server.secret_key, &prefix);
        storage.check().await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let small: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let small_path = dir.path().join("small");
        std::fs::write(&small_path, &small).unwrap();
        let now = Utc::now();
        let small_key = super::super::new_key(now);
        storage.put_file(&small_key, &small_path).await.unwrap();

        let (object, body) = read(&storage, &small_key, None).await;
        assert_eq!((object.size, object.range.clone()), (100_000, 0..100_000));
        assert_eq!(body, small);
        let (object, body) = read(&storage, &small_key, Some(1000..2500)).await;
        assert_eq!((object.size, object.range.clone()), (100_000, 1000..2500));
        assert_eq!(body, &small[1000..2500]);
        let (object, body) = read(&storage, &small_key, Some(99_990..200_000)).await;
        assert_eq!(object.range, 99_990..100_000);
        assert_eq!(body, &small[99_990..]);
        // "To the end", as the download route asks for `bytes=N-`.
        let (object, body) = read(&storage, &small_key, Some(99_000..u64::MAX)).await;
        assert_eq!(object.range, 99_000..100_000);
        assert_eq!(body, &small[99_000..]);
        let (object, body) = read(&storage, &small_key, Some(100_000..100_001)).await;
        assert_eq!((object.size, object.range.is_empty()), (100_000, true));
        assert!(body.is_empty());

        // Bigger than one part: a multipart upload, streamed from the file.
        let big: Vec<u8> = (0..12 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let big_path = dir.path().join("big");
        std::fs::write(&big_path, &big).unwrap();
        let big_key = super::super::new_key(now);
        storage.put_file(&big_key, &big_path).await.unwrap();
        let (object, body) = read(&storage, &big_key, None).await;
        assert_eq!(object.size, big.len() as u64);
        assert_eq!(Sha256::digest(&body), Sha256::digest(&big));
        let across_parts = 5 * 1024 * 1024 - 10..5 * 1024 * 1024 + 10;
        let (_, body) = read(&storage, &big_key, Some(across_parts.clone())).await;
        let across_parts = across_parts.start as usize..across_parts.end as usize;
        assert_eq!(body, &big[across_parts]);

        let thumb_key = super::super::thumbnail_key(&small_key);
        storage
            .put_bytes(&thumb_key, Bytes::from_static(b"thumb"))
            .await
            .unwrap();

        let later = Utc::now() + chrono::Duration::minutes(5);
        let mut expected = vec![small_key.clone(), big_key.clone(), thumb_key.clone()];
        expected.sort();
        assert_eq!(
            storage.list_older_than("chat", later).await.unwrap(),
            expected
        );
        let earlier = now - chrono::Duration::minutes(5);
        assert!(
            storage
                .list_older_than("chat", earlier)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            storage
                .list_older_than("other", later)
                .await
                .unwrap()
                .is_empty()
        );

        for key in &expected {
            storage.delete(key).await.unwrap();
            assert!(storage.get(key, None).await.unwrap().is_none());
            assert!(storage.get(key, Some(0..10)).await.unwrap().is_none());
            storage.delete(key).await.unwrap(); // missing is fine
        }
        assert!(
            storage
                .list_older_than("chat", later)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_the_server() {
        let Some(server) = server() else { return };
        let storage = storage(&server, "not-the-secret", "test-wrong-secret");
        let error = storage.check().await.unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }

    /// Needs no server: nothing listens on port 9 (discard) of localhost.
    #[tokio::test]
    async fn check_fails_when_the_server_is_down() {
        let builder = AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:9")
            .with_region("us-east-1")
            .with_access_key_id("x")
            .with_secret_access_key("y");
        let storage = S3Storage::new(builder, "bucket", "").unwrap();
        let started = std::time::Instant::now();
        let error = storage.check().await.unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        assert!(started.elapsed() <= CHECK_TIMEOUT + Duration::from_secs(1));
        let error = storage.get("chat/x", None).await.unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }
}
