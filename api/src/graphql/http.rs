//! The HTTP end of the API: our own request extractor (multipart limits, the file-marker
//! guard, batch cap), the viewer per request, and GraphiQL. The socket end is `websocket.rs`.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_graphql::http::{GraphiQLSource, MultipartOptions, receive_batch_body};
use async_graphql::{
    BatchRequest, BatchResponse, ErrorExtensions, ParseRequestError, Response, ServerError, Value,
};
use async_graphql_axum::GraphQLResponse;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt};

use super::multipart;
use super::parsed_queries::ParsedQueries;
use super::schema::{AppSchema, ClientAddress};
use crate::auth::Viewer;
use crate::error::Error;
use crate::state::AppState;
use crate::web::client_ip;

/// async-graphql's internal marker for an upload. A request that carries one itself (instead
/// of through the multipart map) would index past the uploads and panic inside async-graphql.
const FILE_MARKER: &str = "#__graphql_file__:";

/// More operations in one batch than a client needs is a way to multiply work.
pub const MAX_BATCH: usize = 10;

#[derive(Clone)]
pub struct GraphqlState {
    pub app: AppState,
    pub schema: AppSchema,
    pub parsed_queries: std::sync::Arc<ParsedQueries>,
}

pub async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

fn error_response(status: StatusCode, error: Error) -> axum::response::Response {
    let server_error = ServerError::new(error.message(), None);
    let mut server_error = server_error;
    server_error.extensions = error.extend().extensions;
    let response = Response::from_errors(vec![server_error]);
    (status, GraphQLResponse::from(response)).into_response()
}

pub async fn graphql_post(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let app = &state.app;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if crate::web::violates_csrf_rule(content_type, &headers) {
        return error_response(
            StatusCode::BAD_REQUEST,
            Error::bad_input(
                "this request looks like a cross-site form post: send Content-Type: application/json, \
                 or an Apollo-Require-Preflight header with multipart uploads",
            ),
        );
    }

    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match Viewer::from_authorization(&app.credentials(), authorization).await {
        Ok(viewer) => viewer,
        Err(error) => return error_response(error.status(), error),
    };

    let is_multipart = content_type.is_some_and(|value| {
        value
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    });
    let mut batch = if let Some(content_type) = content_type.filter(|_| is_multipart) {
        let limits = multipart::Limits {
            max_file_bytes: app.settings.max_file_bytes,
            max_files: app.settings.max_files,
            max_body_bytes: app.settings.max_body_bytes() as u64,
        };
        match multipart::receive(paced(body), content_type, &limits).await {
            Ok(batch) => batch,
            Err(error) => return error_response(error.status(), error),
        }
    } else {
        // JSON: no uploads, so no multipart options apply.
        let reader = paced(body).into_async_read();
        match receive_batch_body(content_type, reader, MultipartOptions::default()).await {
            Ok(batch) => batch,
            Err(error) => return parse_error_response(error, app),
        }
    };
    if let Err(error) = check_batch(&batch) {
        return error_response(StatusCode::BAD_REQUEST, error);
    }
    state.parsed_queries.attach(&mut batch);

    let batch = batch.data(viewer).data(ClientAddress(client_ip(
        &headers,
        peer,
        app.settings.trust_proxy,
    )));
    // async-graphql has panicked on crafted input before; a panic must cost one request, not
    // the process, and must look like any other internal error.
    let response = match AssertUnwindSafe(state.schema.execute_batch(batch))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a GraphQL request panicked");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Error::internal(anyhow::anyhow!("panic while executing a request")),
            );
        }
    };
    GraphQLResponse::from(with_error_codes(response)).into_response()
}

/// async-graphql's own refusals (syntax, validation, depth and complexity limits) carry no
/// code; every error a client sees has one. Their messages can quote the whole query back, so
/// they are cut short too.
fn with_error_codes(mut response: BatchResponse) -> BatchResponse {
    const MAX_MESSAGE_CHARS: usize = 300;
    let responses = match &mut response {
        BatchResponse::Single(single) => std::slice::from_mut(single),
        BatchResponse::Batch(many) => many.as_mut_slice(),
    };
    for single in responses {
        for error in &mut single.errors {
            let has_code = error
                .extensions
                .as_ref()
                .is_some_and(|ext| ext.get("code").is_some());
            if !has_code {
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "BAD_USER_INPUT");
            }
            if error.message.chars().count() > MAX_MESSAGE_CHARS {
                error.message = error
                    .message
                    .chars()
                    .take(MAX_MESSAGE_CHARS)
                    .collect::<String>()
                    + "…";
            }
        }
    }
    response
}

