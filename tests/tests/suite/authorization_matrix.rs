//! Who may do what (issue 9, point 6): every operation of the API and the file route, against
//! every kind of credential, must give exactly the answer SPEC §4/§5 promise; and a visitor of
//! another chat, or a bad credential, learns nothing about the chat through errors or counts.
//! The observed matrix is printed (`--nocapture`) and shown whole when a cell is wrong.

use crate::common;
use crate::common::resilience_support;

use std::time::Duration;

use api::auth::jwt::JwtKeys;
use common::ws::subscribe;
use common::{ADMIN_EMAIL, Backend, TestApp, error_code, spawn_app};
use resilience_support::{local_url, upload};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    None,
    Garbage,
    ForgedVisitorToken,
    ExpiredJwt,
    JwtOfChangedPassword,
    VisitorOfThisChat,
    VisitorOfAnotherChat,
    Admin,
}

use Credential as C;

const CREDENTIALS: [Credential; 8] = [
    C::None,
    C::Garbage,
    C::ForgedVisitorToken,
    C::ExpiredJwt,
    C::JwtOfChangedPassword,
    C::VisitorOfThisChat,
    C::VisitorOfAnotherChat,
    C::Admin,
];

impl Credential {
    fn short(self) -> &'static str {
        match self {
            C::None => "none",
            C::Garbage => "garbage",
            C::ForgedVisitorToken => "forged vt",
            C::ExpiredJwt => "expired",
            C::JwtOfChangedPassword => "old pw",
            C::VisitorOfThisChat => "visitor",
            C::VisitorOfAnotherChat => "other vis",
            C::Admin => "admin",
        }
    }

    fn is_bad(self) -> bool {
        matches!(
            self,
            C::None | C::Garbage | C::ForgedVisitorToken | C::ExpiredJwt | C::JwtOfChangedPassword
        )
    }
}

const OPERATIONS: [&str; 19] = [
    "query chat",
    "query statusEvents",
    "query chats",
    "query me",
    "query uploadPolicy",
    "mutation startChat",
    "mutation sendMessage",
    "mutation markChatRead",
    "mutation updateVisitor",
    "mutation setChatStatus",
    "mutation setTyping",
    "mutation login",
    "mutation updateMyProfile",
    "subscription chatEvents",
    "subscription inboxEvents",
    "GET file",
    "GET thumbnail",
    "GET file (signed link)",
    "GET file (tampered link)",
];

/// What SPEC §4 and §5 promise.
fn expected(operation: &str, credential: Credential) -> &'static str {
    let chat_scoped = |credential: Credential| match credential {
        C::VisitorOfThisChat | C::Admin => "ok",
        C::VisitorOfAnotherChat => "FORBIDDEN",
        _ => "UNAUTHENTICATED",
    };
    let admin_only = |credential: Credential| match credential {
        C::Admin => "ok",
        C::VisitorOfThisChat | C::VisitorOfAnotherChat => "FORBIDDEN",
        _ => "UNAUTHENTICATED",
    };
    match operation {
        "query uploadPolicy" | "mutation startChat" | "mutation login" => "ok",
        "query chats"
        | "query me"
        | "mutation setChatStatus"
        | "mutation updateMyProfile"
        | "subscription inboxEvents" => admin_only(credential),
        "GET file" | "GET thumbnail" => match credential {
            C::VisitorOfThisChat | C::Admin => "200",
            _ => "404",
        },
        // A signed link works for whoever holds it, whatever else the request carries; a
        // tampered one for nobody.
        "GET file (signed link)" => "200",
        "GET file (tampered link)" => "404",
        _ => chat_scoped(credential),
    }
}

/// Strings of the chat under test that no outsider may ever see.
const SECRET_NAME: &str = "Secret Sam 7f3c";
const SECRET_EMAIL: &str = "secret.sam.7f3c@example.com";
const SECRET_BODY: &str = "my secret order number is 7f3c-991";
const NEW_PASSWORD: &str = "a brand new password 7f3c";

