//! Chatdesk: a self-hosted support chat. The `chatdesk` binary is a thin CLI over this library.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod database;
pub mod domain;
pub mod downloads;
pub mod error;
pub mod files;
pub mod graphql;
pub mod limits;
pub mod memo;
pub mod notify;
pub mod realtime;
pub mod server;
pub mod service;
pub mod state;
pub mod storage;
pub mod web;
pub mod webhooks;

pub use app::Application;
pub use config::Settings;
