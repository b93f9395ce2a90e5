//! The event bus behind subscriptions. A notice carries ids only; each subscriber loads what it
//! needs for its own viewer, so nothing private travels with the event.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
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
    pub side: Option<SideName>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SideName {
    Visitor,
    Admin,
}

impl From<Side> for SideName {
    fn from(side: Side) -> Self {
        match side {
            Side::Visitor => Self::Visitor,
            Side::Admin => Self::Admin,
        }
    }
}

impl From<SideName> for Side {
    fn from(side: SideName) -> Self {
        match side {
            SideName::Visitor => Self::Visitor,
            SideName::Admin => Self::Admin,
        }
    }
}

impl Notice {
    pub fn new(kind: NoticeKind, chat_id: Uuid) -> Self {
        Self {
            kind,
            chat_id,
            message_id: None,
            typing: None,
            side: None,
        }
    }

    pub fn with_message(mut self, message_id: Uuid) -> Self {
        self.message_id = Some(message_id);
        self
    }

    pub fn from_side(mut self, side: Side) -> Self {
        self.side = Some(side.into());
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
    postgres: Option<DatabaseConnection>,
}

pub const CHANNEL: &str = "chatdesk_events";

impl EventBus {
    pub fn in_process() -> Self {
        let (local, _) = broadcast::channel(1024);
        Self {
            local,
            postgres: None,
        }
    }

    /// Publishes through Postgres; `listen` must run for notices to arrive.
    pub fn postgres(db: DatabaseConnection) -> Self {
        Self {
            postgres: Some(db),
            ..Self::in_process()
        }
    }

    /// Called after the change is committed.
    pub async fn publish(&self, notice: Notice) {
        if let Some(db) = &self.postgres {
            let sent = match serde_json::to_string(&notice) {
                Ok(payload) => db
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [CHANNEL.into(), payload.into()],
                    ))
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match sent {
                Ok(()) => return,
                // The change is committed; at least this instance's subscribers hear of it.
                Err(error) => tracing::warn!(%error, "NOTIFY failed; delivering locally only"),
            }
        }
        // No subscribers is not an error.
        let _ = self.local.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.local.subscribe()
    }

    /// Forwards Postgres notifications into the in-process channel, reconnecting on its own
    /// when the listening connection drops. Runs until the server stops.
    pub async fn listen(self, database_url: String) {
        use sea_orm::sqlx::postgres::PgListener;
        loop {
            let mut listener = match PgListener::connect(&database_url).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot open the LISTEN connection; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(%error, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::info!("listening for chat events on Postgres");
            loop {
                match listener.try_recv().await {
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
                    // by polling). Start over with a fresh connection.
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
