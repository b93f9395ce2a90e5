//! The Postgres data set: 100k chats and 1M messages, bulk-loaded with COPY into a database of
//! its own and reused by later runs (a `bench_meta` row says it is complete). What a run
//! writes (messages, attachments, chat changes) is undone at the start of the next one, so
//! every run measures the same data.
//!
//! Shape: chat 0 has the newest activity, chat 99,999 the oldest (20 s apart). The 1,000
//! newest chats are the busy ones, 200 messages each, the last 100 from the visitor and unread
//! by the team, so the first inbox page counts ~100 unread per chat; every other chat has 8-9
//! messages, one in five with an unread one. Message text is drawn from a support vocabulary
//! (frequent and rare words, order numbers), so searches have realistic selectivity.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration as Span, Utc};
use sea_orm::sqlx::postgres::{PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, AssertSqlSafe, Row};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use uuid::Uuid;

pub const CHATS: usize = 100_000;
pub const BUSY_CHATS: usize = 1_000;
pub const BUSY_MESSAGES: usize = 200;
pub const BUSY_UNREAD: usize = 100;
/// 1,000 × 200 + 99,000 × 8 + 8,000 (one more each) = 1,000,000.
pub const MESSAGES: usize = 1_000_000;
const EXTRA_MESSAGE_CHATS: usize = 8_000;
const ACTIVITY_STEP_SECS: i64 = 20;
pub const DATABASE: &str = "chatdesk_bench";
const VERSION: &str = "chatdesk-bench data v1: 100k chats, 1M messages";

/// The Postgres server (any database on it): where the bench database is created.
pub fn server_url() -> String {
    std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `server_url` with its database replaced by `name`.
pub fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// The visitor token of chat `i` (derived, so the bench can speak for any chat).
pub fn token(i: usize) -> String {
    let digest = Sha256::digest(format!("chatdesk-bench-chat-{i}").as_bytes());
    format!("vt_{}", URL_SAFE_NO_PAD.encode(digest))
}

fn token_hash(i: usize) -> String {
    let digest = Sha256::digest(token(i).as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// splitmix64: fast, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn uuid_v7(at: DateTime<Utc>, rng: &mut Rng) -> Uuid {
    let random = rng.next().to_le_bytes();
    let more = rng.next().to_le_bytes();
    let bytes = [
        random[0], random[1], random[2], random[3], random[4], random[5], random[6], random[7],
        more[0], more[1],
    ];
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &bytes).into_uuid()
}

const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hannah", "Igor", "Julia", "Karim",
    "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "William", "Xiu", "Yara", "Zoë", "Aiko", "Bruno", "Carmen", "Dmitri", "Elif", "Farid",
    "Gustav", "Hiro", "Ines", "Jonas", "Kofi", "Lucía", "Maja", "Nikos", "Olga", "Pavel", "Rahul",
    "Sofia", "Tomás", "Ulla", "Viktor", "Wen", "Yusuf", "Zara",
];
const LAST: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Rossi",
    "Nowak",
    "Dubois",
    "Jensen",
    "Kowalski",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Kim",
    "Novák",
    "Hansen",
    "Popescu",
    "Ivanova",
    "Costa",
    "Moreau",
    "Fischer",
    "Lindqvist",
    "Okafor",
    "Haddad",
    "Patel",
    "Chen",
    "Nguyen",
    "Yilmaz",
    "Larsen",
    "Bauer",
    "Romano",
    "Lopez",
    "Weber",
    "Horvat",
    "Petrov",
    "Santos",
    "Keller",
    "Berg",
    "Dahl",
    "Varga",
    "Kaya",
    "Mendes",
    "Ortiz",
    "Sato",
    "Wagner",
    "Bianchi",
    "Jovanović",
    "Laine",
    "Meyer",
    "Novak",
    "Quinn",
    "Reyes",
];
/// Most frequent first: a word's chance falls off with its place (index = n × u²).
const WORDS: &[&str] = &[
    "the",
    "to",
    "my",
    "I",
    "you",
    "a",
    "is",
    "and",
    "for",
    "it",
    "order",
    "can",
    "please",
    "thanks",
    "hello",
    "with",
    "on",
    "not",
    "have",
    "we",
    "this",
    "your",
    "help",
    "be",
    "was",
    "just",
    "account",
    "delivery",
    "still",
    "when",
    "package",
    "need",
    "payment",
    "today",
    "card",
    "shipping",
    "address",
    "login",
    "email",
    "refund",
    "item",
    "size",
    "return",
    "tracking",
    "invoice",
    "password",
    "discount",
    "code",
    "subscription",
    "cancel",
    "change",
    "product",
    "warranty",
    "receipt",
    "coupon",
    "exchange",
    "colour",
    "stock",
    "update",
    "missing",
    "damaged",
    "wrong",
    "late",
    "charged",
    "twice",
    "promo",
    "voucher",
    "checkout",
    "basket",
    "courier",
    "parcel",
    "customs",
    "duties",
    "battery",
    "charger",
    "screen",
    "laptop",
    "headphones",
    "monitor",
    "keyboard",
    "printer",
    "router",
    "firmware",
    "manual",
    "installation",
    "appointment",
    "technician",
    "replacement",
    "defective",
    "broken",
    "scratched",
    "leaking",
    "overheating",
    "noisy",
    "unboxing",
    "gift",
    "wrapping",
    "loyalty",
    "points",
    "membership",
    "newsletter",
    "unsubscribe",
    "privacy",
    "gdpr",
    "deletion",
];
/// Rare on purpose: searched for by the bench.
const RARE_WORDS: &[&str] = &["chargeback", "escalation", "ombudsman", "counterfeit"];

