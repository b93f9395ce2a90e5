//! Our reading of the GraphQL multipart request spec: `operations`, then `map`, then exactly the
//! file parts the map names, each once. Anything else (a missing, unknown, duplicate or
//! out-of-order part, more files than allowed, a file over the size limit) is refused while the
//! body streams, before it is spooled anywhere, so no request can pile up temp files.

use std::collections::{HashMap, HashSet};

use async_graphql::{BatchRequest, UploadValue};
use bytes::Bytes;
use futures_util::Stream;
use multer::{Constraints, Multipart, SizeLimit};
use std::io::Write as _;

use crate::error::{Error, Result};

/// Operations and map are JSON written by a client library: small.
const MAX_OPERATIONS_BYTES: u64 = 1024 * 1024;
const MAX_MAP_BYTES: u64 = 64 * 1024;

pub struct Limits {
    pub max_file_bytes: u64,
    pub max_files: usize,
    pub max_body_bytes: u64,
}

pub async fn receive(
    stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    content_type: &str,
    limits: &Limits,
) -> Result<BatchRequest> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::bad_input("a multipart request needs a boundary"))?;
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(limits.max_body_bytes)
            .per_field(limits.max_file_bytes)
            .for_field("operations", MAX_OPERATIONS_BYTES)
            .for_field("map", MAX_MAP_BYTES),
    );
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints);
    let too_large = |field: &str| match field {
        "operations" | "map" => Error::bad_input(format!("the {field} part is too large")),
        _ => Error::FileTooLarge {
            max_bytes: limits.max_file_bytes,
        },
    };
    let read_error = |error: multer::Error| match error {
        multer::Error::FieldSizeExceeded { field_name, .. } => {
            too_large(field_name.as_deref().unwrap_or(""))
        }
        multer::Error::StreamSizeExceeded { .. } => Error::FileTooLarge {
            max_bytes: limits.max_file_bytes,
        },
        other => body_error(other),
    };

    let mut next = async |expected: &str| -> Result<Bytes> {
        let field = multipart
            .next_field()
            .await
            .map_err(read_error)?
            .ok_or_else(|| Error::bad_input(format!("the {expected} part is missing")))?;
        if field.name() != Some(expected) {
            return Err(Error::bad_input(format!(
                "expected the {expected} part here, found {:?}",
                field.name().unwrap_or("an unnamed part")
            )));
        }
        field.bytes().await.map_err(read_error)
    };
    let operations = next("operations").await?;
    let map = next("map").await?;
    let mut batch: BatchRequest = serde_json::from_slice(&operations).map_err(|error| {
        Error::bad_input(format!("operations is not a GraphQL request: {error}"))
    })?;
    let FileMap(entries) = serde_json::from_slice(&map)
        .map_err(|error| Error::bad_input(format!("map is not a JSON object of paths: {error}")))?;
    crate::files::policy::check_count(entries.len(), limits.max_files)?;
    // One part fills one variable: a part mapped to several paths was processed once per path
    // (a decompression bomb of an image, three times), and in a batch the copies shared one
    // file offset. Every path must name a `null` placeholder in `operations`.
    let mut map: HashMap<String, String> = HashMap::new();
    for (name, paths) in entries {
        let [path] = <[String; 1]>::try_from(paths).map_err(|paths| {
            Error::bad_input(format!(
                "the map gives the part {name:?} {} paths: a file part fills exactly one variable",
                paths.len()
            ))
        })?;
        if map.values().any(|other| *other == path) {
            return Err(Error::bad_input(format!(
                "the map names the path {path:?} twice"
            )));
        }
        if !placeholder_exists(&batch, &path) {
            return Err(Error::bad_input(format!(
                "the map path {path:?} names no null variable in operations"
            )));
        }
        map.insert(name, path);
    }

    let mut seen = HashSet::new();
    while let Some(mut field) = multipart.next_field().await.map_err(read_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(path) = map.remove(&name) else {
            let why = if seen.contains(&name) {
                "sent twice"
            } else {
                "not named in the map"
            };
            return Err(Error::bad_input(format!("the part {name:?} is {why}")));
        };
        seen.insert(name.clone());
        let filename = field
            .file_name()
            .ok_or_else(|| Error::bad_input(format!("the part {name:?} is not a file")))?
            .to_owned();
        let content_type = field.content_type().map(ToString::to_string);
        let content = spool(&mut field, read_error).await?;
        let upload = UploadValue {
            filename,
            content_type,
            content,
        };
        set_upload(&mut batch, &path, upload)?;
    }
    if let Some(name) = map.keys().next() {
        return Err(Error::bad_input(format!(
            "the map names a part {name:?} that was not sent"
        )));
    }
    Ok(batch)
}

