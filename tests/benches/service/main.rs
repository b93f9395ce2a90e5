//! The service measured against the raw database, in one run:
//!
//! ```sh
//! cargo bench -p tests --bench service
//! ```
//!
//! Builds the release `chatdesk`, prepares (or reuses) a Postgres data set of 100k chats and 1M
//! messages in a database of its own, starts the server as a child process, and runs each
//! scenario against the service and then the same operation as plain SQL through sqlx (or a
//! plain fsynced file write), back to back. Prints one table and writes it as JSON to
//! `target/bench/service.json`. The server's memory is read from /proc (VmRSS, VmHWM).
//!
//! Environment: `BENCH_DATABASE_URL` (the Postgres server; default
//! postgres://postgres@127.0.0.1:5432/postgres), `BENCH_SECS` (measured seconds per side,
//! default 8), `BENCH_WARMUP_SECS` (default 2), `BENCH_ONLY` (comma list of scenarios:
//! inbox,history,search,send8,send32,uploads,sqlite,sockets,mixed,send8outbox), `BENCH_RUNS` (runs of each
//! compared scenario: 3 in the full run, 1 with `BENCH_ONLY`), `BENCH_RELOAD=1` (load the data
//! set again), `BENCH_SOCKETS` (default 10000), `BENCH_SERVER` (a `chatdesk` executable to run
//! instead of building one, e.g. an older build to compare with).
//!
//! Each compared scenario prints its ratio, the server's CPU per operation and the Postgres
//! backends' CPU per operation on both sides (from /proc), as the median of its runs with the
//! spread (min–max): CPU per operation hardly moves with the neighbours' load on a shared
//! machine, where throughput ratios swing.

mod data;
mod gql;
mod report;
mod scenarios;
mod server;
mod stats;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::sqlx::{self, Row as _};
use serde_json::json;
use uuid::Uuid;

use report::{Row, Verdict};
use scenarios::{Bench, Sided};
use server::Server;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn secs_from_env(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// How many times each compared scenario runs: `BENCH_RUNS`, else 3 for the full run and 1
/// when `BENCH_ONLY` picks scenarios (a quick look).
fn runs_from_env() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or_else(|| {
            if std::env::var("BENCH_ONLY").is_ok_and(|list| !list.trim().is_empty()) {
                1
            } else {
                3
            }
        })
}

fn wanted(name: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|item| item.trim() == name),
        _ => true,
    }
}