fn message_text(rng: &mut Rng) -> String {
    let words = 4 + rng.below(21) as usize;
    let mut text = String::with_capacity(words * 7 + 16);
    for n in 0..words {
        if n > 0 {
            text.push(' ');
        }
        let u = rng.unit();
        text.push_str(WORDS[((WORDS.len() as f64) * u * u) as usize]);
    }
    if rng.below(10) == 0 {
        let _ = write!(text, " order #{}", 100_000 + rng.below(900_000));
    }
    if rng.below(1000) == 0 {
        text.push(' ');
        text.push_str(RARE_WORDS[rng.below(RARE_WORDS.len() as u64) as usize]);
    }
    text
}

pub fn message_count(i: usize) -> usize {
    if i < BUSY_CHATS {
        BUSY_MESSAGES
    } else if i < BUSY_CHATS + EXTRA_MESSAGE_CHATS {
        9
    } else {
        8
    }
}

/// Time of the last message of chat `i`.
fn last_activity(t0: DateTime<Utc>, i: usize) -> DateTime<Utc> {
    t0 - Span::seconds(ACTIVITY_STEP_SECS * (i as i64 + 1))
}

fn message_gap(i: usize) -> Span {
    if i < BUSY_CHATS {
        Span::seconds(15)
    } else {
        Span::seconds(90)
    }
}

/// The `k`-th message's sender: alternating, except the busy chats' unread visitor tail.
fn is_visitor(i: usize, k: usize) -> bool {
    let n = message_count(i);
    (i < BUSY_CHATS && k >= n - BUSY_UNREAD) || k.is_multiple_of(2)
}

pub fn visitor_name(i: usize) -> String {
    format!(
        "{} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len()) % LAST.len()]
    )
}

fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn null_or(value: Option<String>) -> String {
    value.unwrap_or_else(|| "\\N".to_owned())
}

/// The data set's reference instant: every loaded row is older, every row a run adds newer.
pub struct DataSet {
    pub pool: PgPool,
    pub url: String,
    pub t0: DateTime<Utc>,
    /// Seconds the load took; None when it was reused.
    pub loaded_in: Option<f64>,
}

