//! Database faults (issue 9, point 1).
//!
//! - Postgres restarts (cleanly, then as after a crash) while visitors keep sending: every
//!   message the API acknowledged is stored, exactly once, in order; requests during the outage
//!   fail fast with `UNAVAILABLE` instead of hanging or answering 200 with nothing stored; the
//!   service recovers by itself, subscriptions included. The cluster is the test's own
//!   (`initdb` into a temp folder, on a free port), so the shared server is untouched; it needs
//!   the Postgres binaries and a `postgres` OS user, and with `CHATDESK_REQUIRE_POSTGRES=1` their
//!   absence fails the test instead of skipping it.
//! - A pool held by slow queries answers new requests with a quick `UNAVAILABLE` (the 5 s acquire
//!   timeout), not an ever-growing queue. There is no setting for the pool size, so the test
//!   holds every connection of the server's own pool itself (`pg_sleep` on Postgres).

use crate::common;
use crate::common::resilience_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::ws::subscribe;
use common::{Backend, TestApp, error_code, spawn_app};
use resilience_support::PgCluster;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

const SEND: &str = "mutation($chatId: UUID!, $body: String, $key: String) { \
     sendMessage(chatId: $chatId, body: $body, clientMessageId: $key) { id body clientMessageId } }";
const INBOX: &str = "subscription { inboxEvents { kind chat { id } message { body } } }";

/// A request during an outage must be answered within this (the pool's acquire timeout is 5 s).
const FAIL_FAST: Duration = Duration::from_millis(6500);

