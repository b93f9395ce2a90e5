//! The HTTP end of the API, as GraphQL-over-HTTP describes it: POST (JSON, or multipart with
//! files) and GET (queries only), the response media type the client accepts
//! (`application/json` or `application/graphql-response+json`), Apollo's automatic persisted
//! queries, our own guards (body sizes, the file-marker guard, batch cap), the viewer per
//! request, and the query explorer for browsers. The socket end is `websocket.rs`.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{BaseType, DocumentOperations, OperationType, Type};
use async_graphql::{
    BatchRequest, ErrorExtensions, Request, Response, ServerError, Value, Variables,
};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use futures_util::{FutureExt, Stream, StreamExt};

use super::multipart;
use super::parsed_queries::{ParsedQueries, PersistedQueries};
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

/// A JSON (or `application/graphql`) body: the largest legitimate one is a batch of the
/// clients' documents or the introspection query, a few KiB. The multipart limit (files ×
/// size) applies to multipart bodies only.
pub const MAX_JSON_BODY_BYTES: usize = 256 * 1024;

/// How long a GET answer without a credential may be cached (by the browser or a CDN).
const PUBLIC_MAX_AGE_SECONDS: u32 = 10;

#[derive(Clone)]
pub struct GraphqlState {
    pub app: AppState,
    pub schema: AppSchema,
    pub parsed_queries: Arc<ParsedQueries>,
    pub persisted_queries: Arc<PersistedQueries>,
}

impl GraphqlState {
    pub fn new(app: AppState, schema: AppSchema) -> Self {
        Self {
            app,
            schema,
            parsed_queries: Default::default(),
            persisted_queries: Default::default(),
        }
    }
}

/// The response media type, from the request's `Accept` (GraphQL over HTTP §6.4.1): the first
/// of ours it lists; `application/json` when it lists neither, or `*/*`, or nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Media {
    Json,
    GraphqlResponse,
}

impl Media {
    fn of(headers: &HeaderMap) -> Self {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for item in accept {
            let mut parts = item.split(';');
            let kind = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|param| {
                let param = param.replace(' ', "");
                param == "q=0" || param == "q=0.0" || param == "q=0.00" || param == "q=0.000"
            });
            if refused {
                continue;
            }
            match kind.as_str() {
                "application/graphql-response+json" => return Self::GraphqlResponse,
                "application/json" | "application/*" | "*/*" => return Self::Json,
                _ => {}
            }
        }
        Self::Json
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// A refusal below GraphQL execution: an HTTP status and one coded error.
struct Refusal {
    status: StatusCode,
    error: Error,
}

impl Refusal {
    fn new(status: StatusCode, error: Error) -> Self {
        Self { status, error }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Error::bad_input(message))
    }

    fn from_error(error: Error) -> Self {
        Self::new(error.status(), error)
    }

    fn into_response(self, media: Media) -> axum::response::Response {
        let mut server_error = ServerError::new(self.error.message(), None);
        server_error.extensions = self.error.extend().extensions;
        let body = serde_json::json!({ "errors": [server_error] });
        let mut response = json_response(media, self.status, &body);
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read, so this connection cannot carry another
            // request: say so, or a client would send its next request into a closing socket.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn json_response(
    media: Media,
    status: StatusCode,
    body: &serde_json::Value,
) -> axum::response::Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
}

