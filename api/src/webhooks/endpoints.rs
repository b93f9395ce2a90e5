//! Managing endpoints (admins only): the use cases behind the GraphQL mutations.

use chrono::Duration as ChronoDuration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::address::{is_forbidden, refused};
use super::events::{EventType, TEST_EVENT};
use super::{Hooks, Message, new_secret, write_deliveries};
use crate::auth::Viewer;
use crate::clock::now;
use crate::config::Settings;
use crate::error::{Error, Result};
use entity::{webhook_delivery, webhook_endpoint};

/// How long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;
/// Deliveries kept per endpoint.
pub const LOG_LENGTH: u64 = 100;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// The URL as it will be used, or why not: `https://` (or `http://` when allowed), a host, and
/// no address literal the server may not reach. Names are checked when each delivery
/// connects, after DNS.
pub fn validate_url(text: &str, settings: &Settings) -> Result<String> {
    let text = text.trim();
    if text.len() > MAX_URL {
        return Err(Error::bad_input(format!(
            "url: at most {MAX_URL} characters"
        )));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|error| Error::bad_input(format!("url: not a URL ({error})")))?;
    match url.scheme() {
        "https" => {}
        "http" if settings.webhook_allow_http => {}
        "http" => {
            return Err(Error::bad_input(
                "url: must be https:// (http:// needs CHATDESK_WEBHOOK_ALLOW_HTTP=true)",
            ));
        }
        other => {
            return Err(Error::bad_input(format!(
                "url: must be https://, not {other}://"
            )));
        }
    }
    let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
        return Err(Error::bad_input("url: no host"));
    };
    if let Some(ip) = address_literal(host)
        && !settings.webhook_allow_private
        && is_forbidden(ip)
    {
        return Err(Error::bad_input(format!(
            "url: {}",
            refused(&ip.to_string())
        )));
    }
    Ok(url.to_string())
}

/// The address a URL's host names literally (`[::1]` as the URL writes IPv6), if it is one.
pub fn address_literal(host: &str) -> Option<std::net::IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn validate_events(events: &[String]) -> Result<String> {
    if events.is_empty() {
        return Err(Error::bad_input("events: name at least one event"));
    }
    let mut names: Vec<&'static str> = Vec::new();
    for name in events {
        let event = EventType::parse(name.trim()).ok_or_else(|| {
            Error::bad_input(format!(
                "events: unknown event '{name}' (known: {})",
                EventType::ALL.map(EventType::name).join(", ")
            ))
        })?;
        if !names.contains(&event.name()) {
            names.push(event.name());
        }
    }
    Ok(names.join(","))
}

fn validate_description(description: Option<&str>) -> Result<Option<String>> {
    let description = description.map(str::trim).filter(|text| !text.is_empty());
    if description.is_some_and(|text| text.chars().count() > MAX_DESCRIPTION) {
        return Err(Error::bad_input(format!(
            "description: at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(description.map(str::to_owned))
}

pub async fn list(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
) -> Result<Vec<webhook_endpoint::Model>> {
    viewer.require_admin()?;
    Ok(webhook_endpoint::Entity::find()
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .all(db)
        .await?)
}

async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<webhook_endpoint::Model> {
    webhook_endpoint::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("webhook"))
}

/// Creates an endpoint; returns it with its secret (shown this once).
pub async fn create(
    db: &DatabaseConnection,
    hooks: &Hooks,
    settings: &Settings,
    viewer: &Viewer,
    new: NewEndpoint,
) -> Result<webhook_endpoint::Model> {
    viewer.require_admin()?;
    let url = validate_url(&new.url, settings)?;
    let events = validate_events(&new.events)?;
    let description = validate_description(new.description.as_deref())?;
    let at = now();
    let endpoint = webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        url: Set(url),
        description: Set(description),
        events: Set(events),
        secret: Set(new_secret()),
        previous_secret: Set(None),
        previous_secret_until: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?;
    hooks.refresh(db).await?;
    Ok(endpoint)
}

pub async fn update(
    db: &DatabaseConnection,
    hooks: &Hooks,
    settings: &Settings,
    viewer: &Viewer,
    id: Uuid,
    changes: EndpointChanges,
) -> Result<webhook_endpoint::Model> {
    viewer.require_admin()?;
    let url = changes
        .url
        .map(|url| validate_url(&url, settings))
        .transpose()?;
    let events = changes
        .events
        .map(|events| validate_events(&events))
        .transpose()?;
    let description = changes
        .description
        .map(|text| validate_description(text.as_deref()))
        .transpose()?;
    let mut active = get(db, id).await?.into_active_model();
    if let Some(url) = url {
        active.url = Set(url);
    }
    if let Some(events) = events {
        active.events = Set(events);
    }
    if let Some(description) = description {
        active.description = Set(description);
    }
    if let Some(enabled) = changes.enabled {
        active.enabled = Set(enabled);
        if enabled {
            // Enabled again by hand: its failures start over.
            active.disabled_reason = Set(None);
            active.failing_since = Set(None);
        }
    }
    active.updated_at = Set(now());
    let endpoint = active.update(db).await?;
    hooks.refresh(db).await?;
    Ok(endpoint)
}

pub async fn delete(
    db: &DatabaseConnection,
    hooks: &Hooks,
    viewer: &Viewer,
    id: Uuid,
) -> Result<bool> {
    viewer.require_admin()?;
    let deleted = webhook_endpoint::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected;
    if deleted == 0 {
        return Err(Error::NotFound("webhook"));
    }
    // Its waiting deliveries find no endpoint and end without a request.
    hooks.refresh(db).await?;
    Ok(true)
}

/// A new secret; the old one keeps signing (a second signature) for 24 hours.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
) -> Result<webhook_endpoint::Model> {
    viewer.require_admin()?;
    let endpoint = get(db, id).await?;
    let mut active = endpoint.clone().into_active_model();
    active.previous_secret = Set(Some(endpoint.secret));
    active.previous_secret_until = Set(Some(now() + ChronoDuration::hours(ROTATION_OVERLAP_HOURS)));
    active.secret = Set(new_secret());
    active.updated_at = Set(now());
    Ok(active.update(db).await?)
}

/// Queues a `webhook.test` event to this endpoint (one attempt, even when it is disabled).
pub async fn send_test(
    db: &DatabaseConnection,
    hooks: &Hooks,
    viewer: &Viewer,
    id: Uuid,
) -> Result<String> {
    let admin = viewer.require_admin()?;
    let endpoint = get(db, id).await?;
    let message = Message::new(
        TEST_EVENT,
        serde_json::json!({
            "webhookId": endpoint.id,
            "requestedBy": admin.email,
            "text": "A test event from Chatdesk",
        }),
    );
    write_deliveries(db, &[endpoint.id], &message, None, true).await?;
    hooks.wake();
    Ok(message.id)
}

/// The newest attempts to an endpoint, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    endpoint_id: Uuid,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>> {
    viewer.require_admin()?;
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit.clamp(1, LOG_LENGTH))
        .all(db)
        .await?)
}