struct World {
    this_chat: String,
    other_chat: String,
    attachment_id: String,
    signed_url: String,
    /// A second admin session, to cause events for subscribers.
    trigger: String,
}

fn graphql_for(operation: &str, chat_id: &str) -> (String, Value) {
    let id = json!({ "id": chat_id });
    match operation {
        "query chat" => (
            "query($id: UUID!) { chat(id: $id) { id visitor { name email } unreadCount \
             lastMessage { body } messages(last: 10) { edges { node { body } } } } }"
                .into(),
            id,
        ),
        "query chats" => (
            "{ chats { totalCount edges { node { id visitor { name } } } } }".into(),
            json!({}),
        ),
        "query me" => ("{ me { id email } }".into(), json!({})),
        "query statusEvents" => (
            "query($id: UUID!) { chat(id: $id) { statusEvents { id from to by } } }".into(),
            id,
        ),
        "mutation updateMyProfile" => (
            "mutation { updateMyProfile(displayName: \"Probe Person\") { id name } }".into(),
            json!({}),
        ),
        "query uploadPolicy" => ("{ uploadPolicy { maxFiles maxFileBytes } }".into(), json!({})),
        "mutation startChat" => (
            "mutation { startChat(input: { visitorName: \"probe\" }) { chat { id } } }".into(),
            json!({}),
        ),
        "mutation sendMessage" => (
            "mutation($id: UUID!) { sendMessage(chatId: $id, body: \"hello\") { id chatId } }"
                .into(),
            id,
        ),
        "mutation markChatRead" => (
            "mutation($id: UUID!) { markChatRead(chatId: $id) { id unreadCount } }".into(),
            id,
        ),
        "mutation updateVisitor" => (
            "mutation($id: UUID!, $name: String) { updateVisitor(chatId: $id, input: { name: $name }) { id visitor { name } } }"
                .into(),
            json!({ "id": chat_id, "name": SECRET_NAME }),
        ),
        "mutation setChatStatus" => (
            "mutation($id: UUID!) { setChatStatus(chatId: $id, status: PENDING) { id status } }"
                .into(),
            id,
        ),
        "mutation setTyping" => (
            "mutation($id: UUID!) { setTyping(chatId: $id, typing: true) }".into(),
            id,
        ),
        "mutation login" => (
            "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { expiresAt } }"
                .into(),
            json!({ "email": ADMIN_EMAIL, "password": NEW_PASSWORD }),
        ),
        other => unreachable!("{other} is not a GraphQL operation"),
    }
}