/// Connects to the bench database, loading it first when it is missing or incomplete.
pub async fn prepare() -> Result<DataSet, String> {
    let server = server_url();
    let url = with_database(&server, DATABASE);
    let reload = std::env::var("BENCH_RELOAD").is_ok_and(|v| v == "1");
    if !reload && let Some(t0) = loaded(&url).await {
        let pool = pool(&url, 4).await?;
        migrate(&url).await?;
        reset(&pool, t0).await?;
        return Ok(DataSet {
            pool,
            url,
            t0,
            loaded_in: None,
        });
    }
    let started = std::time::Instant::now();
    let admin = pool(&server, 1).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .map_err(|error| format!("drop database: {error}"))?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
        .execute(&admin)
        .await
        .map_err(|error| format!("create database: {error}"))?;
    admin.close().await;
    migrate(&url).await?;
    let pool = pool(&url, 4).await?;
    let t0 = Utc::now()
        .with_timezone(&Utc)
        .checked_sub_signed(Span::seconds(1))
        .unwrap_or_else(Utc::now);
    load(&pool, t0).await?;
    let loaded_in = started.elapsed().as_secs_f64();
    eprintln!("bench: data set loaded in {loaded_in:.1} s");
    Ok(DataSet {
        pool,
        url,
        t0,
        loaded_in: Some(loaded_in),
    })
}

pub async fn pool(url: &str, connections: u32) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await
        .map_err(|error| format!("cannot connect to Postgres ({}): {error}", redact(url)))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The schema, by the server's own migrations (a newer migration also lands on old data).
async fn migrate(url: &str) -> Result<(), String> {
    use migration::MigratorTrait;
    let db = sea_orm::Database::connect(url)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    migration::Migrator::up(&db, None)
        .await
        .map_err(|error| format!("migrations: {error}"))?;
    db.close().await.ok();
    Ok(())
}

async fn loaded(url: &str) -> Option<DateTime<Utc>> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .ok()?;
    let row = sqlx::query("SELECT version, t0 FROM bench_meta")
        .fetch_one(&pool)
        .await
        .ok();
    pool.close().await;
    let row = row?;
    let version: String = row.try_get("version").ok()?;
    (version == VERSION).then(|| row.try_get("t0").ok())?
}

/// Undoes what earlier runs wrote, so each run starts from the loaded data.
pub async fn reset(pool: &PgPool, t0: DateTime<Utc>) -> Result<(), String> {
    let mut removed = 0;
    for statement in [
        "DELETE FROM chat_messages WHERE created_at > $1",
        "DELETE FROM chat_events WHERE created_at > $1",
        "DELETE FROM chats WHERE created_at > $1",
        "UPDATE chats c SET status = s.status, last_message_at = s.last_message_at, \
         admin_last_read_at = s.admin_last_read_at, visitor_last_read_at = s.visitor_last_read_at, \
         updated_at = s.updated_at FROM bench_chat_state s WHERE s.id = c.id AND c.updated_at > $1",
    ] {
        removed += sqlx::query(statement)
            .bind(t0)
            .execute(pool)
            .await
            .map_err(|error| format!("reset: {error}"))?
            .rows_affected();
    }
    // What the outbox scenario left (its webhook endpoint would make every later send deliver
    // a webhook) and the shared rate limits: tables the server's migrations create, so absent
    // before its first start.
    for table in [
        "webhook_endpoints",
        "webhook_deliveries",
        "outbox_jobs",
        "rate_limits",
    ] {
        sqlx::query(AssertSqlSafe(format!(
            "DO $$ BEGIN IF to_regclass('{table}') IS NOT NULL THEN DELETE FROM {table}; END IF; END $$"
        )))
        .execute(pool)
        .await
        .map_err(|error| format!("reset {table}: {error}"))?;
    }
    if removed > 0 {
        sqlx::query("VACUUM (ANALYZE) chats, chat_messages, chat_attachments, chat_events")
            .execute(pool)
            .await
            .map_err(|error| format!("vacuum: {error}"))?;
    }
    Ok(())
}

