//! The unsubscribe link of visitor emails. GET shows a button (mail scanners fetch links, and
//! must not unsubscribe anyone); POST, from the button or a mail client's one-click
//! `List-Unsubscribe`, does it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::mail::escape_html;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct UnsubscribeLink {
    chat: Option<String>,
    sig: Option<String>,
}

fn checked(state: &AppState, link: &UnsubscribeLink) -> Option<Uuid> {
    let chat_id = Uuid::parse_str(link.chat.as_deref()?).ok()?;
    state
        .notify
        .links
        .verify(chat_id, link.sig.as_deref()?)
        .then_some(chat_id)
}

fn page(status: StatusCode, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Email notifications</title></head>\
             <body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\">{body}</body></html>"
        )),
    )
        .into_response()
}

pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Query(link): Query<UnsubscribeLink>,
) -> Response {
    if checked(&state, &link).is_none() {
        return page(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>");
    }
    let action = format!(
        "/api/notify/unsubscribe?chat={}&sig={}",
        link.chat.as_deref().unwrap_or(""),
        link.sig.as_deref().unwrap_or("")
    );
    page(
        StatusCode::OK,
        &format!(
            "<p>Stop emails about this conversation?</p><form method=\"post\" action=\"{}\"><button type=\"submit\">Unsubscribe</button></form>",
            escape_html(&action)
        ),
    )
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    Query(link): Query<UnsubscribeLink>,
) -> Response {
    let Some(chat_id) = checked(&state, &link) else {
        return page(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>");
    };
    match super::jobs::unsubscribe(&state.db, chat_id).await {
        Ok(()) => page(
            StatusCode::OK,
            "<p>Done: you will get no more emails about this conversation.</p>",
        ),
        Err(error) => {
            tracing::error!(%error, "cannot record an unsubscribe");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "<p>Something went wrong; please try again later.</p>",
            )
        }
    }
}
