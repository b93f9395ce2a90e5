//! The email jobs: deciding who hears about a chat (`admin_notify`, `visitor_notify`), and
//! sending one rendered email (`email`).
//!
//! A notification job is written with the message that starts a burst (the dedupe key keeps one
//! waiting per chat and side) and runs after the delay. It then looks at what is still unread:
//! nothing (someone read it in time) ends it; otherwise it becomes one `email` job per
//! recipient, written with its `done`, so one recipient's refusing server retries only that
//! email.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::mail::{Email, Mailer, escape_html};
use super::outbox::{Done, Handler, NewJob};
use super::{Links, resume};
use entity::admin_notification_pref::{self, EmailPreference};
use entity::chat_message::SenderType;
use entity::{admin, chat, chat_attachment, chat_email_optout, chat_message, outbox_job};

pub const EMAIL: &str = "email";
pub const ADMIN_NOTIFY: &str = "admin_notify";
pub const VISITOR_NOTIFY: &str = "visitor_notify";

/// The payload of a notification job: the first message of the burst.
#[derive(Debug, Serialize, Deserialize)]
pub struct Burst {
    pub first_at: DateTime<Utc>,
}

/// The longest excerpt of a message an email quotes.
const EXCERPT_CHARS: usize = 1000;
/// At most this many messages of a burst are quoted.
const MAX_MESSAGES: u64 = 20;

pub struct Notifier {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    pub links: Links,
}

impl Handler for Notifier {
    fn kinds(&self) -> &[&'static str] {
        &[EMAIL, ADMIN_NOTIFY, VISITOR_NOTIFY]
    }

    async fn run(&self, job: &outbox_job::Model) -> anyhow::Result<Done> {
        match job.kind.as_str() {
            EMAIL => {
                let email: Email = serde_json::from_value(job.payload.clone())?;
                self.mailer.send(&email).await?;
                Ok(Done::default())
            }
            ADMIN_NOTIFY => self.admin_notify(job).await,
            VISITOR_NOTIFY => self.visitor_notify(job).await,
            other => anyhow::bail!("no handler for job kind '{other}'"),
        }
    }
}

struct Unread {
    chat: chat::Model,
    messages: Vec<chat_message::Model>,
    files: HashMap<Uuid, Vec<String>>,
    /// Whether the burst starts the chat (nothing was written before it).
    new_chat: bool,
}

impl Notifier {
    /// The messages of the burst from `from` that the other side has still not read.
    async fn unread(
        &self,
        job: &outbox_job::Model,
        from: SenderType,
    ) -> anyhow::Result<Option<Unread>> {
        let burst: Burst = serde_json::from_value(job.payload.clone())?;
        let Some(chat_id) = job.chat_id else {
            anyhow::bail!("a notification job without a chat");
        };
        // The chat may be gone (erased): nothing to say then.
        let Some(chat) = chat::Entity::find_by_id(chat_id).one(&self.db).await? else {
            return Ok(None);
        };
        let read_mark = match from {
            SenderType::Visitor => chat.admin_last_read_at,
            SenderType::Admin => chat.visitor_last_read_at,
        };
        let mut query = chat_message::Entity::find()
            .filter(chat_message::Column::ChatId.eq(chat_id))
            .filter(chat_message::Column::SenderType.eq(from))
            .filter(chat_message::Column::CreatedAt.gte(burst.first_at));
        if let Some(read) = read_mark {
            query = query.filter(chat_message::Column::CreatedAt.gt(read));
        }
        let messages = query
            .order_by_asc(chat_message::Column::CreatedAt)
            .order_by_asc(chat_message::Column::Id)
            .limit(MAX_MESSAGES)
            .all(&self.db)
            .await?;
        if messages.is_empty() {
            return Ok(None);
        }
        let ids: Vec<Uuid> = messages.iter().map(|message| message.id).collect();
        let mut files: HashMap<Uuid, Vec<String>> = HashMap::new();
        for file in chat_attachment::Entity::find()
            .filter(chat_attachment::Column::ChatMessageId.is_in(ids))
            .order_by_asc(chat_attachment::Column::CreatedAt)
            .all(&self.db)
            .await?
        {
            files
                .entry(file.chat_message_id)
                .or_default()
                .push(file.original_name);
        }
        let earlier = chat_message::Entity::find()
            .select_only()
            .column(chat_message::Column::Id)
            .filter(chat_message::Column::ChatId.eq(chat_id))
            .filter(chat_message::Column::CreatedAt.lt(burst.first_at))
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await?;
        Ok(Some(Unread {
            chat,
            messages,
            files,
            new_chat: earlier.is_none(),
        }))
    }

