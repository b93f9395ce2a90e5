//! The guarded download route (SPEC §5): a file goes only where `service::files` allows it, by
//! signed link or by credential. Everything else is 404, so ids cannot be probed.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::files::signing::Variant;
use crate::service::{self, files::Proof};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SignedQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

pub async fn original(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SignedQuery>,
    headers: HeaderMap,
) -> Response {
    serve(app, &id, Variant::Original, query, headers).await
}

pub async fn thumbnail(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SignedQuery>,
    headers: HeaderMap,
) -> Response {
    serve(app, &id, Variant::Thumbnail, query, headers).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

async fn serve(
    app: AppState,
    id: &str,
    variant: Variant,
    query: SignedQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return not_found();
    };
    let viewer;
    let proof = match (query.exp, query.sig.as_deref()) {
        (Some(expires), Some(signature)) => Proof::SignedLink { expires, signature },
        _ => {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            viewer = Viewer::from_authorization(&app.credentials(), authorization)
                .await
                .unwrap_or(Viewer::Invalid);
            Proof::Viewer(&viewer)
        }
    };
    let now = chrono::Utc::now().timestamp();
    let attachment = match service::files::for_download(
        &app.db,
        &app.file_signer,
        id,
        variant,
        proof,
        now,
    )
    .await
    {
        Ok(Some(attachment)) => attachment,
        Ok(None) => return not_found(),
        Err(error) => return error.into_response(),
    };
    let (key, content_type) = match variant {
        Variant::Original => (
            attachment.storage_path.clone(),
            attachment.mime_type.clone(),
        ),
        Variant::Thumbnail => match &attachment.thumbnail_path {
            Some(key) => (key.clone(), attachment.mime_type.clone()),
            None => return not_found(),
        },
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => match parse_range(value) {
            Some(range) => Some(range),
            None => {
                return (StatusCode::RANGE_NOT_SATISFIABLE, "unsupported range").into_response();
            }
        },
    };
    // A suffix range (`bytes=-N`) needs the size first: a one-byte read tells it (asking for
    // the whole object would start an S3 download of all of it), then the suffix is read below.
    let requested = match range {
        Some(ByteRange::From(start, end)) => {
            Some(start..end.map_or(u64::MAX, |end| end.saturating_add(1)))
        }
        Some(ByteRange::Suffix(_)) => Some(0..1),
        None => None,
    };
    let object = match app.storage.get(&key, requested).await {
        Ok(Some(object)) => object,
        Ok(None) => return not_found(),
        Err(error) => return error.into_response(),
    };
    let object = match range {
        Some(ByteRange::Suffix(length)) => {
            let start = object.size.saturating_sub(length);
            match app.storage.get(&key, Some(start..object.size)).await {
                Ok(Some(object)) => object,
                Ok(None) => return not_found(),
                Err(error) => return error.into_response(),
            }
        }
        _ => object,
    };

    let mut response_headers = HeaderMap::new();
    let set = |headers: &mut HeaderMap, name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(&mut response_headers, header::CONTENT_TYPE, &content_type);
    set(
        &mut response_headers,
        header::X_CONTENT_TYPE_OPTIONS,
        "nosniff",
    );
    set(
        &mut response_headers,
        header::CONTENT_SECURITY_POLICY,
        "sandbox",
    );
    set(
        &mut response_headers,
        header::CACHE_CONTROL,
        "private, max-age=300",
    );
    set(&mut response_headers, header::ACCEPT_RANGES, "bytes");
    let inline = content_type.starts_with("image/");
    set(
        &mut response_headers,
        header::CONTENT_DISPOSITION,
        &content_disposition(inline, &attachment.original_name, variant),
    );
    let length = object.range.end - object.range.start;
    set(
        &mut response_headers,
        header::CONTENT_LENGTH,
        &length.to_string(),
    );
    let status = if range.is_some() {
        if object.size > 0 && (object.range.start >= object.size || object.range.is_empty()) {
            set(
                &mut response_headers,
                header::CONTENT_RANGE,
                &format!("bytes */{}", object.size),
            );
            response_headers.remove(header::CONTENT_LENGTH);
            return (StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response();
        }
        set(
            &mut response_headers,
            header::CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{}",
                object.range.start,
                object.range.end - 1,
                object.size
            ),
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    (status, response_headers, Body::from_stream(object.body)).into_response()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteRange {
    /// `bytes=start-` or `bytes=start-end` (end inclusive).
    From(u64, Option<u64>),
    /// `bytes=-length`: the last `length` bytes.
    Suffix(u64),
}

/// One range of the `bytes` unit; multiple ranges are not supported.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return end.parse().ok().filter(|n| *n > 0).map(ByteRange::Suffix);
    }
    let start = start.parse().ok()?;
    let end = if end.is_empty() {
        None
    } else {
        Some(end.parse().ok()?)
    };
    if end.is_some_and(|end| end < start) {
        return None;
    }
    Some(ByteRange::From(start, end))
}

/// `inline` for images, `attachment` for the rest, with the name in both an ASCII fallback and
/// RFC 5987 UTF-8 form, so no byte of the user's name reaches the header unescaped.
fn content_disposition(inline: bool, name: &str, variant: Variant) -> String {
    let name = match variant {
        Variant::Original => name.to_owned(),
        Variant::Thumbnail => format!("thumbnail-{name}"),
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            parse_range("bytes=0-99"),
            Some(ByteRange::From(0, Some(99)))
        );
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100, None)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(parse_range("bytes=5-1"), None);
        assert_eq!(parse_range("bytes=0-1,3-4"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }

    #[test]
    fn names_are_escaped_in_content_disposition() {
        let header = content_disposition(false, "re\"port\u{202e}.pdf", Variant::Original);
        assert!(
            header.starts_with("attachment; filename=\"re_port_.pdf\""),
            "{header}"
        );
        assert!(
            header.contains("filename*=UTF-8''re%22port%E2%80%AE.pdf"),
            "{header}"
        );
    }
}
