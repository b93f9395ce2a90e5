//! Webhooks for integrators, on the Standard Webhooks convention: admins register endpoints,
//! each change a subscribed endpoint wants becomes one outbox job per endpoint (written in the
//! change's transaction), and the webhook worker posts it signed (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`), retrying on the Standard Webhooks schedule.
//!
//! The send path is tuned, so it asks an in-memory view which endpoints want an event before it
//! writes anything: no endpoint, no statement; otherwise one multi-row INSERT. The view is
//! reloaded when this instance changes an endpoint and every `VIEW_TTL` (other instances on the
//! same Postgres change them too).

pub mod address;
pub mod deliver;
pub mod endpoints;
pub mod events;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::RngExt;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::clock::now;
use crate::config::Settings;
use crate::files::signing::FileSigner;
use entity::outbox_job::{self, JobState};
use entity::webhook_endpoint;

pub use events::EventType;

/// The outbox job kind of one delivery (one event to one endpoint).
pub const DELIVERY: &str = "webhook_delivery";
/// How stale another instance's change to the endpoints may be here.
pub const VIEW_TTL: Duration = Duration::from_secs(2);
/// Attempts (of all kinds) running at once on one instance: a slow endpoint holds one slot per
/// attempt for at most the timeout, never the others.
const CONCURRENCY: usize = 64;

/// What the webhook worker and the send path share; cheap to clone.
#[derive(Clone)]
pub struct Hooks(Arc<Inner>);

struct Inner {
    /// Enabled endpoints and the events they want (a bit per `EventType`).
    view: RwLock<Arc<Vec<(Uuid, u32)>>>,
    /// Pinged after a commit that wrote deliveries, so this instance's worker starts at once.
    wake: Arc<tokio::sync::Notify>,
    parts: Option<Parts>,
}

/// The worker's parts (absent in `Hooks::off`).
struct Parts {
    db: DatabaseConnection,
    settings: deliver::DeliverySettings,
    signer: FileSigner,
    public_url: String,
    outbox: crate::notify::outbox::WorkerConfig,
}

