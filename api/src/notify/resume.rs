//! Resume links: a one-time code, valid 7 days, that gives a visitor back their chat on any
//! device (the widget reads it from `#chatdesk-resume=` and exchanges it with `resumeChat`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};
use uuid::Uuid;

use crate::auth::visitor_token;
use crate::clock::now;
use crate::error::{Error, Result};
use entity::{chat, chat_resume_code};

pub const VALID_DAYS: i64 = 7;

/// A fresh code for the chat; only its hash is stored.
pub async fn create_code(db: &impl ConnectionTrait, chat_id: Uuid) -> Result<String, DbErr> {
    let bytes: [u8; 24] = rand::rng().random();
    let code = URL_SAFE_NO_PAD.encode(bytes);
    let at = now();
    chat_resume_code::Entity::insert(chat_resume_code::ActiveModel {
        code_hash: Set(visitor_token::hash(&code)),
        chat_id: Set(chat_id),
        expires_at: Set(at + chrono::Duration::days(VALID_DAYS)),
        used_at: Set(None),
        created_at: Set(at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(code)
}

/// Uses a code: the chat and a fresh visitor token for it. The chat is re-keyed to the new
/// token (one token a chat), so the link works once and the old browser's token stops opening
/// the chat on instances that had not remembered it yet.
pub async fn redeem(db: &DatabaseConnection, code: &str) -> Result<(chat::Model, String)> {
    let invalid = || Error::bad_input("this link was already used or has expired");
    let code = code.trim();
    if code.is_empty() || code.len() > 100 {
        return Err(invalid());
    }
    let txn = crate::service::begin_write(db).await?;
    let at = now();
    let used = chat_resume_code::Entity::update_many()
        .col_expr(chat_resume_code::Column::UsedAt, Expr::value(Some(at)))
        .filter(chat_resume_code::Column::CodeHash.eq(visitor_token::hash(code)))
        .filter(chat_resume_code::Column::UsedAt.is_null())
        .filter(chat_resume_code::Column::ExpiresAt.gt(at))
        .exec_with_returning(&txn)
        .await?;
    let Some(used) = used.into_iter().next() else {
        txn.rollback().await?;
        return Err(invalid());
    };
    let (token, token_hash) = visitor_token::generate();
    let chat = chat::Entity::update_many()
        .col_expr(chat::Column::ChatTokenHash, Expr::value(token_hash))
        .filter(chat::Column::Id.eq(used.chat_id))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(invalid)?;
    txn.commit().await?;
    Ok((chat, token))
}
