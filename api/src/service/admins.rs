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

/// The longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 60;

/// Checks a display name: trimmed and without control characters, 1 to
/// [`MAX_DISPLAY_NAME_CHARS`] characters, and not an email address (visitors see it, and an
/// admin's email is not theirs to see).
pub fn display_name(value: &str) -> Result<String> {
    let invalid = |reason, message: String| Error::InvalidField {
        field: "displayName",
        reason,
        message,
    };
    // Trimmed again: a stripped control character may have stood before a space.
    let cleaned = domain::short_text("displayName", Some(value), usize::MAX)?
        .unwrap_or_default()
        .trim()
        .to_owned();
    if cleaned.is_empty() {
        return Err(invalid(
            "EMPTY",
            "the display name must not be empty".into(),
        ));
    }
    if cleaned.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(invalid(
            "TOO_LONG",
            format!("the display name may be at most {MAX_DISPLAY_NAME_CHARS} characters"),
        ));
    }
    if matches!(domain::email(Some(&cleaned)), Ok(Some(_))) {
        return Err(invalid(
            "LOOKS_LIKE_EMAIL",
            "the display name is shown to visitors: use a name, not an email address".into(),
        ));
    }
    Ok(cleaned)
}

/// One or two capital letters for an avatar: the first letter of the first word and of the last
/// ("Anna Berg" → "AB", "anna" → "A"). A word's first letter or digit counts; a name of neither
/// (say an emoji) gives its first character.
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first_of = |word: &str| word.chars().find(|c| c.is_alphanumeric());
    let mut letters: Vec<char> = Vec::new();
    if let Some(c) = words.iter().find_map(|word| first_of(word)) {
        letters.push(c);
    }
    if words.len() > 1
        && let Some(c) = words.last().and_then(|word| first_of(word))
    {
        letters.push(c);
    }
    if letters.is_empty() {
        return name.trim().chars().take(1).collect();
    }
    letters.into_iter().flat_map(char::to_uppercase).collect()
}

/// Sets the signed-in admin's display name. Their earlier replies keep the name they were sent
/// with; replies from now on carry the new one (on every instance within seconds: the admin's
/// remembered row is forgotten here, and on Postgres announced to the others).
pub async fn update_profile(
    db: &impl ConnectionTrait,
    admin_id: Uuid,
    display_name: &str,
) -> Result<admin::Model> {
    let name = self::display_name(display_name)?;
    let admin = get(db, admin_id).await?;
    if admin.name.as_deref() == Some(name.as_str()) {
        return Ok(admin);
    }
    let mut active = admin.into_active_model();
    active.name = Set(Some(name));
    let admin = active.update(db).await?;
    announce_change(db, admin.id).await?;
    Ok(admin)
}

/// The display names of these admins, by id; admins without one are left out.
pub async fn display_names(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(admin::Entity::find()
        .filter(admin::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|admin| Some((admin.id, admin.name?)))
        .collect())
}

/// How many team members the widget's header may show.
pub const TEAM_SIZE: u64 = 5;

/// The admins visitors may see in the widget's header: those with a display name, most recently
/// signed in first.
pub async fn team(db: &impl ConnectionTrait) -> Result<Vec<admin::Model>> {
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::{NullOrdering, Order};
    Ok(admin::Entity::find()
        .filter(admin::Column::Name.is_not_null())
        .order_by_with_nulls(admin::Column::LastLoginAt, Order::Desc, NullOrdering::Last)
        .order_by_asc(admin::Column::CreatedAt)
        .limit(TEAM_SIZE)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_take_the_first_and_last_words() {
        assert_eq!(initials("Anna Berg"), "AB");
        assert_eq!(initials("anna"), "A");
        assert_eq!(initials("Jean-Luc  de la Picard"), "JP");
        assert_eq!(initials("  éva   örs "), "ÉÖ");
        assert_eq!(initials("(Support) Team"), "ST");
        assert_eq!(initials("🙂"), "🙂");
    }

    #[test]
    fn display_names_are_checked() {
        assert_eq!(display_name("  Anna Berg \n").unwrap(), "Anna Berg");
        let reason = |value: &str| match display_name(value) {
            Err(Error::InvalidField { reason, .. }) => reason,
            other => panic!("{value:?}: {other:?}"),
        };
        assert_eq!(reason("   "), "EMPTY");
        assert_eq!(reason("\u{7}\u{1b}"), "EMPTY");
        assert_eq!(reason(&"x".repeat(61)), "TOO_LONG");
        assert_eq!(display_name(&"é".repeat(60)).unwrap().chars().count(), 60);
        assert_eq!(reason("anna@example.com"), "LOOKS_LIKE_EMAIL");
        assert_eq!(display_name("Anna @ Support").unwrap(), "Anna @ Support");
    }
}
