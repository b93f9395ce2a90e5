//! The webhook worker's job: one attempt to post one event to one endpoint, logged; a failure
//! writes the next attempt (Standard Webhooks' schedule) as a follow-up job, and an endpoint
//! failing for days is disabled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use super::address::{GuardedResolver, is_forbidden, refused};
use super::endpoints::{LOG_LENGTH, address_literal};
use super::events::sign_attachment_urls;
use super::{DELIVERY, Delivery, Hooks, sign};
use crate::clock::now;
use crate::config::Settings;
use crate::files::signing::{FileSigner, Variant};
use crate::notify::outbox::{Done, Handler};
use entity::{outbox_job, webhook_delivery, webhook_endpoint};

/// The whole request, from connecting to the last byte read.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The delivery log is trimmed back to `LOG_LENGTH` after about one entry in this many.
const TRIM_EVERY: u128 = 16;
/// At most this much of a response body is read...
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// ...and this much of it kept in the log.
const EXCERPT_BYTES: usize = 1024;

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub allow_private: bool,
    pub schedule: Vec<Duration>,
    pub disable_after: Duration,
}

impl DeliverySettings {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            allow_private: settings.webhook_allow_private,
            schedule: settings.webhook_retry_schedule.clone(),
            disable_after: settings.webhook_disable_after,
        }
    }
}

pub struct Deliverer {
    db: DatabaseConnection,
    client: reqwest::Client,
    settings: DeliverySettings,
    signer: FileSigner,
    public_url: String,
    hooks: Hooks,
}

/// What one attempt came to.
struct Outcome {
    success: bool,
    status: Option<u16>,
    error: Option<String>,
    excerpt: Option<String>,
    duration: Duration,
}

impl Deliverer {
    pub fn new(
        db: DatabaseConnection,
        settings: DeliverySettings,
        signer: FileSigner,
        public_url: String,
        hooks: Hooks,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect could point anywhere, the server's own network included.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect for us, past the address check.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private,
            }))
            .user_agent(concat!("Chatdesk-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            db,
            client,
            settings,
            signer,
            public_url,
            hooks,
        })
    }

    /// The `webhook-signature` header: the current secret, and the previous one while a
    /// rotation's overlap lasts.
    fn signatures(
        endpoint: &webhook_endpoint::Model,
        message_id: &str,
        timestamp: i64,
        body: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let mut signatures = vec![
            sign(&endpoint.secret, message_id, timestamp, body)
                .ok_or_else(|| anyhow::anyhow!("the endpoint's secret is not whsec_ + base64"))?,
        ];
        if let (Some(previous), Some(until)) =
            (&endpoint.previous_secret, endpoint.previous_secret_until)
            && until > at
            && let Some(signature) = sign(previous, message_id, timestamp, body)
        {
            signatures.push(signature);
        }
        Ok(signatures.join(" "))
    }

    async fn attempt(
        &self,
        endpoint: &webhook_endpoint::Model,
        message_id: &str,
        body: &str,
    ) -> Outcome {
        let started = Instant::now();
        let failed = |error: String, started: Instant| Outcome {
            success: false,
            status: None,
            error: Some(error),
            excerpt: None,
            duration: started.elapsed(),
        };
        // An address literal is never resolved, so the resolver cannot check it: check here.
        if !self.settings.allow_private {
            let url = reqwest::Url::parse(&endpoint.url);
            if let Some(ip) = url
                .as_ref()
                .ok()
                .and_then(|url| url.host_str().and_then(address_literal))
                && is_forbidden(ip)
            {
                return failed(refused(&ip.to_string()), started);
            }
        }
        let at = now();
        let timestamp = at.timestamp();
        let signature = match Self::signatures(endpoint, message_id, timestamp, body, at) {
            Ok(signature) => signature,
            Err(error) => return failed(format!("{error:#}"), started),
        };
        let sent = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return failed(error_chain(&error), started),
        };
        let status = response.status();
        let mut read = Vec::new();
        let mut read_error = None;
        while read.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    read_error = Some(error_chain(&error));
                    break;
                }
            }
        }
        read.truncate(EXCERPT_BYTES);
        let excerpt = String::from_utf8_lossy(&read).into_owned();
        let success = status.is_success();
        Outcome {
            success,
            status: Some(status.as_u16()),
            error: if success {
                None
            } else {
                Some(read_error.unwrap_or_else(|| format!("answered {status}")))
            },
            excerpt: (!excerpt.is_empty()).then_some(excerpt),
            duration: started.elapsed(),
        }
    }

    /// The attempt's entry in the endpoint's log (written with the job's completion, see
    /// `Done::delivery_log`).
    fn log_entry(
        chat_id: Option<Uuid>,
        delivery: &Delivery,
        body: String,
        outcome: &Outcome,
    ) -> webhook_delivery::ActiveModel {
        webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            endpoint_id: Set(delivery.endpoint_id),
            chat_id: Set(chat_id),
            message_id: Set(delivery.message.id.clone()),
            event_type: Set(delivery.message.event_type().to_owned()),
            attempt: Set(i32::try_from(delivery.attempt).unwrap_or(i32::MAX)),
            success: Set(outcome.success),
            status_code: Set(outcome.status.map(i32::from)),
            duration_ms: Set(i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX)),
            error: Set(outcome.error.clone()),
            response_excerpt: Set(outcome.excerpt.clone()),
            payload: Set(body),
            created_at: Set(now()),
        }
    }

    /// Drops what is beyond the endpoint's last `LOG_LENGTH` entries, after about one delivery
    /// in `TRIM_EVERY` (picked by the job's random bits, so each endpoint's log at its own
    /// pace), not after each: a busy endpoint's deliveries do not each scan its whole log, and
    /// the log holds a few more than `LOG_LENGTH` for a moment (the API lists `LOG_LENGTH`).
    async fn trim_log(
        &self,
        job: &outbox_job::Model,
        endpoint_id: Uuid,
    ) -> Result<(), sea_orm::DbErr> {
        if !job.id.as_u128().is_multiple_of(TRIM_EVERY) {
            return Ok(());
        }
        let kept = Query::select()
            .column(webhook_delivery::Column::Id)
            .from(webhook_delivery::Entity)
            .and_where(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .order_by(webhook_delivery::Column::Id, sea_orm::Order::Desc)
            .limit(LOG_LENGTH)
            .to_owned();
        // Postgres wants the LIMIT subquery wrapped once more to use it with NOT IN.
        let kept = Query::select()
            .column(webhook_delivery::Column::Id)
            .from_subquery(kept, sea_orm::sea_query::Alias::new("kept"))
            .to_owned();
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_delivery::Column::Id.not_in_subquery(kept))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Keeps the endpoint's failure streak; disables it once it has failed for too long.
    async fn track(
        &self,
        endpoint: webhook_endpoint::Model,
        outcome: &Outcome,
    ) -> Result<(), sea_orm::DbErr> {
        let at = now();
        if outcome.success {
            if endpoint.failing_since.is_some() {
                webhook_endpoint::Entity::update_many()
                    .col_expr(
                        webhook_endpoint::Column::FailingSince,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                    .exec(&self.db)
                    .await?;
            }
            return Ok(());
        }
        let Some(since) = endpoint.failing_since else {
            let mut active = endpoint.into_active_model();
            active.failing_since = Set(Some(at));
            active.update(&self.db).await?;
            return Ok(());
        };
        let limit = chrono::Duration::from_std(self.settings.disable_after)
            .unwrap_or(chrono::Duration::MAX);
        if endpoint.enabled && at - since >= limit {
            let reason = format!(
                "Disabled automatically on {}: every delivery failed since {} (last: {}). Fix the receiver, then enable it again.",
                at.format("%Y-%m-%d %H:%M UTC"),
                since.format("%Y-%m-%d %H:%M UTC"),
                outcome.error.as_deref().unwrap_or("failed")
            );
            tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, "webhooks: endpoint disabled after failing for too long");
            let mut active = endpoint.into_active_model();
            active.enabled = Set(false);
            active.disabled_reason = Set(Some(reason));
            active.updated_at = Set(at);
            active.update(&self.db).await?;
            self.hooks.refresh(&self.db).await?;
        }
        Ok(())
    }
}

