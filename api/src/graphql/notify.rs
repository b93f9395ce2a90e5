//! Email notifications (an admin's preference, resuming a chat from an email's link) and the
//! office hours the widget shows.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::NaiveTime;

use super::chat::StartChatPayload;
use super::schema::{app, client_address, viewer};
use super::types::{Chat, MessageAuthor};
use crate::auth::viewer::Side;
use crate::error::Error;
use crate::service::away::{self, OfficeHours as StoredHours, Range};
use crate::service::{admins, notifications};
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

/// A day of the week, in the office's time zone.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// When someone is around on one weekday, in the office's time zone.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "OpeningRangeInput")]
pub struct OpeningRange {
    /// The day this range is on.
    pub weekday: Weekday,
    /// `HH:MM`, 24-hour clock.
    pub open: String,
    /// `HH:MM`, after `open` (split a range past midnight in two).
    pub close: String,
}

/// Office hours and the widget's away text.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "OfficeHoursInput")]
pub struct OfficeHours {
    /// Off: the widget always shows the team as around.
    pub enabled: bool,
    /// An IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// When someone is around; none at all means always away (while enabled).
    pub ranges: Vec<OpeningRange>,
    /// What the widget says while nobody is around (up to 500 characters).
    pub away_text: Option<String>,
    /// What the widget says while someone is around, e.g. "We usually reply within minutes".
    pub reply_time: Option<String>,
}

fn hhmm(field: &str, text: &str) -> std::result::Result<NaiveTime, Error> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
        Error::bad_input(format!(
            "{field}: expected HH:MM, got '{}'",
            crate::notify::jobs::excerpt(text, 20)
        ))
    })
}

impl OfficeHours {
    fn into_stored(self) -> std::result::Result<StoredHours, Error> {
        let ranges = self
            .ranges
            .into_iter()
            .map(|range| {
                Ok(Range {
                    weekday: WEEKDAYS
                        .iter()
                        .position(|day| *day == range.weekday)
                        .and_then(|index| u8::try_from(index).ok())
                        .unwrap_or(0),
                    open: hhmm("open", &range.open)?,
                    close: hhmm("close", &range.close)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, Error>>()?;
        Ok(StoredHours {
            enabled: self.enabled,
            time_zone: self.time_zone,
            ranges,
            away_text: self.away_text,
            reply_time: self.reply_time,
        })
    }

    fn from_stored(hours: StoredHours) -> Self {
        Self {
            enabled: hours.enabled,
            time_zone: hours.time_zone,
            ranges: hours
                .ranges
                .into_iter()
                .map(|range| OpeningRange {
                    weekday: WEEKDAYS[usize::from(range.weekday.min(6))],
                    open: range.open.format("%H:%M").to_string(),
                    close: range.close.format("%H:%M").to_string(),
                })
                .collect(),
            away_text: hours.away_text,
            reply_time: hours.reply_time,
        }
    }
}

/// What the widget needs to know before a chat starts. Open to anyone.
#[derive(SimpleObject)]
pub struct WidgetSettings {
    /// Whether someone is around now (always true without office hours).
    pub available: bool,
    /// The away text, while nobody is around.
    pub away_text: Option<String>,
    /// The expected reply time, while someone is around.
    pub reply_time: Option<String>,
    /// Whether a visitor who leaves an email gets replies by email.
    pub email_replies: bool,
    /// Up to 5 of the team with a display name, most recently signed in first, for the
    /// widget's header. Empty when nobody has set one.
    pub team: Vec<MessageAuthor>,
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

    /// Whether someone is around, and what to say about it. Open to anyone.
    async fn widget_settings(&self, ctx: &Context<'_>) -> Result<WidgetSettings> {
        let app = app(ctx)?;
        let hours = away::office_hours(&app.db).await?;
        let available = hours.is_open(crate::clock::now());
        Ok(WidgetSettings {
            available,
            away_text: if available { None } else { hours.away_text },
            reply_time: if available { hours.reply_time } else { None },
            email_replies: app.notify.email_enabled(),
            team: admins::team(&app.db)
                .await?
                .iter()
                .filter_map(|admin| admin.name.as_deref().map(MessageAuthor::new))
                .collect(),
        })
    }

    /// The office hours. Admins only.
    async fn office_hours(&self, ctx: &Context<'_>) -> Result<OfficeHours> {
        let app = app(ctx)?;
        viewer(ctx).require_admin()?;
        Ok(OfficeHours::from_stored(away::office_hours(&app.db).await?))
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

    /// Sets the office hours and the away text. Admins only.
    async fn set_office_hours(&self, ctx: &Context<'_>, input: OfficeHours) -> Result<OfficeHours> {
        let app = app(ctx)?;
        let viewer = viewer(ctx);
        viewer.require_admin()?;
        let stored = away::set_office_hours(&app.db, viewer, input.into_stored()?).await?;
        Ok(OfficeHours::from_stored(stored))
    }

    /// Exchanges the one-time code of an email's resume link (`#chatdesk-resume=…`, valid 7
    /// days) for the chat and a fresh visitor token. A used, expired or unknown code is
    /// `BAD_USER_INPUT`. Rate-limited like `startChat`.
    async fn resume_chat(&self, ctx: &Context<'_>, code: String) -> Result<StartChatPayload> {
        let app = app(ctx)?;
        app.limits.start_chat(client_address(ctx)).await?;
        let (chat, chat_token) = notifications::resume(&app.db, &code).await?;
        Ok(StartChatPayload {
            chat: Chat::new(chat, Side::Visitor),
            chat_token,
        })
    }
}
