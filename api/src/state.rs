//! The one `Clone` state shared by HTTP handlers and (as schema data) by resolvers.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use sea_orm::DatabaseConnection;

use crate::auth::Credentials;
use crate::auth::admin_sessions::AdminRows;
use crate::auth::jwt::JwtKeys;
use crate::auth::visitor_chats::VisitorChats;
use crate::config::Settings;
use crate::files::signing::{FileSigner, Variant};
use crate::limits::RateLimits;
use crate::realtime::EventBus;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: DatabaseConnection,
    pub settings: Settings,
    pub jwt: JwtKeys,
    /// Visitor tokens already confirmed, and their chats.
    pub visitor_chats: VisitorChats,
    /// Admin rows read in the last few seconds (forgotten when a password changes).
    pub admin_rows: AdminRows,
    /// Signs file links (with a key derived from the JWT secret).
    pub file_signer: FileSigner,
    pub storage: Arc<dyn Storage>,
    pub bus: EventBus,
    pub limits: Arc<RateLimits>,
    /// Statements run since start; tests read it to prove the chat list has no N+1.
    pub query_count: Arc<AtomicU64>,
    /// The address the server listens on (its port is known only after binding).
    pub local_address: std::net::SocketAddr,
    /// Live `chatEvents` subscriptions per chat, for the per-chat cap.
    pub chat_subscriptions: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
    /// Open WebSockets per client address, for the per-address cap.
    pub open_sockets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// Email: the outbox worker's parts and the send path's trigger.
    pub notify: crate::notify::Notify,
    /// Webhooks: which endpoints want which events, and the worker's parts.
    pub hooks: crate::webhooks::Hooks,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl AppState {
    /// What a request's credential is checked against.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            db: &self.db,
            jwt: &self.jwt,
            visitor_chats: &self.visitor_chats,
            admin_rows: &self.admin_rows,
        }
    }

    /// A signed, expiring link to an attachment (or its thumbnail).
    pub fn file_url(&self, attachment_id: uuid::Uuid, thumbnail: bool) -> String {
        let variant = if thumbnail {
            Variant::Thumbnail
        } else {
            Variant::Original
        };
        let now = chrono::Utc::now().timestamp();
        self.file_signer
            .url(&self.settings.public_url, attachment_id, variant, now)
    }

    /// Whether uploads can be written now.
    pub async fn storage_ready(&self) -> bool {
        self.storage.check().await.is_ok()
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