/// One operation as the client sent it, its shape checked (GraphQL over HTTP §5.1).
#[derive(Default, Debug)]
struct Incoming {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Incoming {
    fn from_json(value: serde_json::Value) -> Result<Self, Refusal> {
        use serde_json::Value as Json;
        let Json::Object(mut object) = value else {
            return Err(Refusal::bad(
                "a GraphQL request is a JSON object with a query",
            ));
        };
        let mut text = |name: &str| match object.remove(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) => Ok(Some(text)),
            Some(_) => Err(Refusal::bad(format!("{name} must be a string"))),
        };
        let query = text("query")?;
        let operation_name = text("operationName")?;
        let mut map = |name: &str| match object.remove(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(map)) => Ok(Some(map)),
            Some(_) => Err(Refusal::bad(format!("{name} must be a JSON object"))),
        };
        let variables = map("variables")?;
        let extensions = map("extensions")?;
        Ok(Self {
            query,
            operation_name,
            variables,
            extensions,
        })
    }

    fn into_request(
        self,
        persisted: &PersistedQueries,
    ) -> Result<Result<Request, ServerError>, Refusal> {
        let mut request = Request::new(self.query.unwrap_or_default());
        request.operation_name = self.operation_name;
        if let Some(variables) = self.variables {
            request.variables = Variables::from_json(serde_json::Value::Object(variables));
        }
        for (name, value) in self.extensions.unwrap_or_default() {
            let value = Value::from_json(value)
                .map_err(|_| Refusal::bad(format!("extensions.{name} is not a GraphQL value")))?;
            request.extensions.insert(name, value);
        }
        with_persisted_query(request, persisted)
    }
}

/// Apollo's automatic persisted queries: the request's text taken from the store when the
/// client sent only its hash (`extensions.persistedQuery.sha256Hash`), or kept there when it
/// sent both. `Err(ServerError)` is a GraphQL error for this operation: on
/// `PersistedQueryNotFound` the client sends the text next.
fn with_persisted_query(
    mut request: Request,
    persisted: &PersistedQueries,
) -> Result<Result<Request, ServerError>, Refusal> {
    let has_query = !request.query.trim().is_empty();
    let Some(persisted_query) = request.extensions.get("persistedQuery") else {
        return if has_query {
            Ok(Ok(request))
        } else {
            Err(Refusal::bad("the request has no query"))
        };
    };
    let field = |name: &str| match persisted_query {
        Value::Object(fields) => fields.get(name).cloned(),
        _ => None,
    };
    let hash = match (field("version"), field("sha256Hash")) {
        (Some(Value::Number(version)), Some(Value::String(hash))) => {
            if version.as_i64() != Some(1) {
                return Ok(Err(coded(
                    "PersistedQueryNotSupported",
                    "PERSISTED_QUERY_NOT_SUPPORTED",
                )));
            }
            hash.to_ascii_lowercase()
        }
        _ => {
            return Err(Refusal::bad(
                "extensions.persistedQuery needs version 1 and a sha256Hash",
            ));
        }
    };
    if has_query {
        if PersistedQueries::hash(&request.query) != hash {
            return Err(Refusal::bad("provided sha does not match query"));
        }
        persisted.insert(hash, &request.query);
        return Ok(Ok(request));
    }
    match persisted.get(&hash) {
        Some(query) => {
            request.query = query;
            Ok(Ok(request))
        }
        None => Ok(Err(coded(
            "PersistedQueryNotFound",
            "PERSISTED_QUERY_NOT_FOUND",
        ))),
    }
}

