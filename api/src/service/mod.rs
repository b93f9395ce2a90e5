//! The chat logic over the database: start, send, read, list, status. No GraphQL in here; each
//! function takes the viewer and decides what it may do.

pub mod admins;
pub mod chats;
pub mod cursor;
pub mod demo;
pub mod messages;
