//! Credentials: visitor tokens, admin JWTs and passwords, and the `Viewer` they become.

pub mod admin_sessions;
pub mod jwt;
pub mod password;
pub mod viewer;
pub mod visitor_chats;
pub mod visitor_token;

pub use viewer::{Credentials, Viewer};
