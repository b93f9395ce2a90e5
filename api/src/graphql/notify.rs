//! Email notifications: an admin's preference, and resuming a chat from an email's link.

use async_graphql::{Context, Enum, Object, SimpleObject};

use super::chat::StartChatPayload;
use super::schema::{app, client_address, viewer};
use super::types::Chat;
use crate::auth::viewer::Side;
use crate::service::notifications;
use entity::admin_notification_pref::EmailPreference as StoredPreference;

type Result<T> = async_graphql::Result<T>;

/// Which visitor messages an admin is emailed about (when nobody read them within the delay).
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum EmailPreference {
    /// Every burst of unread visitor messages (the default).
    All,
    /// Only the first messages of a new chat.
    NewChats,
    /// No emails.
    Never,
}

impl From<StoredPreference> for EmailPreference {
    fn from(value: StoredPreference) -> Self {
        match value {
            StoredPreference::All => Self::All,
            StoredPreference::NewChats => Self::NewChats,
            StoredPreference::Never => Self::Never,
        }
    }
}

impl From<EmailPreference> for StoredPreference {
    fn from(value: EmailPreference) -> Self {
        match value {
            EmailPreference::All => Self::All,
            EmailPreference::NewChats => Self::NewChats,
            EmailPreference::Never => Self::Never,
        }
    }
}

/// The signed-in admin's notification settings.
#[derive(SimpleObject)]
pub struct NotificationSettings {
    /// False when the server has no SMTP server configured (`CHATDESK_SMTP_URL`): no email
    /// goes out whatever the preference.
    pub email_enabled: bool,
    /// Which unread visitor messages this admin is emailed about.
    pub email_preference: EmailPreference,
}

#[derive(Default)]
pub struct NotifyQuery;

#[Object]
impl NotifyQuery {
    /// The signed-in admin's notification settings. Admins only.
    async fn notification_settings(&self, ctx: &Context<'_>) -> Result<NotificationSettings> {
        let app = app(ctx)?;
        let preference = notifications::preference(&app.db, viewer(ctx)).await?;
        Ok(NotificationSettings {
            email_enabled: app.notify.email_enabled(),
            email_preference: preference.into(),
        })
    }
}

#[derive(Default)]
pub struct NotifyMutation;

#[Object]
impl NotifyMutation {
    /// Sets which emails the signed-in admin gets. Admins only.
    async fn set_email_preference(
        &self,
        ctx: &Context<'_>,
        preference: EmailPreference,
    ) -> Result<NotificationSettings> {
        let app = app(ctx)?;
        let preference =
            notifications::set_preference(&app.db, viewer(ctx), preference.into()).await?;
        Ok(NotificationSettings {
            email_enabled: app.notify.email_enabled(),
            email_preference: preference.into(),
        })
    }

    /// Exchanges the one-time code of an email's resume link (`#chatdesk-resume=…`, valid 7
    /// days) for the chat and a fresh visitor token. A used, expired or unknown code is
    /// `BAD_USER_INPUT`. Rate-limited like `startChat`.
    async fn resume_chat(&self, ctx: &Context<'_>, code: String) -> Result<StartChatPayload> {
        let app = app(ctx)?;
        app.limits.start_chat(client_address(ctx))?;
        let (chat, chat_token) = notifications::resume(&app.db, &code).await?;
        Ok(StartChatPayload {
            chat: Chat::new(chat, Side::Visitor),
            chat_token,
        })
    }
}
