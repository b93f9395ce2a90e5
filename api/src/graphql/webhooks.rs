//! Webhooks for integrators (admins only): endpoints, their secrets, tests, the delivery log.

use async_graphql::{ComplexObject, Context, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::schema::{app, viewer};
use crate::webhooks::endpoints::{self, EndpointChanges, NewEndpoint};
use crate::webhooks::events::EventType;
use entity::{webhook_delivery, webhook_endpoint};

type Result<T> = async_graphql::Result<T>;

/// A URL that receives events, signed per the Standard Webhooks convention.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Webhook {
    /// The id the mutations take.
    pub id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// What receives them, for people.
    pub description: Option<String>,
    /// Event names, e.g. `message.created`.
    pub events: Vec<String>,
    /// False when an admin turned it off, or the server did after days of failures
    /// (`disabledReason` says so).
    pub enabled: bool,
    /// Why the server disabled it, when it did.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (null when the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs too (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// The last change by an admin, or the server disabling it.
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for Webhook {
    fn from(endpoint: webhook_endpoint::Model) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description,
            events: endpoint
                .events
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            failing_since: endpoint.failing_since,
            previous_secret_until: endpoint
                .previous_secret_until
                .filter(|until| *until > crate::clock::now()),
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

#[ComplexObject]
impl Webhook {
    /// The newest delivery attempts, newest first (the last 100 are kept).
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: u64,
    ) -> Result<Vec<WebhookDelivery>> {
        let app = app(ctx)?;
        let rows = endpoints::deliveries(&app.db, viewer(ctx), self.id, first).await?;
        Ok(rows.into_iter().map(WebhookDelivery::from).collect())
    }
}

/// One attempt to deliver an event.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The id `redeliverWebhook` takes.
    pub id: Uuid,
    /// The `webhook-id` header: the same for every attempt of one event.
    pub message_id: String,
    /// The event's `type`, e.g. `message.created`.
    pub event_type: String,
    /// 1 for the first attempt of an event (a redelivery starts at 1 again).
    pub attempt: i32,
    /// A 2xx answer.
    pub success: bool,
    /// Null when no answer came (refused, unreachable, timed out).
    pub status_code: Option<i32>,
    /// From sending the request to the last byte read.
    pub duration_ms: i32,
    /// Why it failed: the status, or the connection's error (`refused: …` for a forbidden
    /// address).
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_body: Option<String>,
    /// The event as sent.
    pub payload: String,
    /// When the attempt was made.
    pub created_at: DateTime<Utc>,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(row: webhook_delivery::Model) -> Self {
        Self {
            id: row.id,
            message_id: row.message_id,
            event_type: row.event_type,
            attempt: row.attempt,
            success: row.success,
            status_code: row.status_code,
            duration_ms: row.duration_ms,
            error: row.error,
            response_body: row.response_excerpt,
            payload: row.payload,
            created_at: row.created_at,
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    /// The endpoint.
    pub webhook: Webhook,
    /// `whsec_` + base64: verify signatures with it (any Standard Webhooks library does).
    pub secret: String,
}

impl From<webhook_endpoint::Model> for WebhookWithSecret {
    fn from(endpoint: webhook_endpoint::Model) -> Self {
        let secret = endpoint.secret.clone();
        Self {
            webhook: endpoint.into(),
            secret,
        }
    }
}

/// A new endpoint.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// `https://…` (`http://` only with `CHATDESK_WEBHOOK_ALLOW_HTTP=true`).
    pub url: String,
    /// Names of `webhookEventTypes`.
    pub events: Vec<String>,
    /// What receives them, for people (500 characters at most).
    pub description: Option<String>,
}

/// Changes to an endpoint: fields left out stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    /// As in `CreateWebhookInput.url`.
    pub url: Option<String>,
    /// As in `CreateWebhookInput.events`.
    pub events: Option<Vec<String>>,
    /// Null clears it.
    pub description: MaybeUndefined<String>,
    /// `true` also clears a disabled endpoint's failures.
    pub enabled: Option<bool>,
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// The registered endpoints, oldest first. Admins only.
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>> {
        let app = app(ctx)?;
        let rows = endpoints::list(&app.db, viewer(ctx)).await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    /// The event names an endpoint can subscribe to.
    async fn webhook_event_types(&self) -> Vec<String> {
        EventType::ALL.map(|event| event.name().to_owned()).to_vec()
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Registers an endpoint; the answer carries its secret, shown this once. Admins only.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<WebhookWithSecret> {
        let app = app(ctx)?;
        let endpoint = endpoints::create(
            &app.db,
            &app.hooks,
            &app.settings,
            viewer(ctx),
            NewEndpoint {
                url: input.url,
                events: input.events,
                description: input.description,
            },
        )
        .await?;
        Ok(endpoint.into())
    }

    /// Changes an endpoint. Admins only.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let app = app(ctx)?;
        let description = match input.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(text) => Some(Some(text)),
        };
        let endpoint = endpoints::update(
            &app.db,
            &app.hooks,
            &app.settings,
            viewer(ctx),
            id,
            EndpointChanges {
                url: input.url,
                events: input.events,
                description,
                enabled: input.enabled,
            },
        )
        .await?;
        Ok(endpoint.into())
    }

    /// Deletes an endpoint and its log; nothing more is sent to it. Admins only.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let app = app(ctx)?;
        Ok(endpoints::delete(&app.db, &app.hooks, viewer(ctx), id).await?)
    }

    /// A new secret, shown this once; deliveries carry a signature with the old one too for
    /// 24 hours, so receivers can switch without losing events. Admins only.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<WebhookWithSecret> {
        let app = app(ctx)?;
        Ok(endpoints::rotate_secret(&app.db, viewer(ctx), id)
            .await?
            .into())
    }

    /// Queues a `webhook.test` event to the endpoint (one attempt; see its log). Returns the
    /// event's `webhook-id`. Admins only.
    async fn send_test_webhook(&self, ctx: &Context<'_>, id: Uuid) -> Result<String> {
        let app = app(ctx)?;
        Ok(endpoints::send_test(&app.db, &app.hooks, viewer(ctx), id).await?)
    }

    /// Sends a logged event again to its endpoint, under the same `webhook-id`. Admins only.
    async fn redeliver_webhook(&self, ctx: &Context<'_>, delivery_id: Uuid) -> Result<bool> {
        let app = app(ctx)?;
        Ok(endpoints::redeliver(&app.db, &app.hooks, viewer(ctx), delivery_id).await?)
    }
}