impl Hooks {
    pub fn new(settings: &Settings, secret: &[u8], worker_db: DatabaseConnection) -> Self {
        Self(Arc::new(Inner {
            view: RwLock::new(Arc::new(Vec::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
            parts: Some(Parts {
                db: worker_db,
                settings: deliver::DeliverySettings::from_settings(settings),
                signer: FileSigner::new(secret),
                public_url: settings.public_url.clone(),
                outbox: crate::notify::outbox::WorkerConfig::from_settings(settings),
            }),
        }))
    }

    /// No endpoints, no worker (the demo seeder).
    pub fn off() -> Self {
        Self(Arc::new(Inner {
            view: RwLock::new(Arc::new(Vec::new())),
            wake: Arc::new(tokio::sync::Notify::new()),
            parts: None,
        }))
    }

    fn view(&self) -> Arc<Vec<(Uuid, u32)>> {
        match self.0.view.read() {
            Ok(view) => view.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The enabled endpoints that want `event`.
    pub fn subscribers(&self, event: EventType) -> Vec<Uuid> {
        self.view()
            .iter()
            .filter(|(_, wanted)| wanted & event.bit() != 0)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether any enabled endpoint wants `event` (no allocation: the send path asks).
    pub fn wants(&self, event: EventType) -> bool {
        self.view()
            .iter()
            .any(|(_, wanted)| wanted & event.bit() != 0)
    }

    /// Writes one delivery job per enabled endpoint that wants the event, as part of `txn`: no
    /// statement when none does, else one INSERT. `data` is built only then.
    pub async fn emit(
        &self,
        txn: &impl ConnectionTrait,
        event: EventType,
        chat_id: Option<Uuid>,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Result<(), DbErr> {
        let endpoints = self.subscribers(event);
        if endpoints.is_empty() {
            return Ok(());
        }
        let message = Message::new(event.name(), data());
        write_deliveries(txn, &endpoints, &message, chat_id, false).await
    }

    /// After a commit that may have written deliveries: start on them now. Only when some
    /// endpoint is enabled: a wake costs the worker a claim statement, and on a site without
    /// webhooks that was one extra statement per message sent.
    pub fn committed(&self) {
        if !self.view().is_empty() {
            self.wake();
        }
    }

    /// After a commit that certainly wrote deliveries (a test event, a redelivery).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Reloads the view of enabled endpoints.
    pub async fn refresh(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let rows = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .all(db)
            .await?;
        let view: Vec<(Uuid, u32)> = rows
            .iter()
            .map(|endpoint| (endpoint.id, events::mask(&endpoint.events)))
            .collect();
        match self.0.view.write() {
            Ok(mut slot) => *slot = Arc::new(view),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(view),
        }
        Ok(())
    }

    /// This instance's webhook worker and the task that keeps the view fresh.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(parts) = &self.0.parts else {
            return Vec::new();
        };
        let hooks = self.clone();
        let db = parts.db.clone();
        let refresher = tokio::spawn(async move {
            let mut every = tokio::time::interval(VIEW_TTL);
            loop {
                every.tick().await;
                if let Err(error) = hooks.refresh(&db).await {
                    tracing::warn!(%error, "webhooks: cannot reload the endpoints");
                }
            }
        });
        let deliverer = deliver::Deliverer::new(
            parts.db.clone(),
            parts.settings.clone(),
            parts.signer.clone(),
            parts.public_url.clone(),
            self.clone(),
        );
        let worker = match deliverer {
            Ok(deliverer) => tokio::spawn(crate::notify::outbox::run_worker(
                parts.db.clone(),
                deliverer,
                crate::notify::outbox::WorkerConfig {
                    concurrency: CONCURRENCY,
                    ..parts.outbox.clone()
                },
                Some(self.0.wake.clone()),
            )),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "webhooks: no HTTP client, no deliveries");
                return vec![refresher];
            }
        };
        vec![refresher, worker]
    }
}

/// One event as it is sent: `{type, timestamp, data}` under a `webhook-id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    /// `msg_` + a UUIDv7: the `webhook-id`, the same for every attempt and every endpoint.
    pub id: String,
    pub event: serde_json::Value,
}

impl Message {
    pub fn new(event_type: &str, data: serde_json::Value) -> Self {
        Self {
            id: format!("msg_{}", Uuid::now_v7().simple()),
            event: serde_json::json!({
                "type": event_type,
                "timestamp": timestamp(now()),
                "data": data,
            }),
        }
    }

    pub fn event_type(&self) -> &str {
        self.event["type"].as_str().unwrap_or("")
    }
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The payload of a delivery job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    pub endpoint_id: Uuid,
    pub message: Message,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// A test or a redelivery an admin asked for: one attempt, even to a disabled endpoint.
    #[serde(default)]
    pub manual: bool,
}

/// One INSERT of a delivery job per endpoint.
pub(crate) async fn write_deliveries(
    db: &impl ConnectionTrait,
    endpoints: &[Uuid],
    message: &Message,
    chat_id: Option<Uuid>,
    manual: bool,
) -> Result<(), DbErr> {
    let at = now();
    let rows = endpoints.iter().map(|endpoint_id| {
        let delivery = Delivery {
            endpoint_id: *endpoint_id,
            message: message.clone(),
            attempt: 1,
            manual,
        };
        job_row(&delivery, chat_id, at)
    });
    outbox_job::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

fn job_row(
    delivery: &Delivery,
    chat_id: Option<Uuid>,
    run_at: DateTime<Utc>,
) -> outbox_job::ActiveModel {
    let at = now();
    outbox_job::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(DELIVERY.to_owned()),
        payload: Set(serde_json::to_value(delivery).unwrap_or_default()),
        chat_id: Set(chat_id),
        dedupe_key: Set(None),
        state: Set(JobState::Pending),
        run_at: Set(run_at),
        attempts: Set(0),
        last_error: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
}

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::rng().random();
    format!("whsec_{}", STANDARD.encode(key))
}

/// `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's base64 part
/// decoded (Standard Webhooks). `None` for a secret that is not `whsec_` + base64.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert!(sign("whsec_not base64!", "msg", 1, "{}").is_none());
    }

    #[test]
    fn secrets_are_whsec_and_24_or_more_random_bytes() {
        let secret = new_secret();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert!(key.len() >= 24);
        assert_ne!(secret, new_secret());
    }
}