/// Secondary indexes (not those behind a constraint): dropped for the load, rebuilt after.
async fn secondary_indexes(pool: &PgPool) -> Result<Vec<(String, String)>, String> {
    let rows = sqlx::query(
        "SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() \
           AND t.relname IN ('chats', 'chat_messages', 'chat_attachments', 'chat_events') \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .map_err(|error| format!("list indexes: {error}"))?;
    Ok(rows
        .iter()
        .map(|row| (row.get("name"), row.get("definition")))
        .collect())
}

/// The id of chat `i` (derived from the seed, like everything else about it).
pub fn chat_id(i: usize, t0: DateTime<Utc>) -> Uuid {
    chat_row(i, t0, None).id
}

/// One chat's row, and the generator positioned for its messages (each chat has its own seed,
/// so the chats and the messages can be generated in two passes).
struct ChatRow {
    id: Uuid,
    name: String,
    first: DateTime<Utc>,
    rng: Rng,
}

fn chat_row(i: usize, t0: DateTime<Utc>, out: Option<(&mut String, &mut String)>) -> ChatRow {
    let mut rng = Rng(0x00C4_A7DE_5C00_0001 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let n = message_count(i);
    let gap = message_gap(i);
    let last = last_activity(t0, i);
    let first = last - gap * (n as i32 - 1);
    let created = first - Span::seconds(30);
    let id = uuid_v7(created, &mut rng);
    let event_id = uuid_v7(created, &mut rng);
    let name = visitor_name(i);
    if let Some((chats, events)) = out {
        let email = (i % 10 < 7)
            .then(|| format!("{}.{i}@example.com", name.to_lowercase().replace(' ', ".")));
        let phone = (i % 10 >= 6).then(|| format!("+1 555 {i:07}"));
        let status = if i < BUSY_CHATS {
            "open"
        } else {
            match i % 20 {
                0..=11 => "closed",
                12..=16 => "open",
                _ => "pending",
            }
        };
        let admin_read = if i < BUSY_CHATS {
            first + gap * (n - BUSY_UNREAD - 1) as i32
        } else if i.is_multiple_of(5) {
            first + gap * (n - 3) as i32
        } else {
            last
        };
        let _ = writeln!(
            chats,
            "{id}\t{name}\t{}\t{}\t{}\t{status}\thttps://shop.example.com/products/{}\t{}\t{}\t{}\t{}\t{}",
            null_or(email),
            null_or(phone),
            token_hash(i),
            i % 500,
            ts(last),
            ts(admin_read),
            ts(last),
            ts(created),
            ts(last),
        );
        let _ = writeln!(
            events,
            "{event_id}\t{id}\tstarted\tvisitor\t\\N\t{}",
            ts(created)
        );
    }
    ChatRow {
        id,
        name,
        first,
        rng,
    }
}

async fn copy(pool: &PgPool, statement: &str, chunks: Vec<String>) -> Result<(), String> {
    let mut connection = pool.acquire().await.map_err(|error| error.to_string())?;
    let mut copy = connection
        .copy_in_raw(statement)
        .await
        .map_err(|error| format!("{statement}: {error}"))?;
    for chunk in chunks {
        copy.send(chunk.as_bytes())
            .await
            .map_err(|error| format!("{statement}: {error}"))?;
    }
    copy.finish()
        .await
        .map_err(|error| format!("{statement}: {error}"))?;
    Ok(())
}

async fn load(pool: &PgPool, t0: DateTime<Utc>) -> Result<(), String> {
    let indexes = secondary_indexes(pool).await?;
    for (name, _) in &indexes {
        // Names and definitions come from the catalog, not from input.
        sqlx::query(AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(pool)
            .await
            .map_err(|error| format!("drop index {name}: {error}"))?;
    }

    let mut chats = String::with_capacity(CHATS * 256);
    let mut events = String::with_capacity(CHATS * 96);
    for i in 0..CHATS {
        chat_row(i, t0, Some((&mut chats, &mut events)));
    }
    copy(
        pool,
        "COPY chats (id, visitor_name, visitor_email, visitor_phone, chat_token_hash, status, \
         source_page, last_message_at, admin_last_read_at, visitor_last_read_at, created_at, \
         updated_at) FROM STDIN",
        vec![chats],
    )
    .await?;
    copy(
        pool,
        "COPY chat_events (id, chat_id, kind, actor, data, created_at) FROM STDIN",
        vec![events],
    )
    .await?;

    // Messages are generated on a blocking thread and streamed in 4 MiB chunks.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(4);
    let generator = tokio::task::spawn_blocking(move || {
        let mut chunk = String::with_capacity(4 << 20);
        let mut count = 0usize;
        for i in 0..CHATS {
            let ChatRow {
                id,
                name,
                first,
                mut rng,
            } = chat_row(i, t0, None);
            let gap = message_gap(i);
            for k in 0..message_count(i) {
                let at = first + gap * k as i32;
                let (sender_type, label) = if is_visitor(i, k) {
                    ("visitor", name.as_str())
                } else {
                    ("admin", "Support")
                };
                let _ = writeln!(
                    chunk,
                    "{}\t{id}\t{sender_type}\t{label}\t{}\t\\N\t{}",
                    uuid_v7(at, &mut rng),
                    message_text(&mut rng),
                    ts(at)
                );
                count += 1;
            }
            if chunk.len() > (4 << 20) - 8192 {
                let full = std::mem::replace(&mut chunk, String::with_capacity(4 << 20));
                if sender.blocking_send(full).is_err() {
                    return count;
                }
            }
        }
        let _ = sender.blocking_send(chunk);
        count
    });
    let mut connection = pool.acquire().await.map_err(|error| error.to_string())?;
    let statement = "COPY chat_messages (id, chat_id, sender_type, sender_label, message, \
                     client_message_id, created_at) FROM STDIN";
    let mut copy = connection
        .copy_in_raw(statement)
        .await
        .map_err(|error| format!("{statement}: {error}"))?;
    while let Some(chunk) = receiver.recv().await {
        copy.send(chunk.as_bytes())
            .await
            .map_err(|error| format!("copy messages: {error}"))?;
    }
    copy.finish()
        .await
        .map_err(|error| format!("copy messages: {error}"))?;
    drop(connection);
    let generated = generator.await.map_err(|error| error.to_string())?;
    if generated != MESSAGES {
        return Err(format!("generated {generated} messages, not {MESSAGES}"));
    }

    rebuild_indexes(pool, indexes).await?;
    for statement in [
        "VACUUM (ANALYZE) chats, chat_messages, chat_attachments, chat_events",
        "DROP TABLE IF EXISTS bench_chat_state",
        "CREATE TABLE bench_chat_state AS SELECT id, status, last_message_at, admin_last_read_at, \
         visitor_last_read_at, updated_at FROM chats",
        "ALTER TABLE bench_chat_state ADD PRIMARY KEY (id)",
        "DROP TABLE IF EXISTS bench_meta",
        "CREATE TABLE bench_meta (version text NOT NULL, t0 timestamptz NOT NULL)",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .map_err(|error| format!("{statement}: {error}"))?;
    }
    sqlx::query("INSERT INTO bench_meta (version, t0) VALUES ($1, $2)")
        .bind(VERSION)
        .bind(t0)
        .execute(pool)
        .await
        .map_err(|error| format!("bench_meta: {error}"))?;
    Ok(())
}

/// Rebuilds the dropped indexes, the big trigram one beside the others (two cores).
async fn rebuild_indexes(pool: &PgPool, indexes: Vec<(String, String)>) -> Result<(), String> {
    let (big, rest): (Vec<_>, Vec<_>) = indexes
        .into_iter()
        .partition(|(_, definition)| definition.contains("gin"));
    let run = |list: Vec<(String, String)>| {
        let pool = pool.clone();
        async move {
            let mut connection = pool.acquire().await.map_err(|error| error.to_string())?;
            sqlx::query("SET maintenance_work_mem = '1GB'")
                .execute(&mut *connection)
                .await
                .map_err(|error| error.to_string())?;
            for (name, definition) in list {
                sqlx::query(AssertSqlSafe(definition))
                    .execute(&mut *connection)
                    .await
                    .map_err(|error| format!("create index {name}: {error}"))?;
            }
            Ok::<(), String>(())
        }
    };
    let (a, b) = tokio::join!(run(big), run(rest));
    a.and(b)
}
