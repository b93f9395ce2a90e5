//! Transcript downloads, beside the file routes and guarded the same way: the chat's visitor
//! token or an admin JWT in `Authorization`, else 404 (ids cannot be probed).
//!
//! - `GET /api/chat/transcripts/{chat id}`: a self-contained HTML page for the visitor or an
//!   admin. Every text is escaped; the page has no script, and is served with a sandboxing CSP
//!   (repeated in a `<meta>` for the saved copy). Attachments are listed with their sizes and
//!   signed links (which expire like every file link).
//! - `GET /api/chat/transcripts/{chat id}/json`: the same as JSON, for admins only.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::Error;
use crate::notify::mail::escape_html as escape;
use crate::service::transcript::{self, Transcript};
use crate::state::AppState;
use entity::chat::ChatStatus;
use entity::chat_message::SenderType;

/// The served page may style itself and nothing else; `sandbox` also gives it an opaque origin.
const CSP: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'";
/// The same in the saved file (a `<meta>` CSP cannot carry `sandbox`).
const META_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'";

pub async fn html(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (transcript, _) = match load(&app, &id, &headers, false).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = render_html(&app, &transcript);
    let mut response = (StatusCode::OK, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "inline; filename=\"chat-{}.html\"",
        transcript.chat.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    private(headers);
    response
}

pub async fn json(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (transcript, _) = match load(&app, &id, &headers, true).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let chat = &transcript.chat;
    let messages: Vec<_> = transcript
        .messages
        .iter()
        .map(|(message, attachments)| {
            json!({
                "id": message.id,
                "sender": sender_name(message.sender_type),
                "senderLabel": message.sender_label,
                "body": message.message,
                "createdAt": timestamp(message.created_at),
                "attachments": attachments.iter().map(|attachment| json!({
                    "id": attachment.id,
                    "name": attachment.original_name,
                    "mimeType": attachment.mime_type,
                    "sizeBytes": attachment.size_bytes,
                    "purged": attachment.purged_at.is_some(),
                    "url": attachment.purged_at.is_none().then(|| app.file_url(attachment.id, false)),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = json!({
        "chat": {
            "id": chat.id,
            "status": status_name(chat.status),
            "visitor": {
                "name": chat.visitor_name,
                "email": chat.visitor_email,
                "phone": chat.visitor_phone,
            },
            "sourcePage": chat.source_page,
            "createdAt": timestamp(chat.created_at),
            "lastMessageAt": chat.last_message_at.map(timestamp),
        },
        "messages": messages,
        "truncated": transcript.truncated,
        "exportedAt": timestamp(Utc::now()),
    });
    let mut response = axum::Json(body).into_response();
    private(response.headers_mut());
    response
}

fn private(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The transcript, when the credential may read it (`admin_only`: only an admin). Every refusal
/// is the same 404; an outage is its own answer.
async fn load(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    admin_only: bool,
) -> Result<(Transcript, Viewer), Response> {
    let Ok(chat_id) = Uuid::parse_str(id) else {
        return Err(not_found());
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match Viewer::from_authorization(&app.credentials(), authorization).await {
        Ok(viewer) => viewer,
        Err(error) => return Err(error.into_response()),
    };
    if viewer.require_chat(chat_id).is_err() || (admin_only && viewer.require_admin().is_err()) {
        return Err(not_found());
    }
    match transcript::load(&app.db, &viewer, chat_id).await {
        Ok(transcript) => Ok((transcript, viewer)),
        Err(Error::NotFound(_) | Error::Forbidden | Error::Unauthenticated) => Err(not_found()),
        Err(error) => Err(error.into_response()),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sender_name(sender: SenderType) -> &'static str {
    match sender {
        SenderType::Visitor => "VISITOR",
        SenderType::Admin => "ADMIN",
    }
}

fn status_name(status: ChatStatus) -> &'static str {
    match status {
        ChatStatus::Open => "OPEN",
        ChatStatus::Pending => "PENDING",
        ChatStatus::Closed => "CLOSED",
    }
}

fn human_size(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    if bytes < 1024.0 {
        format!("{bytes} B")
    } else if bytes < 1024.0 * 1024.0 {
        format!("{:.1} KB", bytes / 1024.0)
    } else {
        format!("{:.1} MB", bytes / (1024.0 * 1024.0))
    }
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#1f2328}\
h1{font-size:1.4em;margin-bottom:.2em}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;color:#57606a}\
dd{margin:0}ol{list-style:none;padding:0}li{margin:1em 0;padding:.6em .9em;border-radius:10px;background:#f6f8fa}\
li.admin{background:#ddf4ff}.who{font-weight:600}.when{color:#57606a;font-size:.85em;margin-left:.5em}\
.body{white-space:pre-wrap;overflow-wrap:anywhere;margin:.3em 0}ul.files{margin:.3em 0;padding-left:1.2em}\
.note{color:#57606a;font-size:.85em}";

fn render_html(app: &AppState, transcript: &Transcript) -> String {
    use std::fmt::Write as _;
    let chat = &transcript.chat;
    let mut page = String::with_capacity(4096 + transcript.messages.len() * 256);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{META_CSP}\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Chat transcript {id}</title><style>{STYLE}</style></head><body>\
         <h1>Chat transcript</h1><dl>",
        id = chat.id
    );
    let mut detail = |label: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            let _ = write!(page, "<dt>{label}</dt><dd>{}</dd>", escape(value));
        }
    };
    detail("Chat", Some(&chat.id.to_string()));
    detail("Visitor", chat.visitor_name.as_deref());
    detail("Email", chat.visitor_email.as_deref());
    detail("Phone", chat.visitor_phone.as_deref());
    detail("Started on", chat.source_page.as_deref());
    detail("Started", Some(&timestamp(chat.created_at)));
    detail("Status", Some(status_name(chat.status)));
    detail("Exported", Some(&timestamp(Utc::now())));
    page.push_str("</dl><ol>");
    for (message, attachments) in &transcript.messages {
        let (class, who) = match message.sender_type {
            SenderType::Visitor => (
                "visitor",
                chat.visitor_name.as_deref().unwrap_or("Visitor").to_owned(),
            ),
            SenderType::Admin => (
                "admin",
                message
                    .sender_label
                    .clone()
                    .unwrap_or_else(|| "Support".to_owned()),
            ),
        };
        let _ = write!(
            page,
            "<li class=\"{class}\"><span class=\"who\">{}</span><time class=\"when\" datetime=\"{at}\">{at}</time>",
            escape(&who),
            at = timestamp(message.created_at),
        );
        if let Some(body) = &message.message {
            let _ = write!(page, "<div class=\"body\">{}</div>", escape(body));
        }
        if !attachments.is_empty() {
            page.push_str("<ul class=\"files\">");
            for attachment in attachments {
                let name = escape(&attachment.original_name);
                let size = human_size(attachment.size_bytes);
                if attachment.purged_at.is_some() {
                    let _ = write!(page, "<li>{name} ({size}), file expired</li>");
                } else {
                    let url = escape(&app.file_url(attachment.id, false));
                    let _ = write!(
                        page,
                        "<li><a href=\"{url}\" rel=\"noopener noreferrer\" download=\"{name}\">{name}</a> ({size})</li>"
                    );
                }
            }
            page.push_str("</ul>");
        }
        page.push_str("</li>");
    }
    page.push_str("</ol>");
    if transcript.truncated {
        let _ = write!(
            page,
            "<p class=\"note\">Only the first {} messages are included.</p>",
            transcript::MAX_MESSAGES
        );
    }
    page.push_str(
        "<p class=\"note\">File links are signed and expire after a few minutes; \
         open the chat for fresh ones.</p></body></html>\n",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn sizes_read_like_the_clients() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 KB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MB");
    }
}
