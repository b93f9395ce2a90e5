//! SeaORM entities: one file a table, plain data, no logic.

pub mod admin;
pub mod admin_notification_pref;
pub mod chat;
pub mod chat_attachment;
pub mod chat_email_optout;
pub mod chat_erasure;
pub mod chat_event;
pub mod chat_message;
pub mod chat_resume_code;
pub mod outbox_job;
pub mod prelude;
pub mod site_setting;
pub mod webhook_delivery;
pub mod webhook_endpoint;

pub use sea_orm;
