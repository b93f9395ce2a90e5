//! Timestamps as the database keeps them.

use chrono::{DateTime, Utc};

/// Now, truncated to microseconds: Postgres keeps no finer, so a value read back compares equal
/// to the one written, on SQLite as on Postgres (cursors rely on that).
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