#[derive(Debug, Clone)]
enum Outcome {
    Acknowledged(String),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Attempt {
    chat: usize,
    seq: usize,
    key: String,
    body: String,
    elapsed: Duration,
    outcome: Outcome,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    chat_id: &str,
    body: &str,
    key: &str,
) -> Outcome {
    let request = client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(
            &json!({ "query": SEND, "variables": { "chatId": chat_id, "body": body, "key": key } }),
        )
        .send();
    let response = match tokio::time::timeout(Duration::from_secs(30), request).await {
        Err(_) => return Outcome::Failed("no answer in 30 s".into()),
        Ok(Err(error)) => return Outcome::Failed(format!("transport: {error}")),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match (status, answer["data"]["sendMessage"]["id"].as_str()) {
        (200, Some(id)) if answer["errors"].is_null() => Outcome::Acknowledged(id.to_owned()),
        _ => Outcome::Failed(format!(
            "{status} {}",
            error_code(&answer).unwrap_or("no code")
        )),
    }
}

/// Sends until the database answers again; how long that took.
async fn recovery(app: &TestApp, token: &str, chat_id: &str) -> Duration {
    let started = Instant::now();
    for attempt in 0..60 {
        let key = format!("probe-{}", uuid::Uuid::now_v7());
        if let Outcome::Acknowledged(_) =
            send(&app.client, &app.address, token, chat_id, "probe", &key).await
        {
            return started.elapsed();
        }
        assert!(attempt < 59, "no recovery within {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_database_restarts() {
    let Some(cluster) = PgCluster::create().await else {
        return;
    };
    let app = spawn_app(Backend::Postgres(cluster.url())).await;
    let admin = app.admin_token().await;
    let mut chats = Vec::new();
    for n in 0..6 {
        chats.push(app.start_chat(Some(&format!("visitor {n}"))).await);
    }
    let mut inbox = subscribe(app.port, Some(&admin), INBOX, json!({})).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (index, (chat_id, token)) in chats.iter().cloned().enumerate() {
        let stop = stop.clone();
        let client = app.client.clone();
        let base = app.address.clone();
        clients.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            for seq in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("c{index}-{seq}");
                let body = format!("message {seq} from visitor {index}");
                let started = Instant::now();
                let outcome = send(&client, &base, &token, &chat_id, &body, &key).await;
                attempts.push(Attempt {
                    chat: index,
                    seq,
                    key,
                    body,
                    elapsed: started.elapsed(),
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            attempts
        }));
    }

    let (probe_chat, probe_token) = app.start_chat(Some("probe")).await;
    let mut recoveries = Vec::new();
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.stop(mode).await;
        // While it is down, readiness says so, quickly.
        let started = Instant::now();
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 503);
        assert!(
            started.elapsed() < FAIL_FAST,
            "readyz took {:?}",
            started.elapsed()
        );
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready["database"], "unavailable", "{ready}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.start().await;
        recoveries.push((mode, recovery(&app, &probe_token, &probe_chat).await));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut attempts = Vec::new();
    for client in clients {
        attempts.extend(client.await.expect("a client task"));
    }

    let acknowledged = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Acknowledged(_)))
        .count();
    let failed: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed(_)))
        .collect();
    let slowest_failure = failed.iter().map(|a| a.elapsed).max().unwrap_or_default();
    println!(
        "{} sends: {acknowledged} acknowledged, {} failed (slowest failure {slowest_failure:?}); recovered after {recoveries:?}",
        attempts.len(),
        failed.len()
    );
    assert!(acknowledged > 50, "the clients barely sent anything");
    assert!(
        !failed.is_empty(),
        "the outages were not noticed: the test is broken"
    );
    for attempt in &failed {
        let Outcome::Failed(reason) = &attempt.outcome else {
            unreachable!()
        };
        assert!(
            reason.ends_with("UNAVAILABLE"),
            "{}: failed with {reason}, not UNAVAILABLE",
            attempt.key
        );
        assert!(
            attempt.elapsed < FAIL_FAST,
            "{}: failed only after {:?}",
            attempt.key,
            attempt.elapsed
        );
    }

    // Retrying what failed (same key) stores it, or returns the copy whose answer was lost.
    for attempt in &failed {
        let (chat_id, token) = &chats[attempt.chat];
        let outcome = send(
            &app.client,
            &app.address,
            token,
            chat_id,
            &attempt.body,
            &attempt.key,
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Acknowledged(_)),
            "retry of {}: {outcome:?}",
            attempt.key
        );
    }

    // Every acknowledged message is stored once, with its body, in the order it was sent.
    for (index, (chat_id, _)) in chats.iter().enumerate() {
        let rows = entity::chat_message::Entity::find()
            .filter(
                entity::chat_message::Column::ChatId.eq(uuid::Uuid::parse_str(chat_id).unwrap()),
            )
            .order_by_asc(entity::chat_message::Column::CreatedAt)
            .order_by_asc(entity::chat_message::Column::Id)
            .all(&app.state.db)
            .await
            .expect("read back the messages");
        let mut by_key: HashMap<String, Vec<&entity::chat_message::Model>> = HashMap::new();
        for row in &rows {
            by_key
                .entry(row.client_message_id.clone().unwrap_or_default())
                .or_default()
                .push(row);
        }
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.chat == index).collect();
        for attempt in &mine {
            let stored = by_key.get(&attempt.key).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(
                stored.len(),
                1,
                "{} is stored {} times",
                attempt.key,
                stored.len()
            );
            assert_eq!(stored[0].message.as_deref(), Some(attempt.body.as_str()));
            if let Outcome::Acknowledged(id) = &attempt.outcome {
                assert_eq!(&stored[0].id.to_string(), id, "{}", attempt.key);
            }
        }
        assert_eq!(rows.len(), mine.len(), "no message nobody sent");
        // First tries that were acknowledged are in send order.
        let order: Vec<usize> = rows
            .iter()
            .filter_map(|row| {
                mine.iter()
                    .find(|a| Some(&a.key) == row.client_message_id.as_ref())
                    .filter(|a| matches!(a.outcome, Outcome::Acknowledged(_)))
                    .map(|a| a.seq)
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "out of order: {order:?}"
        );
    }

    // Subscriptions recover too: the inbox opened before the outages hears new messages again
    // (the LISTEN connection reconnects by itself), and a new subscription works.
    let (chat_id, token) = &chats[0];
    let mut heard = false;
    for n in 0..10 {
        let body = format!("after the storm {n}");
        app.send(token, chat_id, &body).await;
        let deadline = Instant::now() + Duration::from_millis(1500);
        while let Some(event) = inbox
            .next_event(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            assert!(event["errors"].is_null(), "{event}");
            if event["data"]["inboxEvents"]["message"]["body"] == body.as_str() {
                heard = true;
                break;
            }
        }
        if heard {
            break;
        }
    }
    assert!(heard, "the inbox subscription never delivered again");
    let mut fresh = subscribe(
        app.port,
        Some(token),
        "subscription($id: UUID!) { chatEvents(chatId: $id) { kind message { body } } }",
        json!({ "id": chat_id }),
    )
    .await;
    let mut delivered = false;
    for _ in 0..5 {
        app.send(&admin, chat_id, "a reply after the storm").await;
        if let Some(event) = fresh.next_event(Duration::from_millis(1500)).await {
            assert!(event["errors"].is_null(), "{event}");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "a new subscription never delivered");
    drop(app);
}