/// Runs one cell: (outcome, the whole answer as text, for the leak checks).
async fn run(
    app: &TestApp,
    world: &World,
    operation: &str,
    chat_id: &str,
    token: Option<&str>,
) -> (String, String) {
    if let Some(subscription) = operation.strip_prefix("subscription ") {
        return run_subscription(app, world, subscription, chat_id, token).await;
    }
    if let Some(route) = operation.strip_prefix("GET ") {
        let attachment = if chat_id == world.this_chat {
            world.attachment_id.clone()
        } else {
            uuid::Uuid::now_v7().to_string()
        };
        let url = match route {
            "file" => app.url(&format!("/api/chat/files/{attachment}")),
            "thumbnail" => app.url(&format!("/api/chat/files/{attachment}/thumbnail")),
            "file (signed link)" => world.signed_url.clone(),
            "file (tampered link)" => {
                let mut url = world.signed_url.clone();
                let last = url.pop().unwrap_or('A');
                url.push(if last == 'A' { 'B' } else { 'A' });
                url
            }
            other => unreachable!("{other}"),
        };
        let mut request = app.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET sent");
        let status = response.status().as_u16().to_string();
        let body = if status == "200" {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        return (status, body);
    }
    let (query, variables) = graphql_for(operation, chat_id);
    let answer = app.graphql(&query, variables, token).await;
    (outcome(&answer), answer.to_string())
}

fn outcome(answer: &Value) -> String {
    match error_code(answer) {
        Some(code) => code.to_owned(),
        None if answer["errors"].is_null() && answer["data"].is_object() => "ok".into(),
        None => format!("odd: {answer}"),
    }
}

async fn run_subscription(
    app: &TestApp,
    world: &World,
    subscription: &str,
    chat_id: &str,
    token: Option<&str>,
) -> (String, String) {
    let (query, variables) = match subscription {
        "chatEvents" => (
            "subscription($id: UUID!) { chatEvents(chatId: $id) { kind chat { id visitor { name } } message { body } } }",
            json!({ "id": chat_id }),
        ),
        _ => (
            "subscription { inboxEvents { kind chat { id visitor { name } } message { body } } }",
            json!({}),
        ),
    };
    let mut socket = subscribe(app.port, token, query, variables).await;
    // The subscription may not be listening yet when the first event happens: try a few times.
    for _ in 0..3 {
        app.data(
            "mutation($id: UUID!) { sendMessage(chatId: $id, body: \"ping\") { id } }",
            json!({ "id": world.this_chat }),
            Some(&world.trigger),
        )
        .await;
        if let Some(event) = socket.next_event(Duration::from_millis(1500)).await {
            return (outcome(&event), event.to_string());
        }
    }
    ("no event".into(), String::new())
}

async fn set_up(app: &TestApp) -> (World, Vec<(Credential, Option<String>)>) {
    let (this_chat, visitor) = resilience_support_start(app, SECRET_NAME, SECRET_EMAIL).await;
    let (other_chat, other_visitor) = resilience_support_start(app, "Other", "o@example.com").await;
    app.send(&visitor, &this_chat, SECRET_BODY).await;
    let (status, sent) = upload(
        app,
        &visitor,
        &this_chat,
        Some(SECRET_BODY),
        &[("secret-plan.png", common::samples::png(64, 48))],
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let attachment = &sent["data"]["sendMessage"]["attachments"][0];
    let attachment_id = attachment["id"].as_str().expect("an attachment").to_owned();
    let signed_url = local_url(app, attachment["url"].as_str().expect("a signed url"));

    // A session issued before a password change, then the change.
    let old_session = app.admin_token().await;
    api::service::admins::set_password(&app.state.db, ADMIN_EMAIL, NEW_PASSWORD)
        .await
        .map_err(|error| error.message())
        .expect("password changed");
    let login = |password: &'static str| async move {
        app.data(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": ADMIN_EMAIL, "p": password }),
            None,
        )
        .await["login"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let admin = login(NEW_PASSWORD).await;
    let trigger = login(NEW_PASSWORD).await;
    let row = entity::admin::Entity::find()
        .filter(entity::admin::Column::Email.eq(ADMIN_EMAIL))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let secret = app
        .state
        .settings
        .jwt_secret
        .as_ref()
        .expect("tests configure a JWT secret")
        .expose()
        .to_owned();
    let (expired, _) = JwtKeys::new(secret.as_bytes())
        .issue(
            row.id,
            row.password_changed_at,
            chrono::Utc::now() - chrono::Duration::hours(13),
        )
        .expect("issue a JWT");
    let forged = format!("vt_{}", "A".repeat(43));
    let credentials = vec![
        (C::None, None),
        (C::Garbage, Some("not-a-token".to_owned())),
        (C::ForgedVisitorToken, Some(forged)),
        (C::ExpiredJwt, Some(expired)),
        (C::JwtOfChangedPassword, Some(old_session)),
        (C::VisitorOfThisChat, Some(visitor)),
        (C::VisitorOfAnotherChat, Some(other_visitor)),
        (C::Admin, Some(admin)),
    ];
    let world = World {
        this_chat,
        other_chat,
        attachment_id,
        signed_url,
        trigger,
    };
    (world, credentials)
}

async fn resilience_support_start(app: &TestApp, name: &str, email: &str) -> (String, String) {
    let data = app
        .data(
            "mutation($n: String, $e: String) { startChat(input: { visitorName: $n, visitorEmail: $e }) { chatToken chat { id } } }",
            json!({ "n": name, "e": email }),
            None,
        )
        .await;
    (
        data["startChat"]["chat"]["id"].as_str().unwrap().to_owned(),
        data["startChat"]["chatToken"].as_str().unwrap().to_owned(),
    )
}

async fn every_operation_against_every_credential(backend: Backend) {
    let app = spawn_app(backend).await;
    let (world, credentials) = set_up(&app).await;
    let other_admin_message = "the admin wrote to the other chat";
    let admin = credentials[7].1.clone().unwrap();
    app.send(&admin, &world.other_chat, other_admin_message)
        .await;

    let mut table = vec![format!(
        "{:<26}|{}",
        "operation \\ credential",
        CREDENTIALS
            .iter()
            .map(|c| format!("{:^11}", c.short()))
            .collect::<Vec<_>>()
            .join("|")
    )];
    let mut wrong = Vec::new();
    let mut leaks = Vec::new();
    for operation in OPERATIONS {
        let mut cells = Vec::new();
        for (credential, token) in &credentials {
            let (got, text) =
                run(&app, &world, operation, &world.this_chat, token.as_deref()).await;
            let want = expected(operation, *credential);
            let cell = if got == want {
                got.replace("UNAUTHENTICATED", "UNAUTH")
                    .replace("FORBIDDEN", "FORBID")
            } else {
                wrong.push(format!(
                    "{operation} as {credential:?}: expected {want}, got {got}"
                ));
                format!("✗{}", &got[..got.len().min(9)])
            };
            cells.push(format!("{cell:^11}"));

            let outsider = credential.is_bad() || *credential == C::VisitorOfAnotherChat;
            if outsider {
                for secret in [SECRET_NAME, SECRET_EMAIL, SECRET_BODY, "secret-plan"] {
                    if text.contains(secret) {
                        leaks.push(format!("{operation} as {credential:?} shows {secret:?}"));
                    }
                }
                // Probing the chat must look exactly like probing a chat that does not exist.
                if operation != "GET file (signed link)" && operation != "GET file (tampered link)"
                {
                    let missing = uuid::Uuid::now_v7().to_string();
                    let (got_missing, text_missing) =
                        run(&app, &world, operation, &missing, token.as_deref()).await;
                    let scrub =
                        |text: &str| text.replace(&world.this_chat, "ID").replace(&missing, "ID");
                    let comparable = !operation.starts_with("mutation startChat")
                        && !operation.starts_with("mutation login")
                        && !operation.starts_with("query uploadPolicy")
                        && !operation.starts_with("subscription");
                    if comparable && (got_missing != got || scrub(&text_missing) != scrub(&text)) {
                        leaks.push(format!(
                            "{operation} as {credential:?}: the chat answers {got} {text}, a missing one {got_missing} {text_missing}"
                        ));
                    }
                }
            }
        }
        table.push(format!("{operation:<26}|{}", cells.join("|")));
    }
    let table = table.join("\n");
    println!("{table}");
    assert!(
        wrong.is_empty(),
        "answers differ from the SPEC:\n{}\n\n{table}",
        wrong.join("\n")
    );
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));

    // Counts: the other visitor's view of its own chat is untouched by everything above.
    let own = app
        .data(
            "query($id: UUID!) { chat(id: $id) { unreadCount lastMessage { body } messages(last: 50) { edges { node { body } } } } }",
            json!({ "id": world.other_chat }),
            credentials[6].1.as_deref(),
        )
        .await;
    assert_eq!(own["chat"]["unreadCount"], 1, "{own}");
    assert_eq!(own["chat"]["lastMessage"]["body"], other_admin_message);
    assert_eq!(
        own["chat"]["messages"]["edges"].as_array().map(Vec::len),
        Some(1),
        "{own}"
    );
    // An admin asking for a chat that does not exist gets null, not an error.
    let missing = app
        .data(
            "query($id: UUID!) { chat(id: $id) { id } }",
            json!({ "id": uuid::Uuid::now_v7() }),
            Some(&admin),
        )
        .await;
    assert!(missing["chat"].is_null(), "{missing}");
}

backend_tests!(every_operation_against_every_credential);
