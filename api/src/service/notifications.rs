//! Email preferences: each admin's choice of notification emails, and resuming a chat from the
//! link in a visitor's email.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait};

use crate::auth::Viewer;
use crate::clock::now;
use crate::error::Result;
use entity::admin_notification_pref::{self, EmailPreference};
use entity::chat;

/// The signed-in admin's preference (every message, when never set).
pub async fn preference(db: &impl ConnectionTrait, viewer: &Viewer) -> Result<EmailPreference> {
    let admin = viewer.require_admin()?;
    Ok(admin_notification_pref::Entity::find_by_id(admin.id)
        .one(db)
        .await?
        .map_or(EmailPreference::All, |pref| pref.email))
}

pub async fn set_preference(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    email: EmailPreference,
) -> Result<EmailPreference> {
    let admin = viewer.require_admin()?;
    admin_notification_pref::Entity::insert(admin_notification_pref::ActiveModel {
        admin_id: Set(admin.id),
        email: Set(email),
        updated_at: Set(now()),
    })
    .on_conflict(
        OnConflict::column(admin_notification_pref::Column::AdminId)
            .update_columns([
                admin_notification_pref::Column::Email,
                admin_notification_pref::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(email)
}

/// The chat of a resume code and a fresh visitor token for it; `BAD_USER_INPUT` when the code
/// is unknown, used or expired.
pub async fn resume(db: &DatabaseConnection, code: &str) -> Result<(chat::Model, String)> {
    crate::notify::resume::redeem(db, code).await
}