    async fn admin_notify(&self, job: &outbox_job::Model) -> anyhow::Result<Done> {
        let Some(unread) = self.unread(job, SenderType::Visitor).await? else {
            return Ok(Done::default());
        };
        let prefs: HashMap<Uuid, EmailPreference> = admin_notification_pref::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|pref| (pref.admin_id, pref.email))
            .collect();
        let admins = admin::Entity::find()
            .order_by_asc(admin::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let chat = &unread.chat;
        let who = visitor_label(chat);
        let link = self.links.admin_chat(chat.id);
        let subject = if unread.new_chat {
            format!("New chat from {}", excerpt(&who, 100))
        } else {
            format!("New message from {}", excerpt(&who, 100))
        };
        let mut text = format!("{who} wrote on {}:\n\n", page_label(chat));
        let mut html = format!(
            "<p><strong>{}</strong> wrote on {}:</p>\n",
            escape_html(&who),
            escape_html(&page_label(chat))
        );
        quote(&unread, &mut text, &mut html);
        text.push_str(&format!("\nAnswer in Chatdesk: {link}\n"));
        html.push_str(&format!(
            "<p><a href=\"{0}\">Answer in Chatdesk</a></p>\n",
            escape_html(&link)
        ));
        let preferences = self.links.admin_preferences();
        text.push_str(&format!(
            "\nYou get these emails for visitor messages nobody has read. Change it: {preferences}\n"
        ));
        html.push_str(&format!(
            "<p style=\"color:#666;font-size:12px\">You get these emails for visitor messages nobody has read. <a href=\"{}\">Change it</a>.</p>\n",
            escape_html(&preferences)
        ));

        let follow_ups = admins
            .into_iter()
            .filter(|admin| match prefs.get(&admin.id).copied() {
                None | Some(EmailPreference::All) => true,
                Some(EmailPreference::NewChats) => unread.new_chat,
                Some(EmailPreference::Never) => false,
            })
            .map(|admin| {
                let email = Email {
                    to: admin.email,
                    to_name: admin.name,
                    subject: subject.clone(),
                    text: text.clone(),
                    html: html_document(&html),
                    message_id: format!("{}.{}@{}", job.id, admin.id, self.mailer.domain()),
                    thread_id: Some(thread_id(chat.id, self.mailer.domain())),
                    // The admin page's settings: a link to follow, not a one-click POST.
                    unsubscribe: Some(preferences.clone()),
                    one_click: false,
                };
                email_job(email, chat.id)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Done {
            follow_ups,
            ..Done::default()
        })
    }

    async fn visitor_notify(&self, job: &outbox_job::Model) -> anyhow::Result<Done> {
        let Some(unread) = self.unread(job, SenderType::Admin).await? else {
            return Ok(Done::default());
        };
        let chat = &unread.chat;
        let Some(to) = chat.visitor_email.clone() else {
            return Ok(Done::default());
        };
        if chat_email_optout::Entity::find_by_id(chat.id)
            .one(&self.db)
            .await?
            .is_some()
        {
            return Ok(Done::default());
        }
        let code = resume::create_code(&self.db, chat.id).await?;
        let resume = self.links.resume(chat.source_page.as_deref(), &code);
        let unsubscribe = self.links.unsubscribe(chat.id);
        let from = unread
            .messages
            .first()
            .and_then(|message| message.sender_label.clone())
            .unwrap_or_else(|| "Support".to_owned());
        let subject = format!("{} replied to your message", excerpt(&from, 100));
        let mut text = format!("{from} replied:\n\n");
        let mut html = format!("<p><strong>{}</strong> replied:</p>\n", escape_html(&from));
        quote(&unread, &mut text, &mut html);
        text.push_str(&format!(
            "\nContinue the conversation: {resume}\n(The link works once, for 7 days.)\n\nNo more emails about this conversation: {unsubscribe}\n"
        ));
        html.push_str(&format!(
            "<p><a href=\"{}\">Continue the conversation</a> (the link works once, for 7 days).</p>\n\
             <p style=\"color:#666;font-size:12px\"><a href=\"{}\">No more emails about this conversation</a></p>\n",
            escape_html(&resume),
            escape_html(&unsubscribe)
        ));
        let email = Email {
            to,
            to_name: chat.visitor_name.clone(),
            subject,
            text,
            html: html_document(&html),
            message_id: format!("{}@{}", job.id, self.mailer.domain()),
            thread_id: Some(thread_id(chat.id, self.mailer.domain())),
            unsubscribe: Some(unsubscribe),
            one_click: true,
        };
        Ok(Done {
            follow_ups: vec![email_job(email, chat.id)?],
            ..Done::default()
        })
    }
}

fn email_job(email: Email, chat_id: Uuid) -> anyhow::Result<NewJob> {
    let mut job = NewJob::now(EMAIL, serde_json::to_value(email)?);
    job.chat_id = Some(chat_id);
    Ok(job)
}

/// The Message-ID every email about a chat refers to, so a mail client threads them.
fn thread_id(chat_id: Uuid, domain: &str) -> String {
    format!("chat-{chat_id}@{domain}")
}

fn visitor_label(chat: &chat::Model) -> String {
    match (&chat.visitor_name, &chat.visitor_email) {
        (Some(name), Some(email)) => format!("{} <{email}>", excerpt(name, 200)),
        (Some(name), None) => excerpt(name, 200),
        (None, Some(email)) => email.clone(),
        (None, None) => "A visitor".to_owned(),
    }
}

fn page_label(chat: &chat::Model) -> String {
    chat.source_page
        .as_deref()
        .map_or_else(|| "your site".to_owned(), |page| excerpt(page, 300))
}

/// The burst's messages, shortened, with the names of their files.
fn quote(unread: &Unread, text: &mut String, html: &mut String) {
    for message in &unread.messages {
        let body = message.message.as_deref().unwrap_or("");
        let body = excerpt(body, EXCERPT_CHARS);
        if !body.is_empty() {
            for line in body.lines() {
                text.push_str("> ");
                text.push_str(line);
                text.push('\n');
            }
            html.push_str(&format!(
                "<blockquote style=\"white-space:pre-wrap;margin:0 0 8px;padding-left:8px;border-left:3px solid #ccc\">{}</blockquote>\n",
                escape_html(&body)
            ));
        }
        if let Some(files) = unread.files.get(&message.id) {
            let names = files.join(", ");
            text.push_str(&format!("  [files: {names}]\n"));
            html.push_str(&format!("<p>Files: {}</p>\n", escape_html(&names)));
        }
        text.push('\n');
    }
}

fn html_document(body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"font-family:sans-serif\">\n{body}</body></html>\n"
    )
}

