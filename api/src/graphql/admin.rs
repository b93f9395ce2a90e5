//! Sign-in and the signed-in admin.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::schema::{app, client_address, viewer};
use super::types::Admin;
use crate::clock::now;
use crate::service::admins;

type Result<T> = async_graphql::Result<T>;

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The signed-in admin.
    async fn me(&self, ctx: &Context<'_>) -> Result<Admin> {
        let admin = viewer(ctx).require_admin()?;
        Ok(admins::get(&app(ctx)?.db, admin.id).await?.into())
    }
}

/// A signed-in admin session.
#[derive(SimpleObject)]
pub struct AdminSession {
    /// An admin JWT for `Authorization: Bearer …`; valid for 12 hours or until the password changes.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who signed in.
    pub admin: Admin,
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Signs an admin in. Rate-limited per client address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AdminSession> {
        let app = app(ctx)?;
        app.limits.login(client_address(ctx)).await?;
        let admin = admins::authenticate(&app.db, &email, &password).await?;
        let (token, expires_at) = app.jwt.issue(admin.id, admin.password_changed_at, now())?;
        Ok(AdminSession {
            token,
            expires_at,
            admin: admin.into(),
        })
    }

    /// Sets the signed-in admin's display name, which visitors see on their replies (and in the
    /// widget's header). Trimmed, 1-60 characters, not an email address; a bad one is
    /// `BAD_USER_INPUT` with `extensions.field = "displayName"` and `extensions.reason` one of
    /// `EMPTY`, `TOO_LONG`, `LOOKS_LIKE_EMAIL`. Admins only.
    async fn update_my_profile(&self, ctx: &Context<'_>, display_name: String) -> Result<Admin> {
        let admin = viewer(ctx).require_admin()?;
        let app = app(ctx)?;
        let updated = admins::update_profile(&app.db, admin.id, &display_name).await?;
        app.admin_rows.forget(updated.id);
        Ok(updated.into())
    }
}
