//! Office hours and the away text: set by an admin, read by the widget (through the public
//! `widgetSettings`) to say whether someone is around and when to expect a reply.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::auth::Viewer;
use crate::clock::now;
use crate::error::{Error, Result};
use entity::site_setting;

const KEY: &str = "office_hours";
const MAX_TEXT: usize = 500;
const MAX_RANGES: usize = 28;

/// One opening range on one weekday, in the office's time zone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Range {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    pub open: NaiveTime,
    pub close: NaiveTime,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OfficeHours {
    /// Off: always "around" (what Chatdesk did before office hours existed).
    pub enabled: bool,
    /// An IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub ranges: Vec<Range>,
    /// Shown by the widget while away.
    pub away_text: Option<String>,
    /// Shown by the widget while open, e.g. "We usually reply within minutes".
    pub reply_time: Option<String>,
}

impl Default for OfficeHours {
    fn default() -> Self {
        Self {
            enabled: false,
            time_zone: "UTC".to_owned(),
            ranges: Vec::new(),
            away_text: None,
            reply_time: None,
        }
    }
}

impl OfficeHours {
    /// Checks and tidies what an admin sent.
    pub fn validated(mut self) -> Result<Self> {
        self.time_zone = self.time_zone.trim().to_owned();
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(Error::bad_input(format!(
                "timeZone: '{}' is not an IANA time zone such as Europe/Berlin",
                crate::notify::jobs::excerpt(&self.time_zone, 60)
            )));
        }
        if self.ranges.len() > MAX_RANGES {
            return Err(Error::bad_input(format!(
                "at most {MAX_RANGES} opening ranges"
            )));
        }
        for range in &self.ranges {
            if range.weekday > 6 {
                return Err(Error::bad_input("weekday must be 0 (Monday) to 6 (Sunday)"));
            }
            if range.open >= range.close {
                return Err(Error::bad_input(
                    "each range must open before it closes (split ranges past midnight in two)",
                ));
            }
        }
        self.ranges
            .sort_by_key(|range| (range.weekday, range.open, range.close));
        for (name, text) in [
            ("awayText", &mut self.away_text),
            ("replyTime", &mut self.reply_time),
        ] {
            *text = crate::domain::short_text(name, text.as_deref(), MAX_TEXT)?;
        }
        Ok(self)
    }

    /// Whether someone is around at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        if !self.enabled {
            return true;
        }
        let Ok(zone) = self.time_zone.parse::<chrono_tz::Tz>() else {
            return true;
        };
        let local = at.with_timezone(&zone);
        let weekday = u8::try_from(local.weekday().num_days_from_monday()).unwrap_or(0);
        let time = local.time();
        self.ranges
            .iter()
            .any(|range| range.weekday == weekday && range.open <= time && time < range.close)
    }
}

pub async fn office_hours(db: &impl ConnectionTrait) -> Result<OfficeHours> {
    let stored = site_setting::Entity::find_by_id(KEY.to_owned())
        .one(db)
        .await?;
    // A value this version cannot read (written by a later one) counts as "not set".
    Ok(stored
        .and_then(|row| serde_json::from_value(row.value).ok())
        .unwrap_or_default())
}

pub async fn set_office_hours(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    hours: OfficeHours,
) -> Result<OfficeHours> {
    viewer.require_admin()?;
    let hours = hours.validated()?;
    let value = serde_json::to_value(&hours)
        .map_err(|error| Error::internal(anyhow::Error::from(error)))?;
    site_setting::Entity::insert(site_setting::ActiveModel {
        key: Set(KEY.to_owned()),
        value: Set(value),
        updated_at: Set(now()),
    })
    .on_conflict(
        OnConflict::column(site_setting::Column::Key)
            .update_columns([site_setting::Column::Value, site_setting::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn time(text: &str) -> NaiveTime {
        NaiveTime::parse_from_str(text, "%H:%M").unwrap()
    }

    fn berlin_weekdays() -> OfficeHours {
        OfficeHours {
            enabled: true,
            time_zone: "Europe/Berlin".into(),
            ranges: (0..5)
                .map(|weekday| Range {
                    weekday,
                    open: time("09:00"),
                    close: time("17:00"),
                })
                .collect(),
            away_text: Some("Back tomorrow".into()),
            reply_time: None,
        }
    }

    #[test]
    fn open_follows_the_local_clock_of_the_time_zone() {
        let hours = berlin_weekdays();
        // Monday 2026-11-30, 08:30 UTC = 09:30 in Berlin (CET, UTC+1): open.
        assert!(hours.is_open(Utc.with_ymd_and_hms(2026, 11, 30, 8, 30, 0).unwrap()));
        // 07:30 UTC = 08:30 Berlin: closed.
        assert!(!hours.is_open(Utc.with_ymd_and_hms(2026, 11, 30, 7, 30, 0).unwrap()));
        // 16:00 UTC = 17:00 Berlin: closed (the close is exclusive).
        assert!(!hours.is_open(Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap()));
        // Saturday: closed. Summer time (CEST, UTC+2): 07:30 UTC = 09:30 Berlin, open.
        assert!(!hours.is_open(Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()));
        assert!(hours.is_open(Utc.with_ymd_and_hms(2026, 6, 1, 7, 30, 0).unwrap()));
        // Switched off: always open.
        let off = OfficeHours {
            enabled: false,
            ..hours
        };
        assert!(off.is_open(Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()));
    }

    #[test]
    fn bad_hours_are_refused() {
        let bad_zone = OfficeHours {
            time_zone: "Mars/Olympus".into(),
            ..berlin_weekdays()
        };
        assert!(bad_zone.validated().is_err());
        let mut backwards = berlin_weekdays();
        backwards.ranges[0].close = time("08:00");
        assert!(backwards.validated().is_err());
        let mut weekday = berlin_weekdays();
        weekday.ranges[0].weekday = 7;
        assert!(weekday.validated().is_err());
        let long = OfficeHours {
            away_text: Some("x".repeat(501)),
            ..berlin_weekdays()
        };
        assert!(long.validated().is_err());
        assert!(berlin_weekdays().validated().is_ok());
    }
}
