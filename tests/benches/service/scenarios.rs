//! The scenarios: each runs against the service, then the same operation as plain SQL (or a
//! plain file write), back to back, and returns one row of the table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::sqlx::{self, AssertSqlSafe, Row as _};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::data::{self, DataSet};
use crate::gql::{self, Api};
use crate::report::{Row, Verdict};
use crate::server::{PostgresCpu, Server};
use crate::stats::{self, Measured, Samples};

pub struct Bench {
    pub server: Server,
    pub api: Api,
    pub admin_token: String,
    pub data: DataSet,
    pub warmup: Duration,
    pub measure: Duration,
    pub dir: PathBuf,
}

const MSG: &str = "id chatId sender senderLabel body createdAt readAt clientMessageId";
const ATTACHMENTS: &str = "attachments{id name mimeType sizeBytes}";

fn send_query() -> String {
    format!(
        "mutation($chatId:UUID!,$body:String,$clientMessageId:String){{sendMessage(chatId:$chatId,body:$body,clientMessageId:$clientMessageId){{{MSG}}}}}"
    )
}

fn history_query() -> String {
    format!(
        "query($id:UUID!){{chat(id:$id){{id messages(last:50){{edges{{cursor node{{{MSG} {ATTACHMENTS}}}}} pageInfo{{hasPreviousPage startCursor}}}}}}}}"
    )
}

const INBOX_ROW: &str = "id status visitor{name email phone} lastMessageAt unreadCount lastMessage{id sender body createdAt}";

fn inbox_query() -> String {
    format!(
        "query($filter:ChatFilter){{chats(filter:$filter,first:50){{edges{{cursor node{{{INBOX_ROW}}}}} pageInfo{{hasNextPage endCursor}}}}}}"
    )
}

/// The CPU time this bench process has used so far (its own sampling of Postgres included,
/// which is the same on both sides), in seconds.
fn client_cpu_secs() -> f64 {
    crate::server::process_cpu_secs(std::process::id())
}

/// A cheap deterministic spread of (worker, iteration) over `n`.
fn pick(worker: usize, n: u64, modulo: usize) -> usize {
    let mut z = (worker as u64) << 40 ^ n ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % modulo as u64) as usize
}

