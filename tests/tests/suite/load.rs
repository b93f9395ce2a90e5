//! Load without loss (issue 9, point 7): 200 visitors at once, each sending a stream of
//! messages with `clientMessageId`s (and retrying some of them, as a flaky network would make
//! the widget do) for a bounded time. No request may fail, and afterwards every acknowledged
//! message is stored exactly once, in the order its visitor sent it. Throughput and latency are
//! printed for information only; they are measured by the benchmark, never asserted here.

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, spawn_app_with};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

const VISITORS: usize = 200;
const SENDING_FOR: Duration = Duration::from_secs(15);
const MAX_PER_VISITOR: usize = 60;
/// Every this many messages, the visitor sends the same message again (a retry).
const RETRY_EVERY: usize = 5;

const SEND: &str = "mutation($chatId: UUID!, $body: String, $key: String) { \
     sendMessage(chatId: $chatId, body: $body, clientMessageId: $key) { id clientMessageId } }";

struct Visitor {
    chat_id: String,
    acknowledged: Vec<(String, String)>,
    failures: Vec<String>,
    latencies: Vec<Duration>,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    variables: Value,
) -> Result<String, String> {
    let request = client
        .post(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .json(&json!({ "query": SEND, "variables": variables }));
    let response = request
        .send()
        .await
        .map_err(|error| format!("transport: {error}"))?;
    let status = response.status().as_u16();
    let answer: Value = response
        .json()
        .await
        .map_err(|error| format!("{status}: not JSON: {error}"))?;
    match answer["data"]["sendMessage"]["id"].as_str() {
        Some(id) if status == 200 && answer["errors"].is_null() => Ok(id.to_owned()),
        _ => Err(format!("{status}: {answer}")),
    }
}

async fn visitor(app: &common::TestApp, index: usize, deadline: Instant) -> Visitor {
    let (chat_id, token) = app.start_chat(Some(&format!("visitor {index}"))).await;
    let url = app.url("/graphql");
    let mut me = Visitor {
        chat_id: chat_id.clone(),
        acknowledged: Vec::new(),
        failures: Vec::new(),
        latencies: Vec::new(),
    };
    for seq in 0..MAX_PER_VISITOR {
        if Instant::now() >= deadline {
            break;
        }
        let key = format!("v{index}-m{seq}");
        let variables = json!({ "chatId": chat_id, "body": format!("message {seq}"), "key": key });
        let started = Instant::now();
        match send(&app.client, &url, &token, variables.clone()).await {
            Ok(id) => {
                me.latencies.push(started.elapsed());
                if seq % RETRY_EVERY == RETRY_EVERY - 1 {
                    match send(&app.client, &url, &token, variables).await {
                        Ok(again) if again == id => {}
                        Ok(again) => me.failures.push(format!(
                            "{key}: a retry stored a second copy {again} of {id}"
                        )),
                        Err(error) => me.failures.push(format!("{key} (retry): {error}")),
                    }
                }
                me.acknowledged.push((key, id));
            }
            Err(error) => me.failures.push(format!("{key}: {error}")),
        }
    }
    me
}

/// The two backends take turns: on two cores, both at once would measure the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn many_visitors_lose_nothing(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Every visitor here is 127.0.0.1: the test's usual 10,000 sends a minute for one address
    // are spent in ~15 s now that a send on Postgres is one statement. This test is about losing
    // nothing under load; the limits have tests of their own.
    let app = spawn_app_with(backend, |settings| settings.rate_send_per_min = 1_000_000).await;
    let started = Instant::now();
    let deadline = started + SENDING_FOR;
    let visitors = join_all((0..VISITORS).map(|index| visitor(&app, index, deadline))).await;
    let elapsed = started.elapsed();

    let failures: Vec<&String> = visitors.iter().flat_map(|v| &v.failures).collect();
    let mut latencies: Vec<Duration> = visitors.iter().flat_map(|v| v.latencies.clone()).collect();
    latencies.sort();
    let sent: usize = visitors.iter().map(|v| v.acknowledged.len()).sum();
    let percentile = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{VISITORS} visitors, {sent} messages acknowledged in {elapsed:?} ({:.0}/s); latency p50 {:?}, p99 {:?}; {} failures",
        sent as f64 / elapsed.as_secs_f64(),
        percentile(50),
        percentile(99),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        sent >= VISITORS * 2,
        "too little was sent to mean anything: {sent}"
    );

    for visitor in &visitors {
        let rows = entity::chat_message::Entity::find()
            .filter(
                entity::chat_message::Column::ChatId
                    .eq(uuid::Uuid::parse_str(&visitor.chat_id).unwrap()),
            )
            .order_by_asc(entity::chat_message::Column::CreatedAt)
            .order_by_asc(entity::chat_message::Column::Id)
            .all(&app.state.db)
            .await
            .expect("read back a thread");
        let stored: Vec<(String, String)> = rows
            .iter()
            .map(|row| {
                (
                    row.client_message_id.clone().unwrap_or_default(),
                    row.id.to_string(),
                )
            })
            .collect();
        assert_eq!(
            stored, visitor.acknowledged,
            "chat {}: what is stored is not what was acknowledged, once each, in order",
            visitor.chat_id
        );
    }
}

backend_tests!(many_visitors_lose_nothing);