/// Runs every scenario; true when every target was met.
async fn run() -> Result<bool, String> {
    let started = Instant::now();
    let open_files = server::raise_open_files();
    let warmup = secs_from_env("BENCH_WARMUP_SECS", 2);
    let measure = secs_from_env("BENCH_SECS", 8);
    let runs = runs_from_env();
    let sockets: usize = std::env::var("BENCH_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);

    // A given executable (another build of the server, to compare against) skips the build.
    let (executable, build_time) = match std::env::var_os("BENCH_SERVER") {
        Some(path) => (std::path::PathBuf::from(path), Duration::ZERO),
        None => {
            eprintln!("bench: building the release server");
            server::build_release()?
        }
    };
    eprintln!(
        "bench: built in {:.1} s: {}",
        build_time.as_secs_f64(),
        executable.display()
    );

    let bench_dir = server::workspace().join("target/bench");
    std::fs::create_dir_all(&bench_dir).map_err(|e| e.to_string())?;

    eprintln!("bench: preparing the data set");
    let data_started = Instant::now();
    let data = data::prepare().await?;
    let data_secs = data_started.elapsed().as_secs_f64();
    let postgres_version: String = sqlx::query("SHOW server_version")
        .fetch_one(&data.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| e.to_string())?;

    let _ = std::fs::remove_dir_all(bench_dir.join("postgres"));
    let server = Server::start(
        &executable,
        &data.url,
        &bench_dir.join("postgres"),
        "server",
        &[],
    )
    .await?;
    let api = gql::Api::new(server.port);
    let admin_token = login(&api).await?;
    let mut bench = Bench {
        server,
        api,
        admin_token,
        data,
        warmup,
        measure,
        dir: bench_dir.clone(),
    };
    eprintln!(
        "bench: server pid {} on port {}, idle RSS {:.1} MiB",
        bench.server.pid,
        bench.server.port,
        bench.server.rss_kib() as f64 / 1024.0
    );

    let mut rows: Vec<Row> = Vec::new();
    // Reads first, on the data as loaded; writes after (they move chats to the top).
    let plan: [(&str, &str); 9] = [
        ("inbox", "inbox"),
        ("history", "history"),
        ("search", "search"),
        ("send8", "sendMessage, 8 clients"),
        ("send32", "sendMessage, 32 clients"),
        ("uploads", "uploads"),
        ("mixed", "mixed load"),
        ("sockets", "idle subscriptions"),
        // Last: it restarts the server with email and a webhook endpoint, for good.
        ("send8outbox", "sendMessage, 8 clients, email + 1 webhook"),
    ];
    for (name, label) in plan {
        if !wanted(name) {
            continue;
        }
        // The service-only scenarios (no ratio to steady) run once.
        let times = if matches!(name, "mixed" | "sockets") {
            1
        } else {
            runs
        };
        if name == "send8outbox" {
            with_outbox(&mut bench, &executable, &bench_dir).await?;
        }
        let mut repeated = Vec::with_capacity(times);
        for run in 1..=times {
            eprintln!("bench: {label} (run {run} of {times})");
            let row = match name {
                "inbox" => bench.inbox(8).await,
                "history" => bench.history(8).await,
                "search" => bench.search(2).await,
                "send8" => bench.send(8, "").await,
                "send32" => bench.send(32, "").await,
                "send8outbox" => bench.send(8, ", email + 1 webhook").await,
                "uploads" => bench.uploads(16).await,
                "mixed" => bench.mixed(500, 50).await,
                _ => bench.idle_sockets(sockets).await,
            }?;
            if times > 1 {
                eprintln!("{}", report::table(std::slice::from_ref(&row)));
            }
            repeated.push(row);
        }
        let Some(row) = Row::combine(repeated) else {
            continue;
        };
        eprintln!("{}", report::table(std::slice::from_ref(&row)));
        rows.push(row);
    }
    let Bench { server, data, .. } = bench;
    server.stop();
    data::reset(&data.pool, data.t0).await?;
    data.pool.close().await;

    if wanted("sqlite") {
        let mut repeated = Vec::with_capacity(runs);
        for run in 1..=runs {
            eprintln!("bench: SQLite sendMessage, 1 writer (run {run} of {runs})");
            repeated
                .push(sqlite_send(&executable, &bench_dir.join("sqlite"), warmup, measure).await?);
        }
        if let Some(row) = Row::combine(repeated) {
            eprintln!("{}", report::table(std::slice::from_ref(&row)));
            rows.push(row);
        }
    }

    let total = started.elapsed().as_secs_f64();
    let machine = json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": memory_gib(),
        "postgres": postgres_version,
        "open_files_limit": open_files,
        "release_build_seconds": build_time.as_secs_f64(),
        "data_set_seconds": data_secs,
        "data_set_loaded_now": data.loaded_in.is_some(),
        "total_seconds": total,
        "measured_seconds_per_side": measure.as_secs(),
        "runs_per_scenario": runs,
        "warmup_seconds": warmup.as_secs(),
    });
    let table = report::table(&rows);
    println!(
        "\nChatdesk service vs raw database — {} cores, {:.0} GiB, Postgres {postgres_version}; release build {:.0} s, data set {:.0} s ({}), total {:.0} s\n",
        machine["nproc"],
        memory_gib(),
        build_time.as_secs_f64(),
        data_secs,
        if data.loaded_in.is_some() {
            "loaded"
        } else {
            "reused"
        },
        total,
    );
    println!("{table}");
    let json = report::json(&rows, machine);
    let path = bench_dir.join("service.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("written to {}", path.display());
    Ok(rows.iter().all(Row::met))
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

/// Restarts the bench's server with email notifications configured and one webhook endpoint
/// that wants every event (a receiver in this process answers 204), so that each visitor's
/// message also writes an email job and a delivery in its transaction, and the deliveries are
/// made while the scenario runs. The SMTP address is never dialled: the first email is due
/// minutes after the message.
async fn with_outbox(bench: &mut Bench, executable: &Path, bench_dir: &Path) -> Result<(), String> {
    let receiver = webhook_receiver().await?;
    let env = [
        ("CHATDESK_SMTP_URL", "smtp://127.0.0.1:9".to_owned()),
        ("CHATDESK_WEBHOOK_ALLOW_HTTP", "true".to_owned()),
        ("CHATDESK_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
    ];
    let server = Server::start(
        executable,
        &bench.data.url,
        &bench_dir.join("postgres"),
        "server-outbox",
        &env,
    )
    .await?;
    std::mem::replace(&mut bench.server, server).stop();
    bench.api = gql::Api::new(bench.server.port);
    bench.admin_token = login(&bench.api).await?;
    let events = bench
        .api
        .data("{webhookEventTypes}", json!({}), &bench.admin_token)
        .await?;
    bench
        .api
        .data(
            "mutation($input:CreateWebhookInput!){createWebhook(input:$input){webhook{id}}}",
            json!({ "input": { "url": format!("http://{receiver}/hook"), "events": events["webhookEventTypes"] } }),
            &bench.admin_token,
        )
        .await?;
    Ok(())
}

/// A webhook receiver that answers every request with 204, over keep-alive connections.
async fn webhook_receiver() -> Result<std::net::SocketAddr, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| error.to_string())?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer: Vec<u8> = Vec::with_capacity(8192);
                let mut chunk = [0u8; 8192];
                loop {
                    // A whole request: its head, then Content-Length bytes of body.
                    let whole = buffer
                        .windows(4)
                        .position(|window| window == b"\r\n\r\n")
                        .and_then(|end| {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length: usize = head
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|value| value.trim().parse().ok())
                                .unwrap_or(0);
                            (buffer.len() >= end + 4 + length).then_some(end + 4 + length)
                        });
                    if let Some(used) = whole {
                        buffer.drain(..used);
                        if socket
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                    }
                }
            });
        }
    });
    Ok(address)
}

