//! Chatdesk: a self-hosted support chat. The `chatdesk` binary is a thin CLI over this library.

pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod storage;