fn coded(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// The operations of one HTTP request; `batch` when the client sent a JSON array.
struct Operations {
    batch: bool,
    items: Vec<Result<Request, ServerError>>,
}

impl Operations {
    fn from_json(value: serde_json::Value, persisted: &PersistedQueries) -> Result<Self, Refusal> {
        let (batch, values) = match value {
            serde_json::Value::Array(values) => (true, values),
            single => (false, vec![single]),
        };
        if values.is_empty() {
            return Err(Refusal::bad("an empty batch"));
        }
        if values.len() > MAX_BATCH {
            return Err(Refusal::bad(format!(
                "at most {MAX_BATCH} operations per batch"
            )));
        }
        let items = values
            .into_iter()
            .map(|value| Incoming::from_json(value)?.into_request(persisted))
            .collect::<Result<_, _>>()?;
        Ok(Self { batch, items })
    }

    fn from_batch(batch: BatchRequest, persisted: &PersistedQueries) -> Result<Self, Refusal> {
        let (batch, requests) = match batch {
            BatchRequest::Single(request) => (false, vec![request]),
            BatchRequest::Batch(requests) => (true, requests),
        };
        if requests.is_empty() {
            return Err(Refusal::bad("an empty batch"));
        }
        if requests.len() > MAX_BATCH {
            return Err(Refusal::bad(format!(
                "at most {MAX_BATCH} operations per batch"
            )));
        }
        let items = requests
            .into_iter()
            .map(|request| with_persisted_query(request, persisted))
            .collect::<Result<_, _>>()?;
        Ok(Self { batch, items })
    }
}

/// GET /graphql: the query explorer for a browser (`Accept: text/html`), otherwise a query
/// sent in the URL (GraphQL over HTTP §5.1.1; urql's default, Apollo's hashed queries).
pub async fn graphql_get(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> axum::response::Response {
    let media = Media::of(&headers);
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/html"));
    if wants_html {
        return explorer();
    }
    let operations = match url_operations(&uri, &state.persisted_queries) {
        Ok(operations) => operations,
        Err(refusal) => return refusal.into_response(media),
    };
    let viewer = match viewer(&state.app, &headers).await {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.into_response(media),
    };
    let via = Via::Get {
        public: headers.get(header::AUTHORIZATION).is_none(),
    };
    let mut response = execute(&state, &headers, peer, viewer, media, via, operations).await;
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization"),
    );
    if !response_headers.contains_key(header::CACHE_CONTROL) {
        response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// How the operations came: by POST, or by GET (with or without a credential).
#[derive(Clone, Copy)]
enum Via {
    Post,
    Get { public: bool },
}

fn url_operations(uri: &Uri, persisted: &PersistedQueries) -> Result<Operations, Refusal> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| Refusal::bad("the query string is not URL-encoded"))?;
    let mut object = serde_json::Map::new();
    for (name, value) in pairs {
        let value = match name.as_str() {
            "query" | "operationName" => serde_json::Value::String(value),
            "variables" | "extensions" => serde_json::from_str(&value)
                .map_err(|_| Refusal::bad(format!("{name} must be URL-encoded JSON")))?,
            _ => continue,
        };
        if object.insert(name.clone(), value).is_some() {
            return Err(Refusal::bad(format!("{name} is given twice")));
        }
    }
    let request =
        Incoming::from_json(serde_json::Value::Object(object))?.into_request(persisted)?;
    Ok(Operations {
        batch: false,
        items: vec![request],
    })
}

pub async fn graphql_post(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let media = Media::of(&headers);
    // Refused before the body is read: read it anyway, or the client may not see the answer.
    let viewer = match post_viewer(&state.app, &headers).await {
        Ok(viewer) => viewer,
        Err(refusal) => return after_draining(body, refusal.into_response(media)).await,
    };
    match post_operations(&state, &headers, body).await {
        Ok(operations) => {
            execute(&state, &headers, peer, viewer, media, Via::Post, operations).await
        }
        Err(refusal) => refusal.into_response(media),
    }
}

/// Who sends a POST, once it has passed the CSRF rule.
async fn post_viewer(app: &AppState, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if crate::web::violates_csrf_rule(content_type, headers) {
        return Err(Refusal::bad(
            "this request looks like a cross-site form post: send Content-Type: application/json, \
             or an Apollo-Require-Preflight header with multipart uploads",
        ));
    }
    viewer(app, headers).await
}

/// The operations of a POST body: multipart (with files), JSON, or `application/graphql`.
async fn post_operations(
    state: &GraphqlState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Operations, Refusal> {
    let settings = &state.app.settings;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence.starts_with("multipart/") {
        let limits = multipart::Limits {
            max_file_bytes: settings.max_file_bytes,
            max_files: settings.max_files,
            max_body_bytes: settings.max_body_bytes() as u64,
        };
        let batch = multipart::receive(paced(body), content_type.unwrap_or_default(), &limits)
            .await
            .map_err(Refusal::from_error)?;
        return Operations::from_batch(batch, &state.persisted_queries);
    }
    let bytes = read_small_body(headers, body).await?;
    let parsed = if essence == "application/graphql" {
        String::from_utf8(bytes.to_vec())
            .map(|query| serde_json::json!({ "query": query }))
            .map_err(|_| Refusal::bad("the query is not UTF-8"))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| Refusal::bad(format!("malformed GraphQL request: {error}")))?
    };
    Operations::from_json(parsed, &state.persisted_queries)
}

async fn viewer(app: &AppState, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Viewer::from_authorization(&app.credentials(), authorization)
        .await
        .map_err(Refusal::from_error)
}

/// Reads a JSON body: at most [`MAX_JSON_BODY_BYTES`], at the pace [`paced`] demands.
async fn read_small_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Error::bad_input(format!(
                "a GraphQL request without files may be at most {} KiB",
                MAX_JSON_BODY_BYTES / 1024
            )),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_JSON_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut stream = std::pin::pin!(paced(body));
    let mut bytes = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            if multipart::too_slow(&error) {
                Refusal::bad(multipart::TOO_SLOW)
            } else {
                Refusal::bad(format!("the request body could not be read: {error}"))
            }
        })?;
        if bytes.len() + chunk.len() > MAX_JSON_BODY_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(Refusal::bad(
            "the request body is empty: send a GraphQL request",
        ));
    }
    Ok(bytes.freeze())
}

