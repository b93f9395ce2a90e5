//! Admin rows remembered for a few seconds, and the rule that ends an admin's live session.
//!
//! Every admin request turns its JWT into the admin's row, to check that the password it was
//! issued under is still the current one. Reading the row each time costs a database round
//! trip per request; remembering it for ever would let a changed password go unnoticed. So a
//! row is kept for [`ROW_TTL`], and forgotten at once when a password changes: by this process,
//! or, on Postgres, by any process (the `chatdesk admin passwd` CLI included) through
//! `NOTIFY chatdesk_admins`. On SQLite the CLI is another process with no way to tell us, and
//! the TTL bounds how long the old row is believed.
//!
//! A WebSocket is authenticated once, at `connection_init`, so an admin's socket asks
//! [`AdminRows::until_ended`] when its session ends: at the JWT's `exp`, or within
//! [`RECHECK`] + [`ROW_TTL`] of a password change (at once when the change was announced).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::error::Result;
use crate::memo::Memo;
use entity::admin;

/// How long a remembered admin row is believed without asking the database again.
pub const ROW_TTL: Duration = Duration::from_secs(5);
/// How often an admin's open socket checks that its session still holds.
pub const RECHECK: Duration = Duration::from_secs(2);
/// The Postgres channel that announces an admin whose credentials changed (payload: its id).
pub const CHANNEL: &str = "chatdesk_admins";

/// Admins are few; the bound only guards against a flood of valid-looking tokens.
const CAPACITY: usize = 10_000;

/// What a JWT binds an admin's session to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminSession {
    pub admin_id: Uuid,
    /// The admin's `password_changed_at` (µs) when the token was issued.
    pub password_version: i64,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: i64,
}

pub struct AdminRows(Memo<Uuid, (Instant, admin::Model)>);

impl Default for AdminRows {
    fn default() -> Self {
        Self(Memo::with_capacity(CAPACITY))
    }
}

impl AdminRows {
    /// The admin's row: remembered if read less than [`ROW_TTL`] ago, else read again.
    pub async fn get(&self, db: &impl ConnectionTrait, id: Uuid) -> Result<Option<admin::Model>> {
        if let Some((read_at, row)) = self.0.get(&id)
            && read_at.elapsed() < ROW_TTL
        {
            return Ok(Some(row));
        }
        let row = admin::Entity::find_by_id(id).one(db).await?;
        match &row {
            Some(row) => self.0.insert(id, (Instant::now(), row.clone())),
            None => self.forget(id),
        }
        Ok(row)
    }

    /// Drops what is remembered of an admin whose credentials changed.
    pub fn forget(&self, id: Uuid) {
        self.0.remove(&id);
    }

    /// Whether a session still holds now: not expired, the admin still there, and its
    /// password unchanged since the token was issued.
    pub async fn holds(&self, db: &impl ConnectionTrait, session: &AdminSession) -> Result<bool> {
        if chrono::Utc::now().timestamp() >= session.expires_at {
            return Ok(false);
        }
        Ok(self.get(db, session.admin_id).await?.is_some_and(|row| {
            row.password_changed_at.timestamp_micros() == session.password_version
        }))
    }

    /// Resolves when the session ends. A database that cannot be reached does not end it:
    /// an outage must not sign every admin out; the next check decides.
    pub async fn until_ended(&self, db: &impl ConnectionTrait, session: &AdminSession) {
        loop {
            let left = session.expires_at - chrono::Utc::now().timestamp();
            let Ok(left) = u64::try_from(left) else {
                return;
            };
            tokio::time::sleep(RECHECK.min(Duration::from_secs(left))).await;
            match self.holds(db, session).await {
                Ok(true) | Err(_) => {}
                Ok(false) => return,
            }
        }
    }
}