async fn login(api: &gql::Api) -> Result<String, String> {
    let data = api
        .data(
            "mutation($email:String!,$password:String!){login(email:$email,password:$password){token}}",
            json!({ "email": server::ADMIN_EMAIL, "password": server::ADMIN_PASSWORD }),
            "",
        )
        .await?;
    data["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token in {data}"))
}

/// One visitor sending as fast as it can to a server on SQLite (its own file), against
/// BEGIN IMMEDIATE; INSERT; UPDATE; COMMIT on another file with the same schema, WAL and
/// synchronous=NORMAL (the server's settings).
async fn sqlite_send(
    executable: &Path,
    dir: &Path,
    warmup: Duration,
    measure: Duration,
) -> Result<Row, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}/chatdesk.db?mode=rwc", dir.display());
    let server = Server::start(executable, &url, dir, "server", &[]).await?;
    let api = gql::Api::new(server.port);
    let started = api
        .data(
            "mutation{startChat(input:{visitorName:\"Bench Visitor\"}){chatToken chat{id}}}",
            json!({}),
            "",
        )
        .await?;
    let token = Arc::new(
        started["startChat"]["chatToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let chat_id = started["startChat"]["chat"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let query = Arc::new(
        "mutation($chatId:UUID!,$body:String,$clientMessageId:String){sendMessage(chatId:$chatId,body:$body,clientMessageId:$clientMessageId){id chatId sender senderLabel body createdAt readAt clientMessageId}}"
            .to_owned(),
    );
    let idle_kib = server.rss_kib();
    server.reset_peak();
    let cpu_before = server.cpu_secs();
    let service_api = api.clone();
    let service_chat = chat_id.clone();
    let service = stats::closed_loop(1, warmup, measure, 1.0, move |_, n| {
        let api = service_api.clone();
        let query = query.clone();
        let token = token.clone();
        let chat_id = service_chat.clone();
        async move {
            let data = api
                .data(&query, json!({ "chatId": chat_id, "body": format!("sqlite bench {n}"), "clientMessageId": Uuid::new_v4().to_string() }), &token)
                .await?;
            if data["sendMessage"]["id"].is_string() {
                Ok(())
            } else {
                Err(format!("unexpected {data}"))
            }
        }
    })
    .await;
    let service = Sided {
        idle_kib,
        peak_kib: server.peak_kib(),
        cpu_ms_per_op: (server.cpu_secs() - cpu_before) * 1000.0 / service.ops.max(1) as f64,
        measured: service,
    };
    server.stop();

    // The raw side: the same schema (migrations, FTS triggers included) in a file of its own.
    let raw_url = format!("sqlite://{}/raw.db?mode=rwc", dir.display());
    {
        use migration::MigratorTrait;
        let db = sea_orm::Database::connect(&raw_url)
            .await
            .map_err(|e| e.to_string())?;
        migration::Migrator::up(&db, None)
            .await
            .map_err(|e| e.to_string())?;
        db.close().await.ok();
    }
    let options = SqliteConnectOptions::new()
        .filename(dir.join("raw.db"))
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let raw_chat = Uuid::now_v7();
    let now = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO chats (id, visitor_name, chat_token_hash, status, created_at, updated_at) VALUES ($1, 'Bench Visitor', $2, 'open', $3, $3)",
    )
    .bind(raw_chat)
    .bind(format!("{:064}", 0))
    .bind(now)
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let raw = stats::closed_loop(1, warmup, measure, 1.0, move |_, n| {
        let pool = pool.clone();
        async move {
            let at = chrono::Utc::now();
            let mut connection = pool.acquire().await.map_err(|e| e.to_string())?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *connection).await.map_err(|e| e.to_string())?;
            let result = async {
                sqlx::query(
                    "INSERT INTO chat_messages (id, chat_id, sender_type, sender_label, message, client_message_id, created_at) \
                     VALUES ($1, $2, 'visitor', 'Bench Visitor', $3, $4, $5)",
                )
                .bind(Uuid::now_v7())
                .bind(raw_chat)
                .bind(format!("sqlite bench {n}"))
                .bind(Uuid::new_v4().to_string())
                .bind(at)
                .execute(&mut *connection)
                .await?;
                sqlx::query("UPDATE chats SET last_message_at = $2, updated_at = $2, visitor_last_read_at = $2 WHERE id = $1")
                    .bind(raw_chat)
                    .bind(at)
                    .execute(&mut *connection)
                    .await?;
                sqlx::query("COMMIT").execute(&mut *connection).await
            }
            .await;
            if result.is_err() {
                let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
            }
            result.map(|_| ()).map_err(|e| e.to_string())
        }
    })
    .await;
    let ratio = service.measured.throughput / raw.throughput.max(1e-9);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Row::compare(
        "SQLite sendMessage, 1 writer".into(),
        "1".into(),
        "ops/s",
        service,
        raw,
        "≥ 0.6× raw SQLite send",
        Verdict::from(ratio >= 0.6),
        String::new(),
    ))
}