impl Handler for Deliverer {
    fn kinds(&self) -> &[&'static str] {
        &[DELIVERY]
    }

    async fn run(&self, job: &outbox_job::Model) -> anyhow::Result<Done> {
        let delivery: Delivery = serde_json::from_value(job.payload.clone())?;
        let Some(endpoint) = webhook_endpoint::Entity::find_by_id(delivery.endpoint_id)
            .one(&self.db)
            .await?
        else {
            // Deleted since: nothing to send to.
            return Ok(Done::default());
        };
        if !endpoint.enabled && !delivery.manual {
            return Ok(Done::default());
        }
        let mut event = delivery.message.event.clone();
        let unix = now().timestamp();
        sign_attachment_urls(&mut event, |id| {
            self.signer
                .url(&self.public_url, id, Variant::Original, unix)
        });
        let body = serde_json::to_string(&event)?;
        let outcome = self.attempt(&endpoint, &delivery.message.id, &body).await;
        metrics::counter!(
            "webhook_attempts_total",
            "outcome" => if outcome.success { "delivered" } else { "failed" }
        )
        .increment(1);
        if let Some(error) = &outcome.error {
            tracing::info!(endpoint = %endpoint.id, message = %delivery.message.id, attempt = delivery.attempt, %error, "webhooks: attempt failed");
        }
        self.trim_log(job, delivery.endpoint_id).await?;
        let delivery_log = Self::log_entry(job.chat_id, &delivery, body, &outcome);
        let success = outcome.success;
        if !delivery.manual {
            self.track(endpoint, &outcome).await?;
        }
        // The next attempt, as its own job: the schedule is the webhook's, not the outbox's.
        let wait = self
            .settings
            .schedule
            .get(usize::try_from(delivery.attempt.saturating_sub(1)).unwrap_or(usize::MAX))
            .copied();
        let follow_ups = match wait {
            Some(wait) if !success && !delivery.manual => {
                let next = Delivery {
                    attempt: delivery.attempt + 1,
                    ..delivery
                };
                let run_at =
                    now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                vec![crate::notify::outbox::NewJob {
                    kind: DELIVERY,
                    payload: serde_json::to_value(&next)?,
                    chat_id: job.chat_id,
                    dedupe_key: None,
                    run_at,
                }]
            }
            _ => Vec::new(),
        };
        if !success && follow_ups.is_empty() && !delivery.manual {
            tracing::warn!(endpoint = %delivery_endpoint(job), message = %job.id, "webhooks: giving up on an event after its last attempt");
        }
        Ok(Done {
            follow_ups,
            delivery_log: Some(delivery_log),
        })
    }
}

fn delivery_endpoint(job: &outbox_job::Model) -> String {
    job.payload["endpoint_id"]
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

/// An error with its causes ("error sending request: … : refused: …"), for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
