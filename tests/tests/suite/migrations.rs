//! The one migration set goes all the way up and all the way down, on both databases.

use crate::common;

use common::Backend;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

async fn table_names(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn all_migrations_go_up_and_down(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, cleanup) = match &backend {
        Backend::Sqlite => (
            format!("sqlite://{}/m.db?mode=rwc", dir.path().display()),
            None,
        ),
        Backend::Postgres(server) => {
            let name = format!("chatdesk_migrations_{}", uuid::Uuid::new_v4().simple());
            common::create_database(server, &name).await;
            (
                common::with_database(server, &name),
                Some((server.clone(), name)),
            )
        }
    };
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let tables = table_names(&db).await;
    for table in [
        "admins",
        "chats",
        "chat_messages",
        "chat_attachments",
        "chat_events",
    ] {
        assert!(
            tables.contains(&table.to_owned()),
            "{table} missing from {tables:?}"
        );
    }
    Migrator::down(&db, None).await.unwrap();
    let left: Vec<String> = table_names(&db)
        .await
        .into_iter()
        .filter(|t| t != "seaql_migrations" && !t.starts_with("sqlite_"))
        .collect();
    assert!(left.is_empty(), "tables left after down: {left:?}");
    // And up again from nothing, as a fresh install would.
    Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    if let Some((server, name)) = cleanup {
        common::drop_database(&server, &name).await;
    }
}

backend_tests!(all_migrations_go_up_and_down);
