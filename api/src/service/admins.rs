//! Admin accounts: create, change password, list, sign in, and the first admin at start-up.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Statement,
};
use uuid::Uuid;

use crate::auth::password;
use crate::clock::now;
use crate::domain;
use crate::error::{Error, Result};
use entity::admin;

pub async fn create(
    db: &impl ConnectionTrait,
    email: &str,
    name: Option<&str>,
    password: &str,
) -> Result<admin::Model> {
    let email = domain::email(Some(email))?.ok_or_else(|| Error::bad_input("email is required"))?;
    let name = domain::short_text("name", name, 200)?;
    password::check_strength(password, &[email.as_str(), name.as_deref().unwrap_or("")])?;
    if find_by_email(db, &email).await?.is_some() {
        return Err(Error::bad_input(format!(
            "an admin with email {email} exists already"
        )));
    }
    let password_hash = password::hash(password.to_owned()).await?;
    let at = now();
    Ok(admin::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        name: Set(name),
        password_hash: Set(password_hash),
        password_changed_at: Set(at),
        created_at: Set(at),
        last_login_at: Set(None),
    }
    .insert(db)
    .await?)
}

/// Changes the password; every JWT issued before is refused from now on.
pub async fn set_password(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
) -> Result<admin::Model> {
    let email = email.trim().to_lowercase();
    password::check_strength(password, &[email.as_str()])?;
    let admin = find_by_email(db, &email)
        .await?
        .ok_or(Error::NotFound("admin"))?;
    let password_hash = password::hash(password.to_owned()).await?;
    let mut active = admin.into_active_model();
    active.password_hash = Set(password_hash);
    active.password_changed_at = Set(now());
    let admin = active.update(db).await?;
    announce_change(db, admin.id).await?;
    Ok(admin)
}

/// Tells every instance on this Postgres database to forget what it remembers of the admin, so
/// that its old sessions end within seconds. On SQLite (one instance) the remembered row
/// expires on its own (`auth::admin_sessions::ROW_TTL`).
async fn announce_change(db: &impl ConnectionTrait, admin_id: Uuid) -> Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                crate::auth::admin_sessions::CHANNEL.into(),
                admin_id.to_string().into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<admin::Model>> {
    Ok(admin::Entity::find()
        .order_by_asc(admin::Column::CreatedAt)
        .all(db)
        .await?)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<admin::Model> {
    admin::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("admin"))
}

async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<admin::Model>> {
    Ok(admin::Entity::find()
        .filter(admin::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?)
}

/// Checks a sign-in. Unknown email and wrong password look the same, and take the same time:
/// an unknown email still pays for one hash verification.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
) -> Result<admin::Model> {
    let found = find_by_email(db, email).await?;
    let stored_hash = found
        .as_ref()
        .map_or_else(|| DUMMY_HASH.to_owned(), |a| a.password_hash.clone());
    let ok = password::verify(password.to_owned(), stored_hash).await?;
    match found {
        Some(admin) if ok => {
            let mut active = admin.into_active_model();
            active.last_login_at = Set(Some(now()));
            Ok(active.update(db).await?)
        }
        _ => Err(Error::WrongCredentials),
    }
}

/// An argon2id hash of a random string, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$n7Z2WmXjGxTEtfaD8/GVwThe1VnRZNlhDCEsU2B7r6I";

/// With no admin yet, creates one from the configured email/password, or `admin@localhost` with
/// a random password. Returns the generated password so the caller can print it once.
pub async fn ensure_first_admin(
    db: &impl ConnectionTrait,
    email: Option<&str>,
    password: Option<&str>,
) -> Result<Option<(admin::Model, Option<String>)>> {
    if admin::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let email = email.unwrap_or("admin@localhost");
    let (password, generated) = match password {
        Some(password) => (password.to_owned(), None),
        None => {
            let bytes: [u8; 15] = rand::rng().random();
            let password = URL_SAFE_NO_PAD.encode(bytes);
            (password.clone(), Some(password))
        }
    };
    let admin = create(db, email, Some("Admin"), &password).await?;
    Ok(Some((admin, generated)))
}