/// A refusal sent before the body is read makes clients that are still writing it (Node's
/// fetch, browsers) fail with a broken pipe and never see our answer: read the body (paced,
/// within the route's size limit) and throw it away first, then close the connection.
async fn after_draining(
    body: Body,
    mut response: axum::response::Response,
) -> axum::response::Response {
    let mut stream = std::pin::pin!(paced(body));
    while let Some(Ok(_)) = stream.next().await {}
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Checks, executes and renders the operations of one request.
async fn execute(
    state: &GraphqlState,
    headers: &HeaderMap,
    peer: SocketAddr,
    viewer: Viewer,
    media: Media,
    via: Via,
    mut operations: Operations,
) -> axum::response::Response {
    let app = &state.app;
    for request in operations.items.iter_mut().flatten() {
        let by_get = matches!(via, Via::Get { .. });
        if let Err(refusal) = check_request(request, &state.parsed_queries, by_get) {
            return refusal.into_response(media);
        }
    }
    let address = ClientAddress(client_ip(headers, peer, app.settings.trust_proxy));
    let mut responses = Vec::with_capacity(operations.items.len());
    for item in operations.items {
        let response = match item {
            Err(error) => Response::from_errors(vec![error]),
            Ok(request) => {
                let request = request.data(viewer.clone()).data(address);
                // async-graphql has panicked on crafted input before; a panic must cost one
                // request, not the process, and must look like any other internal error.
                match AssertUnwindSafe(state.schema.execute(request))
                    .catch_unwind()
                    .await
                {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::error!("a GraphQL request panicked");
                        return Refusal::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            Error::internal(anyhow::anyhow!("panic while executing a request")),
                        )
                        .into_response(media);
                    }
                }
            }
        };
        responses.push(with_error_codes(response));
    }
    let mut response = render(media, operations.batch, &responses);
    // Only answers by GET, without errors and without a credential are the same for everyone.
    let has_errors = responses.iter().any(|response| !response.errors.is_empty());
    if let Via::Get { public: true } = via
        && !has_errors
        && let Ok(cache) =
            HeaderValue::from_str(&format!("public, max-age={PUBLIC_MAX_AGE_SECONDS}"))
    {
        response.headers_mut().insert(header::CACHE_CONTROL, cache);
    }
    response
}

