//! Attachments from the outside: GraphQL multipart uploads as browsers send them, downloads,
//! and what the storage (a local folder or a real S3-compatible bucket) holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use api::config::StorageLocation;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Backend, TestApp, spawn_app_with};

/// Where a test's uploads are stored.
#[derive(Clone, Debug)]
pub enum Store {
    Local,
    S3(S3Server),
}

#[derive(Clone, Debug)]
pub struct S3Server {
    pub bucket: String,
    /// s3s-fs's data folder (`CHATDESK_TEST_S3_DATA`): an object there is a plain file, whose
    /// modification time the server reports as `LastModified`.
    pub data_dir: Option<PathBuf>,
}

/// The S3-compatible server to test against (`eval "$(.ci/start-s3.sh)"`), if any. With
/// `CHATDESK_REQUIRE_S3=1` a missing one fails the test instead of skipping it.
pub fn s3_server() -> Option<S3Server> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let Some(endpoint) = var("CHATDESK_TEST_S3_ENDPOINT") else {
        assert!(
            var("CHATDESK_REQUIRE_S3").as_deref() != Some("1"),
            "CHATDESK_REQUIRE_S3=1 but CHATDESK_TEST_S3_ENDPOINT is not set: eval \"$(.ci/start-s3.sh)\""
        );
        eprintln!("skipped on S3: CHATDESK_TEST_S3_ENDPOINT is not set (see .ci/start-s3.sh)");
        return None;
    };
    // The server under test builds its S3 client from the standard AWS_* variables, as in
    // production; start-s3.sh exports them.
    assert_eq!(
        var("AWS_ENDPOINT_URL").as_deref(),
        Some(endpoint.as_str()),
        "AWS_ENDPOINT_URL must name the test server, as .ci/start-s3.sh exports it"
    );
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        assert!(
            var(name).is_some(),
            "{name} is not set (see .ci/start-s3.sh)"
        );
    }
    Some(S3Server {
        bucket: var("CHATDESK_TEST_S3_BUCKET").expect("CHATDESK_TEST_S3_BUCKET is set"),
        data_dir: var("CHATDESK_TEST_S3_DATA").map(PathBuf::from),
    })
}

/// Runs each listed `async fn name(backend: Backend, store: Store)` as a test on SQLite and
/// Postgres, each with local storage and with S3.
#[macro_export]
macro_rules! storage_tests {
    ($($name:ident),* $(,)?) => {
        mod local_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite, $crate::common::files::Store::Local).await
                }
            )*
        }
        mod local_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(url) = $crate::common::postgres_url() {
                        super::$name($crate::common::Backend::Postgres(url), $crate::common::files::Store::Local).await
                    }
                }
            )*
        }
        mod s3_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s3) = $crate::common::files::s3_server() {
                        super::$name($crate::common::Backend::Sqlite, $crate::common::files::Store::S3(s3)).await
                    }
                }
            )*
        }
        mod s3_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let (Some(url), Some(s3)) =
                        ($crate::common::postgres_url(), $crate::common::files::s3_server())
                    {
                        super::$name($crate::common::Backend::Postgres(url), $crate::common::files::Store::S3(s3)).await
                    }
                }
            )*
        }
    };
}

/// `spawn_app_with`, storing uploads in `store`: on S3 under a prefix of its own, so tests
/// never see each other's objects.
pub async fn spawn_app_on(
    backend: Backend,
    store: &Store,
    customize: impl FnOnce(&mut api::Settings),
) -> TestApp {
    spawn_app_with(backend, |settings| {
        if let Store::S3(server) = store {
            settings.storage = StorageLocation::S3 {
                bucket: server.bucket.clone(),
                prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
            };
        }
        customize(settings);
    })
    .await
}

/// The fields of a sent message that upload tests look at.
pub const MESSAGE_FIELDS: &str = "id body sender clientMessageId \
     attachments { id name mimeType sizeBytes width height url thumbnailUrl purged }";

/// A file as a browser's `FormData` sends it: (file name, bytes, declared content type).
pub type FilePart<'a> = (&'a str, &'a [u8], &'a str);

