//! The plain-HTTP edge: static clients, health, metrics, CORS, the CSRF rule, client addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::ConnectionTrait;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{AllowedOrigins, Settings};
use crate::state::AppState;

/// The client's address: the socket peer, or with `CHATDESK_TRUST_PROXY` the last
/// `X-Forwarded-For` entry, the one our own proxy appended (earlier entries are the client's
/// word and can be forged). HAProxy appends its entry as a header line of its own, after any
/// the client sent, so the last entry is in the last line.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(forwarded) = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next()
        && let Ok(address) = last.trim().parse()
    {
        return address;
    }
    peer.ip()
}

/// Apollo's CSRF rule: a "simple" request (one a browser sends cross-site without a preflight:
/// no content type, form encodings, or text/plain) must carry a header that forces a preflight.
pub fn violates_csrf_rule(content_type: Option<&str>, headers: &HeaderMap) -> bool {
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let simple = match essence.as_deref() {
        None => true,
        Some(kind) => [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
        ]
        .contains(&kind),
    };
    let has_preflight_header = ["apollo-require-preflight", "x-apollo-operation-name"]
        .iter()
        .any(|name| headers.get(*name).is_some_and(|value| !value.is_empty()));
    simple && !has_preflight_header
}

/// Our own origin is always allowed; others per `CHATDESK_ALLOWED_ORIGINS`.
pub fn origin_allowed(settings: &Settings, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    origin == settings.public_url || settings.allowed_origins.allows(origin)
}

pub fn cors(settings: &Settings) -> CorsLayer {
    let allow_origin = match &settings.allowed_origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(_) => {
            let settings = settings.clone();
            AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin
                    .to_str()
                    .is_ok_and(|origin| origin_allowed(&settings, origin))
            })
        }
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::RANGE,
            "apollo-require-preflight"
                .parse()
                .unwrap_or(header::CONTENT_TYPE),
            "x-apollo-operation-name"
                .parse()
                .unwrap_or(header::CONTENT_TYPE),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and the storage accepts a write, and (when uploads are
/// scanned) clamd answers `PING`. A clamd that fails open reports but does not make us unready:
/// uploads still go through.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.db.execute_unprepared("SELECT 1").await.map(|_| ());
    let storage = state.storage_ready().await;
    let mut body = serde_json::json!({
        "database": if database.is_ok() { "ok" } else { "unavailable" },
        "storage": if storage { "ok" } else { "unavailable" },
    });
    let mut ready = database.is_ok() && storage;
    if let Some(scanner) = crate::files::scan::Scanner::from_settings(&state.settings) {
        let fail_open = scanner.fail_open();
        let answered = tokio::task::spawn_blocking(move || scanner.ping())
            .await
            .is_ok_and(|ping| ping.is_ok());
        body["clamd"] = (if answered { "ok" } else { "unavailable" }).into();
        ready &= answered || fail_open;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[derive(Clone)]
pub struct MetricsState {
    pub handle: PrometheusHandle,
    /// `CHATDESK_METRICS_TOKEN`: when set, scrapers must present it.
    pub token: Option<crate::config::Secret>,
}

pub async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a metrics token is required",
            )
                .into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.handle.render(),
    )
        .into_response()
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The admin page's policy: everything from this server only, sockets to its own public
/// origin only.
pub fn admin_page_csp(settings: &Settings) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
         connect-src 'self' {}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        socket_origin(&settings.public_url)
    )
}

/// The demo site's policy: the same-origin widget and its socket; the widget's styles are set
/// through the CSSOM, which `style-src` does not govern.
pub fn demo_page_csp(settings: &Settings) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
         connect-src 'self' {}; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
        socket_origin(&settings.public_url)
    )
}

/// `wss://host` for `https://host`, `ws://host` for `http://host`.
fn socket_origin(public_url: &str) -> String {
    match public_url.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", public_url.trim_start_matches("http://")),
    }
}

/// Counts requests and their latency by route and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_requests_need_a_preflight_header() {
        let none = HeaderMap::new();
        let mut with = HeaderMap::new();
        with.insert("apollo-require-preflight", HeaderValue::from_static("true"));
        assert!(violates_csrf_rule(None, &none));
        assert!(violates_csrf_rule(
            Some("multipart/form-data; boundary=x"),
            &none
        ));
        assert!(violates_csrf_rule(Some("text/plain"), &none));
        assert!(!violates_csrf_rule(
            Some("multipart/form-data; boundary=x"),
            &with
        ));
        assert!(!violates_csrf_rule(Some("application/json"), &none));
    }

    #[test]
    fn forwarded_addresses_are_trusted_only_when_configured() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        assert_eq!(client_ip(&headers, peer, false).to_string(), "10.0.0.9");
        assert_eq!(client_ip(&headers, peer, true).to_string(), "203.0.113.7");
        // HAProxy's `option forwardfor` adds a second header line after the client's own.
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.4"));
        assert_eq!(client_ip(&headers, peer, true).to_string(), "198.51.100.4");
    }
}
