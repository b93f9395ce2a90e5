//! Sending a message with files, the one use case that writes to storage and the database
//! together. It owns the rule "no row without its file, no file without its row": files are
//! stored before the message's rows (a row must never name a missing file), and removed again
//! when the rows are not written, or when a retried send finds the message already stored.
//! (A failure to remove leaves an orphan for the hourly sweep, never a dangling row.)

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::chats;
use super::messages::{self, NewAttachment, NewMessage, Sent};
use crate::auth::Viewer;
use crate::error::Result;
use crate::files::policy::FilePolicy;
use crate::files::scan::Scanner;
use crate::files::store::{discard, store_prepared};
use crate::files::upload::{PreparedFile, Received, prepare_file};
use crate::notify::EmailTrigger;
use crate::realtime::EventBus;
use crate::storage::Storage;
use crate::webhooks::Hooks;

/// What a send writes to and tells, besides the message itself.
#[derive(Clone, Copy)]
pub struct Outlets<'a> {
    pub db: &'a DatabaseConnection,
    pub bus: &'a EventBus,
    /// Set when email is on.
    pub email: Option<EmailTrigger>,
    pub hooks: &'a Hooks,
    pub storage: &'a dyn Storage,
}

/// A message to send: its text (already checked) and, for a retry, the client's id for it.
pub struct Draft {
    pub body: Option<String>,
    pub client_message_id: Option<String>,
}

/// Sends a message with the files a client uploaded: each is checked against `policy` (and
/// scanned, with a `scanner`) and stored, then the rows are written. A retry of a stored message
/// with files returns it before the files are processed again. (A text-only retry needs no
/// look-up: the send itself finds it.)
pub async fn send_uploads(
    to: Outlets<'_>,
    policy: &FilePolicy,
    scanner: Option<&Scanner>,
    viewer: &Viewer,
    chat_id: Uuid,
    draft: Draft,
    uploads: Vec<Received>,
) -> Result<Sent> {
    viewer.require_chat(chat_id)?;
    policy.check_count(uploads.len())?;
    if !uploads.is_empty()
        && let Some(client_id) = draft.client_message_id.as_deref()
        && let Some(existing) = messages::find_by_client_id(to.db, chat_id, client_id).await?
    {
        return Ok(Sent {
            message: existing,
            chat: chats::get(to.db, viewer, chat_id).await?,
            created: false,
        });
    }
    let mut prepared = Vec::with_capacity(uploads.len());
    for upload in uploads {
        prepared.push(prepare_file(policy, scanner, &upload.name, upload.content).await?);
    }
    send_prepared(to, viewer, chat_id, draft, &prepared).await
}

/// Sends a message with files already checked: stores them, writes the rows, and removes the
/// stored files again when the rows were not written or a retry made them surplus.
pub async fn send_prepared(
    to: Outlets<'_>,
    viewer: &Viewer,
    chat_id: Uuid,
    draft: Draft,
    files: &[PreparedFile],
) -> Result<Sent> {
    let mut stored: Vec<NewAttachment> = Vec::with_capacity(files.len());
    for file in files {
        match store_prepared(to.storage, file).await {
            Ok(file) => stored.push(file),
            Err(error) => {
                discard(to.storage, stored).await;
                return Err(error);
            }
        }
    }
    let new = NewMessage {
        body: draft.body,
        client_message_id: draft.client_message_id,
        attachments: stored.clone(),
    };
    match messages::send(to.db, to.bus, to.email, to.hooks, viewer, chat_id, new).await {
        Ok(sent) => {
            if !sent.created {
                discard(to.storage, stored).await;
            }
            Ok(sent)
        }
        Err(error) => {
            discard(to.storage, stored).await;
            Err(error)
        }
    }
}