fn parse_error_response(error: ParseRequestError, app: &AppState) -> axum::response::Response {
    let cut = body_cut(&error);
    let error = match error {
        _ if cut == Some(std::io::ErrorKind::TimedOut) => {
            Error::bad_input("the request body arrived too slowly; send it again")
        }
        ParseRequestError::PayloadTooLarge => Error::FileTooLarge {
            max_bytes: app.settings.max_file_bytes,
        },
        ParseRequestError::Io(ref io) if io.kind() == std::io::ErrorKind::Other => {
            // The body limit layer (or a dropped connection) cut the stream.
            Error::bad_input(format!("the request body could not be read: {io}"))
        }
        ParseRequestError::UnsupportedBatch => {
            Error::bad_input("batched requests are not supported here")
        }
        other => Error::bad_input(format!("malformed GraphQL request: {other}")),
    };
    error_response(error.status(), error)
}

/// A request body gets [`BODY_GRACE`] plus one second for every [`BODY_MIN_RATE`] bytes it has
/// delivered (Apache mod_reqtimeout's rule), and may never pause longer than [`BODY_IDLE`]: a
/// slow-loris client trickling bytes to hold a connection and an upload slot is cut off, while
/// a slow but real upload (1 KiB/s and up) is not.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
pub const BODY_MIN_RATE: u64 = 1024;
pub const BODY_IDLE: Duration = Duration::from_secs(30);

fn paced(body: Body) -> impl Stream<Item = std::io::Result<bytes::Bytes>> {
    let started = tokio::time::Instant::now();
    let state = Some((body.into_data_stream(), 0u64));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut stream, received) = state?;
        let earned = Duration::from_millis(received.saturating_mul(1000) / BODY_MIN_RATE);
        let deadline = (started + BODY_GRACE + earned).min(tokio::time::Instant::now() + BODY_IDLE);
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(bytes))) => {
                let received = received + bytes.len() as u64;
                Some((Ok(bytes), Some((stream, received))))
            }
            Ok(Some(Err(error))) => Some((Err(std::io::Error::other(error)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body arrived too slowly",
                )),
                None,
            )),
        }
    })
}

/// Why [`paced`] cut the body off (`TimedOut`), however deep the parser wrapped the error.
fn body_cut(error: &ParseRequestError) -> Option<std::io::ErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = match error {
        ParseRequestError::Io(io) => Some(io),
        ParseRequestError::InvalidMultipart(inner) => Some(inner),
        _ => None,
    };
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Some(io.kind());
        }
        next = error.source();
    }
    None
}

/// Refuses batches over the cap and requests that smuggle the upload marker.
fn check_batch(batch: &BatchRequest) -> Result<(), Error> {
    let requests = match batch {
        BatchRequest::Single(request) => std::slice::from_ref(request),
        BatchRequest::Batch(requests) => requests.as_slice(),
    };
    if requests.is_empty() {
        return Err(Error::bad_input("an empty batch"));
    }
    if requests.len() > MAX_BATCH {
        return Err(Error::bad_input(format!(
            "at most {MAX_BATCH} operations per batch"
        )));
    }
    for request in requests {
        if request.query.contains(FILE_MARKER.trim_end_matches(':')) {
            return Err(Error::bad_input(
                "files travel as multipart parts, not in the query text",
            ));
        }
        if !request
            .variables
            .values()
            .all(|value| markers_are_valid(value, request.uploads.len()))
        {
            return Err(Error::bad_input(
                "a variable names a file part that was not sent",
            ));
        }
    }
    Ok(())
}

/// Every upload marker in the variables must point at an upload of this request.
fn markers_are_valid(value: &Value, uploads: usize) -> bool {
    match value {
        Value::String(text) => match text.strip_prefix(FILE_MARKER) {
            Some(index) => index.parse::<usize>().is_ok_and(|index| index < uploads),
            None => !text.starts_with("#__graphql_file__"),
        },
        Value::List(items) => items.iter().all(|item| markers_are_valid(item, uploads)),
        Value::Object(fields) => fields.values().all(|item| markers_are_valid(item, uploads)),
        _ => true,
    }
}