/// Sends a logged event to its endpoint again, under the same `webhook-id` (receivers that
/// de-duplicate will see it as the same event).
pub async fn redeliver(
    db: &DatabaseConnection,
    hooks: &Hooks,
    viewer: &Viewer,
    delivery_id: Uuid,
) -> Result<bool> {
    viewer.require_admin()?;
    let delivery = webhook_delivery::Entity::find_by_id(delivery_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    let event: serde_json::Value = serde_json::from_str(&delivery.payload).map_err(|error| {
        Error::internal(anyhow::anyhow!("a logged payload does not parse: {error}"))
    })?;
    let message = Message {
        id: delivery.message_id,
        event,
    };
    let txn = db.begin().await?;
    write_deliveries(
        &txn,
        &[delivery.endpoint_id],
        &message,
        delivery.chat_id,
        true,
    )
    .await?;
    txn.commit().await?;
    hooks.wake();
    Ok(true)
}

/// For erasing a chat (`deleteChat`), in its transaction: the delivery log's entries about the
/// chat (they hold its messages). Its waiting deliveries go with
/// `notify::outbox::delete_pending_for_chat`; then emit `chat.deleted` with `chat_id: None`.
pub async fn forget_chat(db: &impl ConnectionTrait, chat_id: Uuid) -> Result<u64> {
    Ok(webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::ChatId.eq(chat_id))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allow_http: bool, allow_private: bool) -> Settings {
        let mut settings = Settings::from_lookup(|_| None).unwrap();
        settings.webhook_allow_http = allow_http;
        settings.webhook_allow_private = allow_private;
        settings
    }

    #[test]
    fn urls_must_be_https_and_not_private_literals() {
        let strict = settings(false, false);
        assert!(validate_url("https://hooks.example.com/in", &strict).is_ok());
        assert!(validate_url("http://hooks.example.com/in", &strict).is_err());
        assert!(validate_url("ftp://hooks.example.com/in", &strict).is_err());
        assert!(validate_url("https://127.0.0.1/in", &strict).is_err());
        assert!(validate_url("https://[::1]:8443/in", &strict).is_err());
        assert!(validate_url("https://[::ffff:10.0.0.1]/in", &strict).is_err());
        assert!(validate_url("https://169.254.169.254/latest", &strict).is_err());
        // Other spellings of 127.0.0.1 are normalised by the URL parser, then refused.
        assert!(validate_url("https://0x7f000001/in", &strict).is_err());
        assert!(validate_url("https://2130706433/in", &strict).is_err());
        assert!(validate_url("https://127.1/in", &strict).is_err());
        assert!(validate_url("https://[::ffff:7f00:1]/in", &strict).is_err());
        assert!(validate_url("not a url", &strict).is_err());
        let tests = settings(true, true);
        assert!(validate_url("http://127.0.0.1:9000/in", &tests).is_ok());
    }

    #[test]
    fn events_are_known_names() {
        assert_eq!(
            validate_events(&[
                "message.created".into(),
                "chat.read".into(),
                "message.created".into()
            ])
            .unwrap(),
            "message.created,chat.read"
        );
        assert!(validate_events(&[]).is_err());
        assert!(validate_events(&["message.deleted".into()]).is_err());
    }
}
