//! The GraphQL API (SPEC §4): thin resolvers over `service`.

pub mod admin;
pub mod chat;
pub mod http;
pub mod multipart;
pub mod notify;
pub mod parsed_queries;
pub mod plain;
pub mod schema;
pub mod selection;
pub mod subscription;
pub mod types;
pub mod webhooks;
pub mod websocket;

pub use schema::{AppSchema, build_schema, sdl};