/// At most `max` characters, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let cut: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Writes what the send path adds when emails are on: the notification job of the burst this
/// message belongs to (one waiting per chat and side).
pub async fn on_message(
    txn: &impl sea_orm::ConnectionTrait,
    delay: chrono::Duration,
    chat: &chat::Model,
    message: &chat_message::Model,
) -> Result<(), sea_orm::DbErr> {
    let kind = match message.sender_type {
        SenderType::Visitor => ADMIN_NOTIFY,
        // Only a visitor who left an address can be told.
        SenderType::Admin if chat.visitor_email.is_some() => VISITOR_NOTIFY,
        SenderType::Admin => return Ok(()),
    };
    let payload = serde_json::to_value(Burst {
        first_at: message.created_at,
    })
    .unwrap_or_default();
    super::outbox::enqueue(
        txn,
        NewJob {
            kind,
            payload,
            chat_id: Some(chat.id),
            dedupe_key: Some(format!("{kind}:{}", chat.id)),
            run_at: message.created_at + delay,
        },
    )
    .await
    .map(|_| ())
}

/// An optout row, for the unsubscribe link.
pub async fn unsubscribe(db: &DatabaseConnection, chat_id: Uuid) -> Result<(), sea_orm::DbErr> {
    let inserted = chat_email_optout::Entity::insert(chat_email_optout::ActiveModel {
        chat_id: Set(chat_id),
        created_at: Set(crate::clock::now()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(chat_email_optout::Column::ChatId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // The chat is gone: nothing to send anyway.
        Err(error) if error.sql_err().is_some() => Ok(()),
        Err(error) => Err(error),
    }
}
