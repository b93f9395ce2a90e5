//! The `Viewer`: who is asking, decided once per request from the bearer credential.
//! Services take the viewer and decide what it may do; GraphQL field visibility is never security.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::admin_sessions::{AdminRows, AdminSession};
use super::jwt::JwtKeys;
use super::visitor_chats::VisitorChats;
use super::visitor_token;
use crate::error::{Error, Result};
use entity::chat;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// No credential at all.
    Anonymous,
    /// A credential was sent but is unknown, expired or revoked.
    Invalid,
    Visitor {
        chat_id: Uuid,
    },
    Admin(AdminViewer),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminViewer {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    /// The JWT's session; `None` for the CLI acting as an admin.
    pub session: Option<AdminSession>,
}

/// What a viewer is resolved from: the JWT keys and the two memos in front of the database.
pub struct Credentials<'a> {
    pub db: &'a DatabaseConnection,
    pub jwt: &'a JwtKeys,
    pub visitor_chats: &'a VisitorChats,
    pub admin_rows: &'a AdminRows,
}

/// Which side of a chat a viewer speaks for: the same two as the sides that write messages.
pub use entity::chat_message::SenderType as Side;

impl Viewer {
    /// Resolves an `Authorization` header value (`Bearer …`). Database errors propagate; a bad
    /// credential becomes `Viewer::Invalid`.
    pub async fn from_authorization(
        credentials: &Credentials<'_>,
        header: Option<&str>,
    ) -> Result<Self> {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(Self::Anonymous);
        };
        let credential = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Ok(Self::Invalid),
        };
        Self::from_credential(credentials, credential).await
    }

    pub async fn from_credential(credentials: &Credentials<'_>, credential: &str) -> Result<Self> {
        let Credentials {
            db,
            jwt,
            visitor_chats,
            admin_rows,
        } = credentials;
        if visitor_token::looks_like_visitor_token(credential) {
            let digest = visitor_token::digest(credential);
            if let Some(chat_id) = visitor_chats.get(&digest) {
                return Ok(Self::Visitor { chat_id });
            }
            let chat_id: Option<Uuid> = chat::Entity::find()
                .select_only()
                .column(chat::Column::Id)
                .filter(chat::Column::ChatTokenHash.eq(visitor_token::hex(&digest)))
                .into_tuple()
                .one(*db)
                .await?;
            let Some(chat_id) = chat_id else {
                return Ok(Self::Invalid);
            };
            visitor_chats.remember(digest, chat_id);
            return Ok(Self::Visitor { chat_id });
        }
        let Some(claims) = jwt.verify(credential) else {
            return Ok(Self::Invalid);
        };
        let Some(admin) = admin_rows.get(*db, claims.sub).await? else {
            return Ok(Self::Invalid);
        };
        // A token carries the password version it was issued under; a changed password
        // retires every token issued before the change.
        if claims.pwv != admin.password_changed_at.timestamp_micros() {
            return Ok(Self::Invalid);
        }
        Ok(Self::Admin(AdminViewer {
            id: admin.id,
            email: admin.email,
            name: admin.name,
            session: Some(AdminSession {
                admin_id: admin.id,
                password_version: claims.pwv,
                expires_at: claims.exp,
            }),
        }))
    }

    pub fn side(&self) -> Option<Side> {
        match self {
            Self::Visitor { .. } => Some(Side::Visitor),
            Self::Admin(_) => Some(Side::Admin),
            Self::Anonymous | Self::Invalid => None,
        }
    }

    /// The admin behind this request, or the right refusal.
    pub fn require_admin(&self) -> Result<&AdminViewer> {
        match self {
            Self::Admin(admin) => Ok(admin),
            Self::Visitor { .. } => Err(Error::Forbidden),
            Self::Anonymous | Self::Invalid => Err(Error::Unauthenticated),
        }
    }

    /// May this viewer see and act in this chat? A visitor asking for any chat but its own gets
    /// `FORBIDDEN` whether that chat exists or not, so nothing can be learned by probing.
    pub fn require_chat(&self, chat_id: Uuid) -> Result<Side> {
        match self {
            Self::Admin(_) => Ok(Side::Admin),
            Self::Visitor { chat_id: own } if *own == chat_id => Ok(Side::Visitor),
            Self::Visitor { .. } => Err(Error::Forbidden),
            Self::Anonymous | Self::Invalid => Err(Error::Unauthenticated),
        }
    }

    /// What `chat_events.actor` records for this viewer.
    pub fn actor(&self) -> String {
        match self {
            Self::Admin(admin) => format!("admin:{}", admin.id),
            Self::Visitor { .. } => "visitor".to_owned(),
            Self::Anonymous | Self::Invalid => "anonymous".to_owned(),
        }
    }
}
