//! The server starts, migrates, serves its routes, keeps its data, and exports its schema.

use crate::common;

use common::{Backend, graphql_at, spawn_app};
use serde_json::json;

async fn health_routes_and_upload_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.text().await.unwrap(), "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);

    let data = app
        .data(
            "{ uploadPolicy { maxFiles maxFileBytes allowedExtensions maxMessageChars } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(data["uploadPolicy"]["maxFiles"], 3);
    assert_eq!(data["uploadPolicy"]["maxFileBytes"], 10_485_760);
    assert_eq!(data["uploadPolicy"]["maxMessageChars"], 5000);
    assert!(
        data["uploadPolicy"]["allowedExtensions"]
            .as_array()
            .unwrap()
            .contains(&json!("pdf"))
    );

    // A browser opening /graphql gets the API explorer (other GETs run queries).
    let explorer = app.get_accepting("/graphql", "text/html").await;
    assert_eq!(explorer.status(), 200);
    assert!(explorer.text().await.unwrap().contains("API explorer"));

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

async fn the_configured_admin_can_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.admin_token().await;
    let data = app
        .data("{ me { email name } }", json!({}), Some(&token))
        .await;
    assert_eq!(data["me"]["email"], common::ADMIN_EMAIL);
}

backend_tests!(
    health_routes_and_upload_policy,
    the_configured_admin_can_sign_in
);

#[tokio::test]
async fn data_and_admin_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/chatdesk.db?mode=rwc", dir.path().display());
    let start = |settings: api::Settings| async move {
        let app = api::Application::build(settings).await.unwrap();
        let port = app.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (port, stop, server)
    };
    let client = reqwest::Client::new();
    let (port, stop, server) = start(common::test_settings(&dir, &url)).await;
    let created = graphql_at(
        &client,
        &format!("http://127.0.0.1:{port}"),
        "mutation { startChat(input: { visitorName: \"Kim\" }) { chatToken chat { id } } }",
        json!({}),
        None,
    )
    .await;
    let token = created["data"]["startChat"]["chatToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat_id = created["data"]["startChat"]["chat"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let (port, _stop, _server) = start(common::test_settings(&dir, &url)).await;
    let again = graphql_at(
        &client,
        &format!("http://127.0.0.1:{port}"),
        &format!("{{ chat(id: \"{chat_id}\") {{ visitor {{ name }} }} }}"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(again["data"]["chat"]["visitor"]["name"], "Kim", "{again}");
}

#[test]
fn schema_file_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let on_disk =
        std::fs::read_to_string(path).expect("schema.graphql exists at the repository root");
    assert!(
        on_disk == api::graphql::sdl(),
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

/// Integrators read the API in GraphiQL: every type, field, argument-bearing input field and
/// enum value carries a description.
#[test]
fn every_type_and_field_is_documented() {
    use async_graphql_parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql_parser::parse_schema(api::graphql::sdl()).expect("the SDL parses");
    let mut missing = Vec::new();
    let mut checked = 0;
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = ty.node;
        let name = ty.name.node.to_string();
        if ty.description.is_none() && !["UUID", "DateTime", "Upload"].contains(&name.as_str()) {
            missing.push(name.clone());
        }
        match ty.kind {
            TypeKind::Object(object) => {
                for field in object.fields {
                    checked += 1;
                    if field.node.description.is_none() {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in input.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(values) => {
                for value in values.values {
                    if value.node.description.is_none() {
                        missing.push(format!("{name}.{}", value.node.value.node));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        checked > 50,
        "only {checked} fields seen: is the SDL parsed?"
    );
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}