/// Holds every connection of the server's pool for `hold`: on Postgres each runs a slow query.
async fn exhaust_pool(
    app: &TestApp,
    backend: &Backend,
    hold: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut holders = Vec::new();
    match backend {
        Backend::Postgres(_) => {
            let pool = app.state.db.get_postgres_connection_pool().clone();
            let max = pool.options().get_max_connections();
            for _ in 0..max {
                let pool = pool.clone();
                holders.push(tokio::spawn(async move {
                    let mut connection = pool.acquire().await.expect("a connection to hold");
                    sea_orm::sqlx::query("SELECT pg_sleep($1)")
                        .bind(hold.as_secs_f64())
                        .execute(&mut *connection)
                        .await
                        .expect("a slow query");
                }));
            }
            let full = common::eventually(Duration::from_secs(10), || {
                let pool = pool.clone();
                async move { pool.size() == max && pool.num_idle() == 0 }
            })
            .await;
            assert!(full, "could not take the whole pool");
        }
        Backend::Sqlite => {
            let pool = app.state.db.get_sqlite_connection_pool().clone();
            let max = pool.options().get_max_connections();
            for _ in 0..max {
                let pool = pool.clone();
                holders.push(tokio::spawn(async move {
                    let connection = pool.acquire().await.expect("a connection to hold");
                    tokio::time::sleep(hold).await;
                    drop(connection);
                }));
            }
            let full = common::eventually(Duration::from_secs(10), || {
                let pool = pool.clone();
                async move { pool.size() == max && pool.num_idle() == 0 }
            })
            .await;
            assert!(full, "could not take the whole pool");
        }
    }
    holders
}

async fn an_exhausted_pool_fails_fast(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let admin = app.admin_token().await;
    let (chat_id, visitor) = app.start_chat(None).await;
    let hold = Duration::from_secs(14);
    let held_at = Instant::now();
    let holders = exhaust_pool(&app, &backend, hold).await;

    // Two waves of requests, the second while the first still waits: each request fails on its
    // own clock, so waiting requests do not pile up behind one another.
    let mut waves = Vec::new();
    for wave in 0..2 {
        if wave == 1 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        for n in 0..15 {
            let client = app.client.clone();
            let base = app.address.clone();
            let (token, chat_id) = if n % 2 == 0 {
                (visitor.clone(), chat_id.clone())
            } else {
                (admin.clone(), chat_id.clone())
            };
            waves.push(tokio::spawn(async move {
                let started = Instant::now();
                let key = format!("w{wave}-{n}");
                let outcome = send(&client, &base, &token, &chat_id, "while full", &key).await;
                (outcome, started.elapsed())
            }));
        }
    }
    // The server itself stays responsive for what needs no database.
    let started = Instant::now();
    let policy = app
        .data("{ uploadPolicy { maxFiles } }", json!({}), None)
        .await;
    assert!(policy["uploadPolicy"]["maxFiles"].is_number());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "uploadPolicy waited on the pool"
    );
    let started = Instant::now();
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert!(started.elapsed() < FAIL_FAST);

    for wave in waves {
        let (outcome, elapsed) = wave.await.unwrap();
        match outcome {
            Outcome::Failed(reason) => assert!(reason.ends_with("UNAVAILABLE"), "{reason}"),
            Outcome::Acknowledged(_) => panic!("a send went through a full pool"),
        }
        assert!(elapsed < FAIL_FAST, "a request waited {elapsed:?}");
    }
    assert!(
        held_at.elapsed() < hold,
        "the requests must have failed while the pool was still held"
    );
    for holder in holders {
        holder.await.unwrap();
    }
    assert_eq!(
        resilience_support::message_count(&app.state.db, &chat_id).await,
        0,
        "nothing the failed requests sent was stored later"
    );
    // Free again: everything works, nothing was left queued.
    app.send(&visitor, &chat_id, "after the pool drained").await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        resilience_support::message_count(&app.state.db, &chat_id).await,
        1
    );
}

backend_tests!(an_exhausted_pool_fails_fast);
