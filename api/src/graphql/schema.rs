//! The schema: its parts, its limits, and the per-request data resolvers read.

use std::net::{IpAddr, Ipv4Addr};

use async_graphql::{Context, MergedObject, Schema};

use super::admin::{AdminMutation, AdminQuery};
use super::chat::{ChatMutation, ChatQuery};
use super::notify::{NotifyMutation, NotifyQuery};
use super::selection::SelectionLimits;
use super::subscription::Subscription;
use super::webhooks::{WebhooksMutation, WebhooksQuery};
use crate::auth::Viewer;
use crate::error::Error;
use crate::state::AppState;

/// Reading chats, the signed-in admin, and the upload policy.
#[derive(MergedObject, Default)]
pub struct Query(ChatQuery, AdminQuery, NotifyQuery, WebhooksQuery);

/// Starting and answering chats, read marks, status, typing, and sign-in.
#[derive(MergedObject, Default)]
pub struct Mutation(
    ChatMutation,
    AdminMutation,
    NotifyMutation,
    WebhooksMutation,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

pub use super::selection::MAX_DEPTH;
pub const MAX_COMPLEXITY: usize = 600;
pub const MAX_DIRECTIVES: usize = 10;

/// The client's address, attached by the HTTP and WebSocket handlers.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub IpAddr);

fn builder() -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        // Depth (with introspection's own cap) and the field count: `selection.rs`.
        .extension(SelectionLimits)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(MAX_DIRECTIVES)
        // "Did you mean …?" hints would map the schema for anyone probing it.
        .disable_suggestions()
}

pub fn build_schema(state: AppState) -> AppSchema {
    let mut builder = builder();
    if !state.settings.introspection {
        builder = builder.disable_introspection();
    }
    builder.data(state).finish()
}

/// The SDL, as `chatdesk schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    // With `@specifiedBy` on DateTime, UUID and Upload, as introspection reports them.
    builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

pub fn app<'a>(ctx: &Context<'a>) -> Result<&'a AppState, Error> {
    ctx.data::<AppState>()
        .map_err(|_| Error::internal(anyhow::anyhow!("AppState missing from schema data")))
}

/// The request's viewer; anonymous when the handler attached none.
pub fn viewer<'a>(ctx: &Context<'a>) -> &'a Viewer {
    static ANONYMOUS: Viewer = Viewer::Anonymous;
    ctx.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
}

pub fn client_address(ctx: &Context<'_>) -> IpAddr {
    ctx.data_opt::<ClientAddress>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.0)
}