/// A GraphQL multipart request (operations, map, one part a file) to the server at `base`,
/// with `token`'s credential and the CSRF pre-flight header, like Apollo's upload link: `query`
/// with `variables` and the files as `$attachments`. The whole response.
pub async fn upload_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    mut variables: Value,
    files: &[FilePart<'_>],
) -> Value {
    variables["attachments"] = json!(vec![Value::Null; files.len()]);
    let operations = json!({ "query": query, "variables": variables });
    let map: serde_json::Map<String, Value> = (0..files.len())
        .map(|index| {
            (
                index.to_string(),
                json!([format!("variables.attachments.{index}")]),
            )
        })
        .collect();
    let mut form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", Value::Object(map).to_string());
    for (index, (name, bytes, content_type)) in files.iter().enumerate() {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(name.to_string())
            .mime_str(content_type)
            .expect("a valid content type");
        form = form.part(index.to_string(), part);
    }
    let response = client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .header("Apollo-Require-Preflight", "true")
        .multipart(form)
        .send()
        .await
        .expect("request sent");
    response.json().await.expect("a JSON response")
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl TestApp {
    /// `sendMessage` with files, as a GraphQL multipart request (operations, map, one part per
    /// file) with the CSRF pre-flight header, like Apollo's upload link. The whole response.
    pub async fn upload(
        &self,
        token: &str,
        chat_id: &str,
        files: &[FilePart<'_>],
        client_message_id: Option<&str>,
    ) -> Value {
        self.upload_with_body(token, chat_id, None, files, client_message_id)
            .await
    }

    pub async fn upload_with_body(
        &self,
        token: &str,
        chat_id: &str,
        body: Option<&str>,
        files: &[FilePart<'_>],
        client_message_id: Option<&str>,
    ) -> Value {
        let query = format!(
            "mutation($chatId: UUID!, $body: String, $attachments: [Upload!], $clientMessageId: String) \
             {{ sendMessage(chatId: $chatId, body: $body, attachments: $attachments, \
             clientMessageId: $clientMessageId) {{ {MESSAGE_FIELDS} }} }}"
        );
        let variables = json!({
            "chatId": chat_id,
            "body": body,
            "clientMessageId": client_message_id,
        });
        upload_at(&self.client, &self.address, token, &query, variables, files).await
    }

    /// The message of an upload that must succeed.
    pub async fn upload_ok(&self, token: &str, chat_id: &str, files: &[FilePart<'_>]) -> Value {
        let response = self.upload(token, chat_id, files, None).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {response}"
        );
        response["data"]["sendMessage"].clone()
    }

    /// A link the API handed out (built on `CHATDESK_PUBLIC_URL`), aimed at this test server.
    pub fn local_url(&self, url: &str) -> String {
        let public = self.state.settings.public_url.trim_end_matches('/');
        let path = url
            .strip_prefix(public)
            .unwrap_or_else(|| panic!("{url} is not under {public}"));
        assert!(path.starts_with("/api/chat/files/"), "{url}");
        self.url(path)
    }

    /// GET on a full URL (already aimed at this server), with an optional bearer token and
    /// `Range` header.
    pub async fn fetch(
        &self,
        url: &str,
        token: Option<&str>,
        range: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send().await.expect("request sent")
    }

    /// The bytes behind an `Attachment.url`, which must be served.
    pub async fn download(&self, url: &str) -> Vec<u8> {
        let response = self.fetch(&self.local_url(url), None, None).await;
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().await.expect("a body").to_vec()
    }

    /// Every object the storage holds. For a local folder, every file under it, whatever its
    /// name (temp files too); for S3, every object under this test's prefix.
    pub async fn stored_objects(&self) -> Vec<String> {
        let mut keys = self
            .state
            .storage
            .list_older_than("chat", chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .expect("storage lists");
        if let StorageLocation::Local(root) = &self.state.settings.storage {
            let mut files = Vec::new();
            walk(root, &mut files);
            let mut all: Vec<String> = files
                .iter()
                .map(|path| {
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            all.sort();
            assert_eq!(keys, all, "the listing shows every file in the folder");
            keys = all;
        }
        keys
    }

    /// Sets an object's modification time `age` into the past, as if written then. Local
    /// folders always; S3 only on s3s-fs with a known data folder (S3 cannot backdate).
    pub fn backdate(&self, key: &str, age: Duration) -> bool {
        let path = match &self.state.settings.storage {
            StorageLocation::Local(root) => root.join(key),
            StorageLocation::S3 { bucket, prefix } => {
                match s3_server().and_then(|server| server.data_dir) {
                    Some(data) => data.join(bucket).join(prefix).join(key),
                    None => return false,
                }
            }
        };
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .set_modified(SystemTime::now() - age)
            .expect("mtime set");
        true
    }

    /// Rows in the messages and attachments tables.
    pub async fn row_counts(&self, chat_id: &str) -> (u64, u64) {
        let chat_id = uuid::Uuid::parse_str(chat_id).expect("a chat id");
        let messages = entity::chat_message::Entity::find()
            .filter(entity::chat_message::Column::ChatId.eq(chat_id))
            .count(&self.state.db)
            .await
            .expect("messages counted");
        let attachments = entity::chat_attachment::Entity::find()
            .count(&self.state.db)
            .await
            .expect("attachments counted");
        (messages, attachments)
    }
}

fn walk(folder: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}
