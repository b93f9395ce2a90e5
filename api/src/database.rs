//! Connecting to SQLite or Postgres with settings that suit a chat server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::{Settings, redact_url};

/// Applies the pending migrations: at every start, and before every CLI command that needs the
/// database.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use migration::{Migrator, MigratorTrait};
    Migrator::up(db, None)
        .await
        .context("database migration failed")
}

/// A pooled connection idle this long is pinged before it is handed out.
const POOL_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_file(&settings.database_url)
        && let Some(parent) = std::path::Path::new(&path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", parent.display()))?;
    }
    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .sqlx_logging(false)
        // A request must fail fast when the database is gone or the pool is exhausted,
        // rather than queue without bound.
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        // sqlx pings a pooled connection on every checkout by default: a round trip (and a
        // wake-up of the server's backend) before each transaction or statement, two or three
        // per request. Only a connection idle long enough to have been dropped (a restarted
        // server, a proxy's timeout) is pinged now; one that broke while busy fails its
        // statement as UNAVAILABLE, is dropped by the pool, and the next request gets another.
        .test_before_acquire_if_idle_for(POOL_PING_AFTER_IDLE)
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    if settings.is_postgres() {
        options.max_connections(20).min_connections(1);
    } else {
        // SQLite has one writer; a small pool avoids lock contention turning into timeouts.
        options.max_connections(4).min_connections(1);
    }
    Database::connect(options).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot connect to {}: {error}",
            redact_url(&settings.database_url)
        )
    })
}

/// The same pool, with every statement run through this handle counted in `query_count` (tests
/// read it to hold requests to a statement budget). Handles cloned from `db` before this call,
/// such as the event bus's, are not counted.
pub fn counted(db: &DatabaseConnection, query_count: Arc<AtomicU64>) -> DatabaseConnection {
    let mut counted = db.clone();
    counted.set_metric_callback(move |_| {
        query_count.fetch_add(1, Ordering::Relaxed);
    });
    counted
}

/// The file behind a `sqlite://path?…` URL, if it is one (not in-memory).
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}