/// Writes a file part to an anonymous temp file. Each chunk is moved to the blocking pool and
/// written there while the next one is read: at most two chunks of a part are held at once.
/// (tokio's `File` copied every chunk into a buffer of its own first, up to 2 MiB a file: with
/// 16 uploads at once the server held 3.2 MiB per upload, 2.2 without that copy.)
async fn spool(
    field: &mut multer::Field<'_>,
    read_error: impl Fn(multer::Error) -> Error,
) -> Result<std::fs::File> {
    type Write = tokio::task::JoinHandle<std::io::Result<std::fs::File>>;
    async fn written(write: Write) -> Result<std::fs::File> {
        write
            .await
            .map_err(Error::internal)?
            .map_err(Error::internal)
    }
    let mut idle = Some(tempfile::tempfile().map_err(Error::internal)?);
    let mut writing: Option<Write> = None;
    while let Some(chunk) = field.chunk().await.map_err(&read_error)? {
        let mut file = match (writing.take(), idle.take()) {
            (Some(write), _) => written(write).await?,
            (None, Some(file)) => file,
            (None, None) => return Err(Error::internal(anyhow::anyhow!("the spool went missing"))),
        };
        writing = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&chunk).map(|()| file)
        }));
    }
    match (writing, idle) {
        (Some(write), _) => written(write).await,
        (None, Some(file)) => Ok(file),
        (None, None) => Err(Error::internal(anyhow::anyhow!("the spool went missing"))),
    }
}

/// The map as sent, its keys in order; a key given twice is refused (a JSON object read into a
/// map keeps the last silently).
struct FileMap(Vec<(String, Vec<String>)>);

impl<'de> serde::Deserialize<'de> for FileMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FileMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of part names to lists of paths")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<FileMap, A::Error> {
                let mut entries: Vec<(String, Vec<String>)> = Vec::new();
                while let Some((name, paths)) = access.next_entry::<String, Vec<String>>()? {
                    if entries.iter().any(|(seen, _)| *seen == name) {
                        return Err(serde::de::Error::custom(format!(
                            "the key {name:?} is given twice"
                        )));
                    }
                    entries.push((name, paths));
                }
                Ok(FileMap(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The request and the variable path within it (`variables.x.0`; `N.variables.x` in a batch).
fn locate<'a>(
    batch: &'a BatchRequest,
    path: &'a str,
) -> Option<(&'a async_graphql::Request, &'a str)> {
    match batch {
        BatchRequest::Single(request) => Some((request, path)),
        BatchRequest::Batch(requests) => {
            let (index, rest) = path.split_once('.')?;
            let request = requests.get(index.parse::<usize>().ok()?)?;
            Some((request, rest))
        }
    }
}

/// Whether `path` names a `null` in the variables (where the spec has clients put a file).
fn placeholder_exists(batch: &BatchRequest, path: &str) -> bool {
    use async_graphql::Value;
    let Some((request, path)) = locate(batch, path) else {
        return false;
    };
    let Some(path) = path.strip_prefix("variables.") else {
        return false;
    };
    let mut parts = path.split('.');
    let Some(first) = parts.next().and_then(|name| request.variables.get(name)) else {
        return false;
    };
    let target = parts.try_fold(first, |current, part| match current {
        Value::List(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Object(fields) => fields.get(part),
        _ => None,
    });
    matches!(target, Some(Value::Null))
}

/// Puts the upload at `path` (`variables.x.0`, or `N.variables.x` in a batch).
fn set_upload(batch: &mut BatchRequest, path: &str, upload: UploadValue) -> Result<()> {
    match batch {
        BatchRequest::Single(request) => request.set_upload(path, upload),
        BatchRequest::Batch(requests) => {
            let (index, rest) = path
                .split_once('.')
                .ok_or_else(|| Error::bad_input(format!("map path {path:?} names no operation")))?;
            let request = index
                .parse::<usize>()
                .ok()
                .and_then(|index| requests.get_mut(index))
                .ok_or_else(|| Error::bad_input(format!("map path {path:?} names no operation")))?;
            request.set_upload(rest, upload);
        }
    }
    Ok(())
}

/// A body that broke off: too slow (our deadline), dropped, or not multipart at all.
fn body_error(error: multer::Error) -> Error {
    if too_slow(&error) {
        return Error::bad_input(TOO_SLOW);
    }
    Error::bad_input(format!("malformed multipart body: {error}"))
}

/// What a client is told when its body came slower than the pace `http::paced` demands.
pub(super) const TOO_SLOW: &str = "the request body arrived too slowly; send it again";

/// Whether reading a body failed on our pacing deadline: a `TimedOut` I/O error anywhere in
/// the chain of causes (multer wraps it; a plain body read returns it as is).
pub(super) fn too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = current.source();
    }
    false
}