impl Bench {
    /// Runs the service side with the server's peak memory and CPU time around it.
    async fn service_side<F, Fut>(&self, workers: usize, work_per_op: f64, op: F) -> Sided
    where
        F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let idle_kib = self.server.rss_kib();
        self.server.reset_peak();
        let cpu_before = self.server.cpu_secs();
        let client_before = client_cpu_secs();
        let postgres = PostgresCpu::start(data::DATABASE);
        let mut measured =
            stats::closed_loop(workers, self.warmup, self.measure, work_per_op, op).await;
        let cpu = self.server.cpu_secs() - cpu_before;
        let client = client_cpu_secs() - client_before;
        measured.postgres_cpu_ms_per_op = Some(self.per_op(postgres.stop().await, &measured));
        measured.client_cpu_ms_per_op = Some(self.per_op(client, &measured));
        Sided {
            idle_kib,
            peak_kib: self.server.peak_kib(),
            cpu_ms_per_op: self.per_op(cpu, &measured),
            measured,
        }
    }

    /// CPU seconds over warm-up and measurement → ms per measured operation (the warm-up's
    /// share taken out in proportion to its time).
    fn per_op(&self, cpu_secs: f64, measured: &Measured) -> f64 {
        cpu_secs * 1000.0 / (measured.ops.max(1) as f64)
            * (measured.secs / (measured.secs + self.warmup.as_secs_f64()))
    }

    async fn raw_side<F, Fut>(&self, workers: usize, work_per_op: f64, op: F) -> Measured
    where
        F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let client_before = client_cpu_secs();
        let postgres = PostgresCpu::start(data::DATABASE);
        let mut measured =
            stats::closed_loop(workers, self.warmup, self.measure, work_per_op, op).await;
        let client = client_cpu_secs() - client_before;
        measured.postgres_cpu_ms_per_op = Some(self.per_op(postgres.stop().await, &measured));
        measured.client_cpu_ms_per_op = Some(self.per_op(client, &measured));
        measured
    }

    async fn raw_pool(&self, connections: u32) -> Result<sqlx::PgPool, String> {
        PgPoolOptions::new()
            .max_connections(connections)
            .min_connections(connections)
            .connect(&self.data.url)
            .await
            .map_err(|error| error.to_string())
    }

    /// sendMessage (text) from `clients` visitors, each on its own 16 chats, against
    /// BEGIN; INSERT message; UPDATE chat; COMMIT. `setup` completes the row's label.
    pub async fn send(&self, clients: usize, setup: &str) -> Result<Row, String> {
        const CHATS_PER_CLIENT: usize = 16;
        let first_chat = 2_000 + if clients > 8 { 200 } else { 0 };
        let chats: Arc<Vec<(Uuid, String, String)>> = Arc::new(
            (0..clients * CHATS_PER_CLIENT)
                .map(|k| {
                    let i = first_chat + k;
                    (
                        data::chat_id(i, self.data.t0),
                        data::token(i),
                        data::visitor_name(i),
                    )
                })
                .collect(),
        );
        let api = self.api.clone();
        let query = Arc::new(send_query());
        let service_chats = chats.clone();
        let service = self
            .service_side(clients, 1.0, move |worker, n| {
                let api = api.clone();
                let query = query.clone();
                let (chat_id, token, _) =
                    service_chats[worker * CHATS_PER_CLIENT + (n as usize % CHATS_PER_CLIENT)].clone();
                async move {
                    let client_id = Uuid::new_v4().to_string();
                    let data = api
                        .data(
                            &query,
                            json!({ "chatId": chat_id, "body": format!("bench message {worker}-{n}"), "clientMessageId": client_id }),
                            &token,
                        )
                        .await?;
                    expect(data["sendMessage"]["clientMessageId"] == client_id.as_str(), &data)
                }
            })
            .await;
        let pool = self.raw_pool(clients as u32).await?;
        let raw = self
            .raw_side(clients, 1.0, move |worker, n| {
                let pool = pool.clone();
                let (chat_id, _, name) =
                    chats[worker * CHATS_PER_CLIENT + (n as usize % CHATS_PER_CLIENT)].clone();
                async move {
                    let at = Utc::now();
                    let mut txn = pool.begin().await.map_err(|e| e.to_string())?;
                    sqlx::query(
                        "INSERT INTO chat_messages (id, chat_id, sender_type, sender_label, message, client_message_id, created_at) \
                         VALUES ($1, $2, 'visitor', $3, $4, $5, $6)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(chat_id)
                    .bind(name)
                    .bind(format!("bench message {worker}-{n}"))
                    .bind(Uuid::new_v4().to_string())
                    .bind(at)
                    .execute(&mut *txn)
                    .await
                    .map_err(|e| e.to_string())?;
                    sqlx::query(
                        "UPDATE chats SET last_message_at = $2, updated_at = $2, visitor_last_read_at = $2 WHERE id = $1",
                    )
                    .bind(chat_id)
                    .bind(at)
                    .execute(&mut *txn)
                    .await
                    .map_err(|e| e.to_string())?;
                    txn.commit().await.map_err(|e| e.to_string())
                }
            })
            .await;
        let ratio = ratio(&service.measured, &raw);
        let p99_factor = service.measured.p99_ms / raw.p99_ms.max(0.001);
        let met = ratio >= 0.6 && p99_factor <= 2.0;
        Ok(Row::compare(
            format!("sendMessage (text), {clients} clients{setup}"),
            clients.to_string(),
            "ops/s",
            service,
            raw,
            "≥ 0.6× raw tps; p99 ≤ 2× raw",
            Verdict::from(met),
            format!("p99 {p99_factor:.2}× raw"),
        ))
    }

    /// chat(id){messages(last:50)} on the busy chats (200 messages each), as their visitor,
    /// against one statement for the same page with its attachments.
    pub async fn history(&self, clients: usize) -> Result<Row, String> {
        let chats: Arc<Vec<(Uuid, String)>> = Arc::new(
            (0..data::BUSY_CHATS)
                .map(|i| (data::chat_id(i, self.data.t0), data::token(i)))
                .collect(),
        );
        let api = self.api.clone();
        let query = Arc::new(history_query());
        let service_chats = chats.clone();
        let service = self
            .service_side(clients, 1.0, move |worker, n| {
                let api = api.clone();
                let query = query.clone();
                let (chat_id, token) = service_chats[pick(worker, n, data::BUSY_CHATS)].clone();
                async move {
                    let data = api.data(&query, json!({ "id": chat_id }), &token).await?;
                    let edges = data["chat"]["messages"]["edges"]
                        .as_array()
                        .map_or(0, Vec::len);
                    expect(edges == 50, &data)
                }
            })
            .await;
        let pool = self.raw_pool(clients as u32).await?;
        let raw = self
            .raw_side(clients, 1.0, move |worker, n| {
                let pool = pool.clone();
                let (chat_id, _) = chats[pick(worker, n, data::BUSY_CHATS)].clone();
                async move {
                    let rows = sqlx::query(
                        "SELECT m.id, m.chat_id, m.sender_type, m.sender_label, m.message, m.client_message_id, m.created_at, \
                                a.id AS attachment_id, a.original_name, a.mime_type, a.size_bytes \
                         FROM (SELECT * FROM chat_messages WHERE chat_id = $1 ORDER BY created_at DESC, id DESC LIMIT 51) m \
                         LEFT JOIN chat_attachments a ON a.chat_message_id = m.id \
                         ORDER BY m.created_at, m.id",
                    )
                    .bind(chat_id)
                    .fetch_all(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
                    for row in &rows {
                        let _: (Uuid, Option<String>, chrono::DateTime<Utc>, Option<Uuid>) = (
                            row.try_get("id").map_err(|e| e.to_string())?,
                            row.try_get("message").map_err(|e| e.to_string())?,
                            row.try_get("created_at").map_err(|e| e.to_string())?,
                            row.try_get("attachment_id").map_err(|e| e.to_string())?,
                        );
                    }
                    if rows.len() == 51 {
                        Ok(())
                    } else {
                        Err(format!("{} rows", rows.len()))
                    }
                }
            })
            .await;
        let ratio = ratio(&service.measured, &raw);
        // Round two's line (issue 18), from round one's 0.4×.
        Ok(Row::compare(
            "history: chat(id){messages(last:50)}".into(),
            clients.to_string(),
            "ops/s",
            service,
            raw,
            "≥ 0.3× raw",
            Verdict::from(ratio >= 0.3),
            String::new(),
        ))
    }

    /// The first inbox page as an admin sees it, against one hand-written statement.
    pub async fn inbox(&self, clients: usize) -> Result<Row, String> {
        let api = self.api.clone();
        let token = Arc::new(self.admin_token.clone());
        let query = Arc::new(inbox_query());
        // The data set's promise, checked once: the newest chats have ~100 unread.
        let first = self.api.data(&query, json!({}), &token).await?;
        let unread = first["chats"]["edges"][0]["node"]["unreadCount"].as_i64();
        if unread != Some(data::BUSY_UNREAD as i64) {
            return Err(format!(
                "expected {} unread on the newest chat, got {unread:?}",
                data::BUSY_UNREAD
            ));
        }
        let service = self
            .service_side(clients, 1.0, move |_, _| {
                let api = api.clone();
                let query = query.clone();
                let token = token.clone();
                async move {
                    let data = api.data(&query, json!({}), &token).await?;
                    let edges = data["chats"]["edges"].as_array().map_or(0, Vec::len);
                    expect(edges == 50, &data)
                }
            })
            .await;
        let pool = self.raw_pool(clients as u32).await?;
        let raw = self
            .raw_side(clients, 1.0, move |_, _| {
                let pool = pool.clone();
                async move {
                    let rows = sqlx::query(AssertSqlSafe(raw_inbox_sql(None)))
                        .fetch_all(&pool)
                        .await
                        .map_err(|e| e.to_string())?;
                    decode_inbox(&rows)?;
                    if rows.len() == 51 {
                        Ok(())
                    } else {
                        Err(format!("{} rows", rows.len()))
                    }
                }
            })
            .await;
        let ratio = ratio(&service.measured, &raw);
        let met = ratio >= 0.5 && service.measured.p99_ms <= 50.0;
        Ok(Row::compare(
            "inbox: chats(first:50) + unreadCount, lastMessage, visitor".into(),
            clients.to_string(),
            "ops/s",
            service,
            raw,
            "≥ 0.5× raw; p99 ≤ 50 ms",
            Verdict::from(met),
            String::new(),
        ))
    }

    /// Inbox searches over a mix of terms (rare and common words, order numbers, names, an
    /// email), against the same page as one hand-written statement.
    pub async fn search(&self, clients: usize) -> Result<Row, String> {
        let terms: Arc<Vec<&'static str>> = Arc::new(SEARCH_TERMS.to_vec());
        let api = self.api.clone();
        let token = Arc::new(self.admin_token.clone());
        let query = Arc::new(inbox_query());
        let per_term: Arc<std::sync::Mutex<HashMap<&'static str, Vec<u64>>>> = Default::default();
        let service_terms = terms.clone();
        let service_per_term = per_term.clone();
        let service = self
            .service_side(clients, 1.0, move |worker, n| {
                let api = api.clone();
                let query = query.clone();
                let token = token.clone();
                let term = service_terms[(worker + n as usize) % service_terms.len()];
                let per_term = service_per_term.clone();
                async move {
                    let started = Instant::now();
                    let data = api
                        .data(&query, json!({ "filter": { "search": term } }), &token)
                        .await?;
                    if let Ok(mut map) = per_term.lock() {
                        map.entry(term)
                            .or_default()
                            .push(started.elapsed().as_micros() as u64);
                    }
                    expect(data["chats"]["edges"].is_array(), &data)
                }
            })
            .await;
        let pool = self.raw_pool(clients as u32).await?;
        let raw = self
            .raw_side(clients, 1.0, move |worker, n| {
                let pool = pool.clone();
                let term = terms[(worker + n as usize) % terms.len()];
                async move {
                    let rows = sqlx::query(AssertSqlSafe(raw_inbox_sql(Some("$1"))))
                        .bind(format!("%{term}%"))
                        .fetch_all(&pool)
                        .await
                        .map_err(|e| e.to_string())?;
                    decode_inbox(&rows)
                }
            })
            .await;
        let mut medians: Vec<String> = per_term
            .lock()
            .map(|map| {
                map.iter()
                    .map(|(term, micros)| {
                        let mut micros = micros.clone();
                        micros.sort_unstable();
                        format!("{term:?} p50 {:.1} ms", stats::percentile(&micros, 0.5))
                    })
                    .collect()
            })
            .unwrap_or_default();
        medians.sort();
        let ratio = ratio(&service.measured, &raw);
        let _ = ratio;
        Ok(Row::compare(
            "search: chats(filter:{search}) over 1M messages".into(),
            clients.to_string(),
            "ops/s",
            service.clone(),
            raw,
            "p95 ≤ 50 ms",
            Verdict::from(service.measured.p95_ms <= 50.0),
            format!(
                "service p95 {:.1} ms; {}",
                service.measured.p95_ms,
                medians.join(", ")
            ),
        ))
    }

    /// 16 visitors uploading a 10 MiB PDF each, over and over, against 16 writers of a
    /// 10 MiB file with fsync on the same file system.
    pub async fn uploads(&self, clients: usize) -> Result<Row, String> {
        const SIZE: usize = 10 * 1024 * 1024;
        let mut content = vec![0u8; SIZE];
        let header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
        content[..header.len()].copy_from_slice(header);
        let mut seed = 0x1234_5678_9ABC_DEF0u64;
        for byte in content[header.len()..SIZE - 8].iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = (seed >> 24) as u8;
        }
        content[SIZE - 8..].copy_from_slice(b"\n%%EOF\n\n");
        let content = bytes::Bytes::from(content);
        let chats: Arc<Vec<(Uuid, String)>> = Arc::new(
            (0..clients)
                .map(|k| {
                    (
                        data::chat_id(3_000 + k, self.data.t0),
                        data::token(3_000 + k),
                    )
                })
                .collect(),
        );
        let query = Arc::new(
            "mutation($chatId:UUID!,$file:Upload!){sendMessage(chatId:$chatId,attachments:[$file]){id attachments{id sizeBytes mimeType}}}"
                .to_owned(),
        );
        let api = self.api.clone();
        let service_content = content.clone();
        let mib = SIZE as f64 / (1024.0 * 1024.0);
        let service = self
            .service_side(clients, mib, move |worker, _| {
                let api = api.clone();
                let query = query.clone();
                let (chat_id, token) = chats[worker].clone();
                let content = service_content.clone();
                async move {
                    let data = api
                        .upload(
                            &query,
                            json!({ "chatId": chat_id, "file": null }),
                            &token,
                            "report.pdf",
                            "application/pdf",
                            content,
                        )
                        .await?;
                    expect(
                        data["sendMessage"]["attachments"][0]["sizeBytes"] == SIZE as u64,
                        &data,
                    )
                }
            })
            .await;
        let _ = std::fs::remove_dir_all(self.dir.join("postgres/uploads"));
        let raw_dir = Arc::new(self.dir.join("raw-writes"));
        std::fs::create_dir_all(raw_dir.as_path()).map_err(|e| e.to_string())?;
        let mut raw = self
            .raw_side(clients, mib, move |worker, n| {
                let dir = raw_dir.clone();
                let content = content.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        use std::io::Write;
                        let path = dir.join(format!("{worker}-{n}"));
                        let mut file = std::fs::File::create(&path)?;
                        file.write_all(&content)?;
                        file.sync_all()?;
                        drop(file);
                        std::fs::remove_file(&path)
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
                }
            })
            .await;
        let _ = std::fs::remove_dir_all(self.dir.join("raw-writes"));
        // The raw side writes files; Postgres is not part of it.
        raw.postgres_cpu_ms_per_op = None;
        let ratio = ratio(&service.measured, &raw);
        let growth_mib = service.peak_kib.saturating_sub(service.idle_kib) as f64 / 1024.0;
        let per_upload = growth_mib / clients as f64;
        let met = ratio >= 0.5 && per_upload <= 2.0;
        Ok(Row::compare(
            format!("10 MiB uploads, {clients} at once"),
            clients.to_string(),
            "MiB/s",
            service,
            raw,
            "≥ 0.5× raw fsynced write; peak RSS ≤ idle + 2 MiB per upload",
            Verdict::from(met),
            format!(
                "peak RSS idle + {growth_mib:.1} MiB = {per_upload:.2} MiB per upload in flight"
            ),
        ))
    }

    /// 10,000 visitors' widgets holding `chatEvents`, idle; a few events are then sent to
    /// check the sockets are live.
    pub async fn idle_sockets(&self, sockets: usize) -> Result<Row, String> {
        let query = "subscription($chatId:UUID!){chatEvents(chatId:$chatId){kind typing sender chat{id status unreadCount visitor{name email}} message{id body createdAt}}}";
        let before_kib = self.server.rss_kib();
        self.server.reset_peak();
        let opened = Arc::new(AtomicUsize::new(0));
        let closed_early = Arc::new(AtomicUsize::new(0));
        let events = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let gate = Arc::new(tokio::sync::Semaphore::new(128));
        let started = Instant::now();
        let first_chat = 10_000;
        let mut holders = Vec::with_capacity(sockets);
        let mut failures = Samples::default();
        let mut connect_micros = Vec::with_capacity(sockets);
        let mut pending = Vec::with_capacity(sockets);
        for k in 0..sockets {
            let gate = gate.clone();
            let port = self.server.port;
            let t0 = self.data.t0;
            pending.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                let i = first_chat + k;
                let began = Instant::now();
                let socket = gql::subscribe(
                    port,
                    &data::token(i),
                    query,
                    json!({ "chatId": data::chat_id(i, t0) }),
                )
                .await?;
                Ok::<_, String>((socket, began.elapsed()))
            }));
        }
        for task in pending {
            match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok((mut socket, took)) => {
                    connect_micros.push(took.as_micros() as u64);
                    opened.fetch_add(1, Ordering::Relaxed);
                    let closed_early = closed_early.clone();
                    let events = events.clone();
                    let mut stop = stop_rx.clone();
                    holders.push(tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = stop.changed() => break,
                                message = gql::next_message(&mut socket, Duration::from_secs(120)) => match message {
                                    Some(message) if message["type"] == "next" => {
                                        events.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Some(_) => {}
                                    None => {
                                        closed_early.fetch_add(1, Ordering::Relaxed);
                                        return;
                                    }
                                },
                            }
                        }
                        let _ = futures_util::SinkExt::close(&mut socket).await;
                    }));
                }
                Err(error) => {
                    failures.errors += 1;
                    failures.first_error.get_or_insert(error);
                }
            }
        }
        let open_secs = started.elapsed().as_secs_f64();
        // Let the server finish setting up the last subscriptions, then hold them idle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let held_kib = self.server.rss_kib();
        tokio::time::sleep(self.measure.min(Duration::from_secs(10))).await;
        // Live, not just open: events reach a sample of them.
        let sample = 20.min(sockets);
        let admin = self.admin_token.clone();
        for k in 0..sample {
            let chat_id = data::chat_id(first_chat + k * (sockets / sample.max(1)), self.data.t0);
            self.api
                .data(
                    &send_query(),
                    json!({ "chatId": chat_id, "body": "are you there?" }),
                    &admin,
                )
                .await?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while events.load(Ordering::Relaxed) < sample && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let still_open = opened.load(Ordering::Relaxed) - closed_early.load(Ordering::Relaxed);
        let peak_kib = self.server.peak_kib();
        let _ = stop_tx.send(true);
        for holder in holders {
            let _ = tokio::time::timeout(Duration::from_secs(10), holder).await;
        }
        connect_micros.sort_unstable();
        let per_socket_kib = held_kib.saturating_sub(before_kib) as f64 / sockets as f64;
        let delivered = events.load(Ordering::Relaxed);
        let errors = failures.errors
            + (sockets - still_open.min(sockets)) as u64
            + (sample.saturating_sub(delivered)) as u64;
        let measured = Measured {
            ops: opened.load(Ordering::Relaxed) as u64,
            errors,
            secs: open_secs,
            throughput: opened.load(Ordering::Relaxed) as f64 / open_secs,
            p50_ms: stats::percentile(&connect_micros, 0.5),
            p95_ms: stats::percentile(&connect_micros, 0.95),
            p99_ms: stats::percentile(&connect_micros, 0.99),
            first_error: failures.first_error,
            postgres_cpu_ms_per_op: None,
            client_cpu_ms_per_op: None,
        };
        let met = still_open == sockets && errors == 0;
        Ok(Row::single(
            format!("idle subscriptions ({sockets} sockets)"),
            sockets.to_string(),
            "sockets/s opened",
            Sided {
                idle_kib: before_kib,
                peak_kib,
                cpu_ms_per_op: 0.0,
                measured,
            },
            "10,000 held; RSS per socket reported (goal ≤ 30 KiB)",
            if met { Verdict::Met } else { Verdict::Missed },
            format!(
                "{still_open} held, {delivered}/{sample} sampled events delivered; RSS {:.1} → {:.1} MiB = {per_socket_kib:.1} KiB per socket (goal ≤ 30 KiB: {})",
                before_kib as f64 / 1024.0,
                held_kib as f64 / 1024.0,
                if per_socket_kib <= 30.0 {
                    "met"
                } else {
                    "missed"
                }
            ),
        ))
    }

    /// 500 visitors polling their chat every 5 s (the widget's fallback) while 50 others send
    /// a message a second each, every visitor on a connection of its own.
    pub async fn mixed(&self, pollers: usize, senders: usize) -> Result<Row, String> {
        let duration = self.measure + self.warmup;
        let first_chat = 20_000;
        let poll = Arc::new(format!(
            "query($id:UUID!,$after:String){{chat(id:$id){{id status unreadCount messages(first:50,after:$after){{edges{{cursor node{{{MSG} {ATTACHMENTS}}}}} pageInfo{{hasPreviousPage startCursor endCursor}}}} recent:messages(last:20){{edges{{node{{id clientMessageId readAt}}}}}}}}}}"
        ));
        let open = Arc::new(format!(
            "query($id:UUID!){{chat(id:$id){{id status unreadCount visitor{{name email}} messages(last:50){{edges{{cursor node{{{MSG} {ATTACHMENTS}}}}} pageInfo{{hasPreviousPage startCursor endCursor}}}}}}}}"
        ));
        let send = Arc::new(send_query());
        let sent = Arc::new(AtomicU64::new(0));
        self.server.reset_peak();
        let cpu_before = self.server.cpu_secs();
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for k in 0..pollers {
            let api = self.api.own_connection();
            let (poll, open) = (poll.clone(), open.clone());
            let i = first_chat + k;
            let chat_id = data::chat_id(i, self.data.t0);
            let token = data::token(i);
            tasks.push(tokio::spawn(async move {
                let mut samples = Samples::default();
                // Spread the first requests over the first 5 s, as page loads would be.
                tokio::time::sleep(Duration::from_millis((k as u64 * 5_000) / pollers as u64))
                    .await;
                let began = Instant::now();
                let result = api.data(&open, json!({ "id": chat_id }), &token).await;
                let mut after = result.as_ref().ok().and_then(|d| {
                    d["chat"]["messages"]["pageInfo"]["endCursor"]
                        .as_str()
                        .map(str::to_owned)
                });
                samples.record(began, result.map(|_| ()));
                let mut next = began + Duration::from_secs(5);
                let mut polls = 0;
                while next < deadline && polls < 1_000 {
                    tokio::time::sleep_until(next.into()).await;
                    next += Duration::from_secs(5);
                    polls += 1;
                    let began = Instant::now();
                    let result = api
                        .data(&poll, json!({ "id": chat_id, "after": after }), &token)
                        .await;
                    if let Ok(data) = &result
                        && let Some(cursor) =
                            data["chat"]["messages"]["pageInfo"]["endCursor"].as_str()
                    {
                        after = Some(cursor.to_owned());
                    }
                    samples.record(began, result.map(|_| ()));
                }
                ("poll", samples)
            }));
        }
        for k in 0..senders {
            let api = self.api.own_connection();
            let send = send.clone();
            let sent = sent.clone();
            // Senders write to the first pollers' chats, so their polls find new messages.
            let i = first_chat + k;
            let chat_id = data::chat_id(i, self.data.t0);
            let token = data::token(i);
            tasks.push(tokio::spawn(async move {
                let mut samples = Samples::default();
                let mut next = Instant::now() + Duration::from_millis((k as u64 * 1_000) / senders as u64);
                let mut n = 0u64;
                while next < deadline && n < 100_000 {
                    tokio::time::sleep_until(next.into()).await;
                    next += Duration::from_secs(1);
                    let began = Instant::now();
                    let client_id = Uuid::new_v4().to_string();
                    let result = api
                        .data(&send, json!({ "chatId": chat_id, "body": format!("mixed {k}-{n}"), "clientMessageId": client_id }), &token)
                        .await;
                    samples.record(began, result.map(|_| ()));
                    sent.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                ("send", samples)
            }));
        }
        let mut all = Samples::default();
        let mut by_kind: HashMap<&str, Samples> = HashMap::new();
        for task in tasks {
            match task.await {
                Ok((kind, samples)) => {
                    let entry = by_kind.entry(kind).or_default();
                    entry.micros.extend(samples.micros.iter().copied());
                    entry.errors += samples.errors;
                    all.merge(samples);
                }
                Err(error) => {
                    all.errors += 1;
                    all.first_error.get_or_insert(error.to_string());
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = self.server.cpu_secs() - cpu_before;
        let mut kinds: Vec<String> = by_kind
            .into_iter()
            .map(|(kind, samples)| {
                let m = samples.summarise(secs, 1.0);
                format!(
                    "{kind}: {} requests, p50 {:.1} ms, p99 {:.1} ms, {} errors",
                    m.ops, m.p50_ms, m.p99_ms, m.errors
                )
            })
            .collect();
        kinds.sort();
        let measured = all.summarise(secs, 1.0);
        let met = measured.errors == 0;
        Ok(Row::single(
            format!("mixed: {pollers} visitors polling / 5 s + {senders} sending 1/s"),
            format!("{}", pollers + senders),
            "req/s",
            Sided {
                idle_kib: 0,
                peak_kib: self.server.peak_kib(),
                cpu_ms_per_op: cpu * 1000.0 / measured.ops.max(1) as f64,
                measured,
            },
            "0 errors; p99 reported",
            Verdict::from(met),
            kinds.join("; "),
        ))
    }
}

/// The search terms, cycled: rare words, order numbers, names (one with a diacritic, in
/// another case), an email fragment, and one common word.
pub const SEARCH_TERMS: &[&str] = &[
    "chargeback",
    "ombudsman",
    "counterfeit",
    "escalation",
    "#48213",
    "#77019",
    "Schmidt",
    "ZOË",
    "grace.kim",
    "warranty",
];

/// The inbox page as one statement: the page by activity, the unread count and the newest
/// message of each chat. With `search`, the same page filtered by the best hand-written form of
/// the search: the newest 51 chats with a matching message united with the newest 51 whose
/// visitor matches, each branch planned on its own.
pub fn raw_inbox_sql(search: Option<&str>) -> String {
    let activity = "ORDER BY COALESCE(last_message_at, created_at) DESC, id DESC LIMIT 51";
    let filter = match search {
        Some(param) => format!(
            "WHERE c.id IN ((SELECT id FROM chats s WHERE EXISTS (SELECT 1 FROM chat_messages m \
             WHERE m.chat_id = s.id AND m.message ILIKE {param}) {activity}) \
             UNION (SELECT id FROM chats v WHERE (COALESCE(v.visitor_name, '') || ' ' || \
             COALESCE(v.visitor_email, '') || ' ' || COALESCE(v.visitor_phone, '')) ILIKE {param} \
             {activity}))"
        ),
        None => String::new(),
    };
    format!(
        "SELECT c.id, c.status, c.visitor_name, c.visitor_email, c.visitor_phone, c.last_message_at, c.created_at, \
                (SELECT count(*) FROM chat_messages u WHERE u.chat_id = c.id AND u.sender_type = 'visitor' \
                   AND u.created_at > COALESCE(c.admin_last_read_at, '-infinity')) AS unread, \
                lm.id AS last_id, lm.sender_type AS last_sender, lm.message AS last_body, lm.created_at AS last_at \
         FROM chats c \
         LEFT JOIN LATERAL (SELECT l.id, l.sender_type, l.message, l.created_at FROM chat_messages l \
                            WHERE l.chat_id = c.id ORDER BY l.created_at DESC, l.id DESC LIMIT 1) lm ON true \
         {filter} \
         ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT 51"
    )
}

fn decode_inbox(rows: &[sqlx::postgres::PgRow]) -> Result<(), String> {
    for row in rows {
        let _: (
            Uuid,
            String,
            Option<String>,
            i64,
            Option<Uuid>,
            Option<String>,
        ) = (
            row.try_get("id").map_err(|e| e.to_string())?,
            row.try_get("status").map_err(|e| e.to_string())?,
            row.try_get("visitor_name").map_err(|e| e.to_string())?,
            row.try_get("unread").map_err(|e| e.to_string())?,
            row.try_get("last_id").map_err(|e| e.to_string())?,
            row.try_get("last_body").map_err(|e| e.to_string())?,
        );
    }
    Ok(())
}

fn expect(ok: bool, data: &Value) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        let text = data.to_string();
        Err(format!("unexpected data: {}", &text[..text.len().min(300)]))
    }
}

fn ratio(service: &Measured, raw: &Measured) -> f64 {
    service.throughput / raw.throughput.max(1e-9)
}

/// One side of a scenario run against the server, with its memory and CPU.
#[derive(Clone, Debug, Default)]
pub struct Sided {
    pub measured: Measured,
    pub idle_kib: u64,
    pub peak_kib: u64,
    pub cpu_ms_per_op: f64,
}
