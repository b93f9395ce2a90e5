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
    let (url, cleanup) = common::test_database(&backend, dir.path()).await;
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

/// Admin messages stored their sender's email as the label visitors read, when the admin had
/// no name; the migration that ends that clears those labels and keeps every other.
async fn labels_that_were_an_admins_email_are_cleared(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, cleanup) = common::test_database(&backend, dir.path()).await;
    let db = Database::connect(&url).await.unwrap();
    let all = Migrator::migrations().len();
    Migrator::up(&db, Some((all - 1) as u32)).await.unwrap();
    let backend_kind = db.get_database_backend();
    let now = chrono::Utc::now();
    let (admin, chat) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let placeholders = |n: usize| -> String {
        (1..=n)
            .map(|i| match backend_kind {
                DbBackend::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend_kind,
        format!(
            "INSERT INTO admins (id, email, password_hash, password_changed_at, created_at) VALUES ({})",
            placeholders(5)
        ),
        [
            admin.into(),
            "ben@example.com".into(),
            "x".into(),
            now.into(),
            now.into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(Statement::from_sql_and_values(
        backend_kind,
        format!(
            "INSERT INTO chats (id, status, chat_token_hash, created_at, updated_at) VALUES ({})",
            placeholders(5)
        ),
        [
            chat.into(),
            "open".into(),
            "0".repeat(64).into(),
            now.into(),
            now.into(),
        ],
    ))
    .await
    .unwrap();
    for (sender, label) in [
        ("admin", "ben@example.com"),
        ("admin", "Anna Berg"),
        ("visitor", "ben@example.com"),
    ] {
        db.execute_raw(Statement::from_sql_and_values(
            backend_kind,
            format!(
                "INSERT INTO chat_messages (id, chat_id, sender_type, sender_label, message, created_at) VALUES ({})",
                placeholders(6)
            ),
            [
                uuid::Uuid::now_v7().into(),
                chat.into(),
                sender.into(),
                label.into(),
                "hello".into(),
                now.into(),
            ],
        ))
        .await
        .unwrap();
    }
    Migrator::up(&db, None).await.unwrap();
    let labels: Vec<(String, Option<String>)> = db
        .query_all_raw(Statement::from_string(
            backend_kind,
            "SELECT sender_type, sender_label FROM chat_messages ORDER BY id",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get::<String>("", "sender_type").unwrap(),
                row.try_get::<Option<String>>("", "sender_label").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("admin".to_owned(), None),
            ("admin".to_owned(), Some("Anna Berg".to_owned())),
            // A visitor may call themselves anything.
            ("visitor".to_owned(), Some("ben@example.com".to_owned())),
        ]
    );
    db.close().await.unwrap();
    if let Some((server, name)) = cleanup {
        common::drop_database(&server, &name).await;
    }
}

backend_tests!(
    all_migrations_go_up_and_down,
    labels_that_were_an_admins_email_are_cleared
);