/// A request error (GraphQL over HTTP §6.4.2): nothing was executed, so there is no `data`.
/// Errors raised while executing carry a path; those raised before carry none.
fn is_request_error(response: &Response) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

fn render(media: Media, batch: bool, responses: &[Response]) -> axum::response::Response {
    let mut extra_headers = HeaderMap::new();
    let mut status = StatusCode::OK;
    let mut bodies = Vec::with_capacity(responses.len());
    for response in responses {
        let request_error = is_request_error(response);
        if !batch && request_error && media == Media::GraphqlResponse {
            status = StatusCode::BAD_REQUEST;
        }
        for (name, value) in &response.http_headers {
            extra_headers.append(name.clone(), value.clone());
        }
        let mut body = serde_json::to_value(response).unwrap_or_default();
        if request_error && let Some(object) = body.as_object_mut() {
            object.remove("data");
        }
        bodies.push(body);
    }
    let body = if batch {
        serde_json::Value::Array(bodies)
    } else {
        bodies.pop().unwrap_or_default()
    };
    let mut response = json_response(media, status, &body);
    response.headers_mut().extend(extra_headers);
    response
}

/// The checks that need the parsed document: no mutation by GET, and every `Upload`
/// variable filled by a file part, never by a value of the client's.
fn check_request(
    request: &mut Request,
    parsed_queries: &ParsedQueries,
    by_get: bool,
) -> Result<(), Refusal> {
    if request.query.contains(FILE_MARKER.trim_end_matches(':')) {
        return Err(Refusal::bad(
            "files travel as multipart parts, not in the query text",
        ));
    }
    if !request
        .variables
        .values()
        .all(|value| markers_are_valid(value, request.uploads.len()))
    {
        return Err(Refusal::bad(
            "a variable names a file part that was not sent",
        ));
    }
    parsed_queries.attach_request(request);
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    // A text that does not parse is reported by async-graphql, as a GraphQL error.
    let Ok(document) = request.parsed_query() else {
        return Ok(());
    };
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(many) => match &operation_name {
            Some(name) => many.get(name.as_str()).into_iter().collect(),
            None => many.values().collect(),
        },
    };
    for operation in operations {
        if by_get && operation.node.ty != OperationType::Query {
            return Err(Refusal::new(
                // With `Allow: POST`, set where the response is built.
                StatusCode::METHOD_NOT_ALLOWED,
                Error::bad_input("only queries may be sent by GET: send mutations by POST"),
            ));
        }
        for definition in &operation.node.variable_definitions {
            let definition = &definition.node;
            if base_type(&definition.var_type.node) != "Upload" {
                continue;
            }
            let name = definition.name.node.as_str();
            let value = variables.get(name).cloned().unwrap_or(Value::Null);
            if !only_uploads(&value) {
                return Err(Refusal::bad(format!(
                    "${name} is an Upload: send the file as a multipart part named in the map"
                )));
            }
        }
    }
    Ok(())
}

fn base_type(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => base_type(inner),
    }
}

/// Null, an upload marker, or a list of those (markers are checked by `markers_are_valid`).
fn only_uploads(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.starts_with(FILE_MARKER),
        Value::List(items) => items.iter().all(only_uploads),
        _ => false,
    }
}

/// The query explorer: a small page of our own (`clients/explorer/`), every byte served from
/// here, under a CSP that allows nothing else.
fn explorer() -> axum::response::Response {
    const PAGE: &str = include_str!("../../../clients/explorer/index.html");
    let mut response = axum::response::Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EXPLORER_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

pub const EXPLORER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// async-graphql's own refusals (syntax, validation, depth and complexity limits) carry no
/// code; every error a client sees has one. Their messages can quote the whole query back, so
/// they are cut short too.
fn with_error_codes(mut single: Response) -> Response {
    const MAX_MESSAGE_CHARS: usize = 300;
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
    single
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
