//! The event bus behind subscriptions. A notice carries ids only; each subscriber loads what it
//! needs for its own viewer, so nothing private travels with the event.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::auth::viewer::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    ChatStarted,
    MessageAdded,
    StatusChanged,
    Read,
    VisitorUpdated,
    Typing,
    /// The chat was erased: subscribers drop it, and every instance forgets its visitor token.
    ChatDeleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub chat_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// The side that caused the event (who read, who typed, who wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The `chat_events` row of a status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
}

impl Notice {
    pub fn new(kind: NoticeKind, chat_id: Uuid) -> Self {
        Self {
            kind,
            chat_id,
            message_id: None,
            typing: None,
            side: None,
            event_id: None,
        }
    }

    pub fn with_event(mut self, event_id: Uuid) -> Self {
        self.event_id = Some(event_id);
        self
    }

    pub fn with_message(mut self, message_id: Uuid) -> Self {
        self.message_id = Some(message_id);
        self
    }

    pub fn from_side(mut self, side: Side) -> Self {
        self.side = Some(side);
        self
    }

    pub fn typing(mut self, typing: bool) -> Self {
        self.typing = Some(typing);
        self
    }
}

/// The bus. Subscribers always read the in-process channel. On SQLite a publish goes straight
/// into it; on Postgres it goes out as `NOTIFY` and comes back in through every instance's
/// `LISTEN` connection, so several API instances behind a load balancer see each other's events.
/// Slow subscribers that fall more than the channel's capacity behind lose the oldest notices
/// (and catch up by polling), rather than holding memory for everyone.
#[derive(Clone)]
pub struct EventBus {
    local: broadcast::Sender<Notice>,
    /// On Postgres: the queue of the task that sends the `NOTIFY`s.
    notifier: Option<mpsc::Sender<Notice>>,
}

/// Notices waiting for their `NOTIFY`; past this (Postgres stuck), they are delivered locally.
const NOTIFY_QUEUE: usize = 10_000;
/// The most notices one `NOTIFY` statement carries.
const NOTIFY_BATCH: usize = 256;
/// How long the notifier waits for more notices before sending what it has.
const NOTIFY_GATHER: Duration = Duration::from_millis(5);

pub const CHANNEL: &str = "chatdesk_events";
use crate::auth::admin_sessions::CHANNEL as ADMIN_CHANNEL;

impl EventBus {
    pub fn in_process() -> Self {
        let (local, _) = broadcast::channel(1024);
        Self {
            local,
            notifier: None,
        }
    }

    /// Publishes through Postgres; `listen` must run for notices to arrive. Starts the task
    /// that sends the `NOTIFY`s, so it must be called inside the runtime.
    pub fn postgres(db: DatabaseConnection) -> Self {
        let bus = Self::in_process();
        let (queue, queued) = mpsc::channel(NOTIFY_QUEUE);
        tokio::spawn(notify(db, queued, bus.local.clone()));
        Self {
            notifier: Some(queue),
            ..bus
        }
    }

    /// Called after the change is committed. On Postgres the notice is queued for the notifier
    /// task rather than sent here: a request does not wait for a `NOTIFY` round trip (its own
    /// transaction on the server), and under load one statement carries many notices.
    pub async fn publish(&self, notice: Notice) {
        let notice = match &self.notifier {
            Some(queue) => match queue.try_send(notice) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(notice)
                    | mpsc::error::TrySendError::Closed(notice),
                ) => {
                    tracing::warn!("the NOTIFY queue is full; delivering locally only");
                    notice
                }
            },
            None => notice,
        };
        // No subscribers is not an error.
        let _ = self.local.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.local.subscribe()
    }

    /// Forwards Postgres notifications into the in-process channel, reconnecting on its own
    /// when the listening connection drops, and hands each announced admin change (see
    /// `auth::admin_sessions`) to `admin_changed`; `ready` hears when the first LISTEN is up.
    /// Runs until the server stops.
    pub async fn listen(
        self,
        database_url: String,
        ready: tokio::sync::oneshot::Sender<()>,
        admin_changed: impl Fn(Uuid),
    ) {
        use sea_orm::sqlx::postgres::PgListener;
        // Told once, when the first LISTEN succeeds (the server waits for it before serving).
        let mut ready = Some(ready);
        loop {
            let mut listener = match PgListener::connect(&database_url).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot open the LISTEN connection; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen_all([CHANNEL, ADMIN_CHANNEL]).await {
                tracing::warn!(%error, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::info!("listening for chat events on Postgres");
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) if notification.channel() == ADMIN_CHANNEL => {
                        match notification.payload().parse::<Uuid>() {
                            Ok(admin_id) => admin_changed(admin_id),
                            Err(error) => {
                                tracing::warn!(%error, "ignoring a malformed admin notification")
                            }
                        }
                    }
                    Ok(Some(notification)) => {
                        match serde_json::from_str::<Notice>(notification.payload()) {
                            Ok(notice) => {
                                let _ = self.local.send(notice);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "ignoring a malformed notification")
                            }
                        }
                    }
                    // The connection dropped (notifications meanwhile are lost; clients re-sync
                    // by polling, remembered admin rows expire on their own). Start over with a
                    // fresh connection.
                    Ok(None) => {
                        tracing::warn!("the LISTEN connection dropped; reconnecting");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the LISTEN connection failed; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
    }
}

/// Sends queued notices as `NOTIFY`s, in the order they were published (one task, one queue):
/// whatever has piled up while the previous statement ran goes out in the next one. When
/// Postgres refuses, the changes are committed all the same, so at least this instance's
/// subscribers hear of them.
async fn notify(
    db: DatabaseConnection,
    mut queued: mpsc::Receiver<Notice>,
    local: broadcast::Sender<Notice>,
) {
    let mut batch = Vec::with_capacity(NOTIFY_BATCH);
    while queued.recv_many(&mut batch, NOTIFY_BATCH).await > 0 {
        // A moment for the notices of concurrent requests to join this one: under load one
        // statement (one transaction for Postgres) then carries dozens. Events must arrive
        // within a second; this adds at most NOTIFY_GATHER.
        tokio::time::sleep(NOTIFY_GATHER).await;
        while batch.len() < NOTIFY_BATCH
            && let Ok(notice) = queued.try_recv()
        {
            batch.push(notice);
        }
        let payloads: Result<Vec<String>, _> = batch.iter().map(serde_json::to_string).collect();
        let sent = match payloads {
            Ok(payloads) => db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, n) ORDER BY n",
                    [CHANNEL.into(), payloads.into()],
                ))
                .await
                .map(|_| ())
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "NOTIFY failed; delivering locally only");
            for notice in batch.drain(..) {
                let _ = local.send(notice);
            }
        }
        batch.clear();
    }
}
