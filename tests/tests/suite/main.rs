//! The integration tests, as one binary (zero2prod's `tests/api/main.rs`): each file a module,
//! `common` the one support module. One binary links the dependency graph once instead of once
//! a file (see the README's Tests section for the build times), and its tests share the
//! process: no test may set process-wide state (environment variables, a panic hook that
//! counts every panic, fixed ports) as if it were alone.
//!
//! `resilience_storage_s3` stays a binary of its own: the server reads its S3 endpoint from
//! `AWS_ENDPOINT_URL`, which that test points at a proxy before any thread starts.

#[macro_use]
mod common;

mod abuse_controls;
mod attachments;
mod authorization_matrix;
mod browser_admin;
mod browser_smoke;
mod browser_widget;
mod chat_api;
mod chat_list;
mod data_protection;
mod foundation;
mod fuzz_requests;
mod graphql_clients;
mod hardening;
mod hostile_input;
mod load;
mod migrations;
mod notifications;
mod query_plans;
mod realtime;
mod resilience_crash;
mod resilience_database;
mod resilience_storage;
mod several_instances;
mod webhooks;
