//! SeaORM entities: one file a table, plain data, no logic.

pub mod admin;
pub mod chat;
pub mod chat_attachment;
pub mod chat_erasure;
pub mod chat_event;
pub mod chat_message;
pub mod prelude;

pub use sea_orm;
