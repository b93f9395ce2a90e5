//! Rate limits, per client address and per visitor token.
//!
//! Where they are kept depends on how many instances can serve one site:
//! - SQLite (one instance): governor, in memory.
//! - Postgres: in the database, so that N instances behind a load balancer allow the
//!   configured total and not N times it (the login limit is our guard against password
//!   guessing). One `INSERT … ON CONFLICT DO UPDATE … RETURNING` per check on an UNLOGGED
//!   table (migration 000300), GCRA, by the database's clock.
//! - `CHATDESK_REDIS_URL`: in Redis, by the same GCRA in a Lua script.
//!
//! A shared store that cannot be reached fails closed for login (a password guesser must not
//! gain from an outage) and open for the rest, where the instance's own in-memory limits still
//! bound a flood. The outage is logged when it starts and when it ends, not per request, and for
//! a few seconds after a failure the store is not asked at all, so requests do not each wait for
//! a timeout. The typing limit is never shared: it only thins out indicators.
//!
//! A message key that this instance checks again and again (one visitor, or many behind one
//! address) is not asked for each time: the instance takes its tokens in leases of up to an
//! eighth of the quota (see `leases`), so the total still holds across instances.
//!
//! GCRA keeps one number per key, its "theoretical arrival time" (TAT). A quota of `count` per
//! `period` lets one request through every `interval = period / count`, with `count` at once as
//! a burst: a request at `now` is allowed when `max(tat, now) + interval - now <= period`, and
//! then the TAT becomes `max(tat, now) + interval`. A key whose TAT has passed has its whole
//! quota back and holds no information, which is what pruning removes.

mod leases;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use uuid::Uuid;

use crate::config::Settings;
use crate::error::{Error, Result};
use leases::Leases;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// What a limit is keyed on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Address(IpAddr),
    Chat(Uuid),
}

impl Key {
    fn shared_name(&self, limit: &str) -> String {
        match self {
            Self::Address(address) => format!("{limit}:a:{address}"),
            Self::Chat(chat) => format!("{limit}:c:{chat}"),
        }
    }
}

/// The limits that can be shared between instances.
#[derive(Clone, Copy, Debug)]
enum Limit {
    StartChat,
    SendMessage,
    Login,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Self::StartChat => "start",
            Self::SendMessage => "send",
            Self::Login => "login",
        }
    }

    /// Whether an unreachable store refuses the request rather than lets it through.
    fn fails_closed(self) -> bool {
        matches!(self, Self::Login)
    }
}

/// A quota in GCRA terms, in microseconds.
#[derive(Clone, Copy, Debug)]
struct Gcra {
    interval_us: i64,
    period_us: i64,
}

impl Gcra {
    fn new(per_period: u32, period: Duration) -> Self {
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        Self {
            interval_us: (period_us / i64::from(per_period.max(1))).max(1),
            period_us,
        }
    }
}

/// Where the shared limits are kept.
enum Store {
    Postgres(DatabaseConnection),
    Redis(Box<RedisStore>),
}

pub struct RateLimits {
    // In memory: the only limits on SQLite, the fallback while a shared store is down.
    start_chat: Keyed<Key>,
    send_message: Keyed<Key>,
    login: Keyed<Key>,
    typing: Keyed<Key>,
    clock: DefaultClock,
    shared: Option<Shared>,
}

struct Shared {
    store: Store,
    start_chat: Gcra,
    send_message: Gcra,
    login: Gcra,
    /// Milliseconds since `epoch` until which the store is not asked (after a failure).
    down_until_ms: AtomicU64,
    /// Whether the outage has been logged (and its end is still to be).
    reported_down: AtomicBool,
    epoch: Instant,
    /// Tokens of busy message keys taken ahead (see `leases`); sign-ins and new chats are
    /// counted one by one.
    send_leases: Leases,
    no_leases: Leases,
}

/// How long a failed store is left alone before it is tried again.
const STORE_PAUSE: Duration = Duration::from_secs(5);
/// How long one check may wait for the store before it counts as unreachable. A check takes a
/// millisecond or two even on a busy machine; a request that then goes on to the database
/// must still fail within the data pool's 5 s when the database is what is down.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

fn quota(per_period: u32, period: Duration) -> Quota {
    let count = NonZeroU32::new(per_period.max(1)).unwrap_or(NonZeroU32::MIN);
    // `per_period` requests per `period`, all of them available at once as a burst.
    Quota::with_period(period / count.get())
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

impl RateLimits {
    /// Limits kept in this process only (one instance: SQLite).
    pub fn in_memory(settings: &Settings) -> Arc<Self> {
        Arc::new(Self::local(settings, None))
    }

    /// Limits shared through Redis when `CHATDESK_REDIS_URL` is set, else through Postgres
    /// (on a pool of their own, see `limiter_pool`) when `DATABASE_URL` is Postgres, else in
    /// memory.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<Self>> {
        if settings.redis_url.is_none() && settings.is_postgres() {
            let pool = limiter_pool(&settings.database_url).await?;
            return Self::new(settings, &pool);
        }
        let unused = DatabaseConnection::default();
        Self::new(settings, &unused)
    }

    /// Like `connect`, with `db` as the Postgres store.
    pub fn new(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Arc<Self>> {
        let store = if let Some(url) = &settings.redis_url {
            Some(Store::Redis(Box::new(RedisStore::new(url)?)))
        } else if settings.is_postgres() {
            Some(Store::Postgres(db.clone()))
        } else {
            None
        };
        Ok(Arc::new(Self::local(settings, store)))
    }

    fn local(settings: &Settings, store: Option<Store>) -> Self {
        Self {
            start_chat: RateLimiter::keyed(quota(settings.rate_start_per_hour, HOUR)),
            send_message: RateLimiter::keyed(quota(settings.rate_send_per_min, MINUTE)),
            login: RateLimiter::keyed(quota(settings.rate_login_per_min, MINUTE)),
            typing: RateLimiter::keyed(quota(120, MINUTE)),
            clock: DefaultClock::default(),
            shared: store.map(|store| Shared {
                store,
                start_chat: Gcra::new(settings.rate_start_per_hour, HOUR),
                send_message: Gcra::new(settings.rate_send_per_min, MINUTE),
                login: Gcra::new(settings.rate_login_per_min, MINUTE),
                down_until_ms: AtomicU64::new(0),
                reported_down: AtomicBool::new(false),
                epoch: Instant::now(),
                send_leases: Leases::for_quota(settings.rate_send_per_min),
                no_leases: Leases::none(),
            }),
        }
    }

    /// Where the limits are kept, for the log and the tests: `memory`, `postgres` or `redis`.
    pub fn store_name(&self) -> &'static str {
        match self.shared.as_ref().map(|shared| &shared.store) {
            None => "memory",
            Some(Store::Postgres(_)) => "postgres",
            Some(Store::Redis(_)) => "redis",
        }
    }

    fn check_local(&self, limiter: &Keyed<Key>, key: &Key) -> Result<()> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// One request against `limit` for each of `keys` (each key has its own quota; the
    /// request is refused when any is spent). A shared store judges all of them in one round
    /// trip.
    async fn check(&self, limit: Limit, keys: &[Key]) -> Result<()> {
        let local = match limit {
            Limit::StartChat => &self.start_chat,
            Limit::SendMessage => &self.send_message,
            Limit::Login => &self.login,
        };
        let check_locally = || keys.iter().try_for_each(|key| self.check_local(local, key));
        let Some(shared) = &self.shared else {
            return check_locally();
        };
        match shared.check(limit, keys).await {
            Ok(Verdict::Allowed) => Ok(()),
            Ok(Verdict::Refused { wait_us }) => Err(Error::RateLimited {
                retry_after_seconds: whole_seconds(wait_us),
            }),
            Err(StoreDown {
                retry_after_seconds,
            }) if limit.fails_closed() => Err(Error::RateLimited {
                retry_after_seconds,
            }),
            Err(StoreDown { .. }) => check_locally(),
        }
    }

    pub async fn start_chat(&self, address: IpAddr) -> Result<()> {
        self.check(Limit::StartChat, &[Key::Address(address)]).await
    }

    /// Visitors are limited per token and per address; admins are not limited.
    pub async fn send_message(&self, address: IpAddr, chat_id: Uuid) -> Result<()> {
        self.check(
            Limit::SendMessage,
            &[Key::Chat(chat_id), Key::Address(address)],
        )
        .await
    }

    pub async fn login(&self, address: IpAddr) -> Result<()> {
        self.check(Limit::Login, &[Key::Address(address)]).await
    }

    /// Per instance on purpose: a typing indicator is not worth a round trip.
    pub fn typing(&self, chat_id: Uuid) -> Result<()> {
        self.check_local(&self.typing, &Key::Chat(chat_id))
    }

    /// Drops keys whose quota is whole again; they hold no information. (Redis expires its
    /// keys by itself.)
    pub async fn prune(&self) {
        for limiter in [
            &self.start_chat,
            &self.send_message,
            &self.login,
            &self.typing,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(shared) = &self.shared {
            shared.send_leases.prune(Instant::now());
        }
        if let Some(Shared {
            store: Store::Postgres(db),
            ..
        }) = &self.shared
        {
            let pruned = db
                .execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("DELETE FROM rate_limits WHERE tat < {NOW_US}"),
                ))
                .await;
            if let Err(error) = pruned {
                tracing::debug!(%error, "pruning the shared rate limits failed");
            }
        }
    }

    /// Keys held in this process's memory.
    pub fn tracked_keys(&self) -> usize {
        [
            &self.start_chat,
            &self.send_message,
            &self.login,
            &self.typing,
        ]
        .iter()
        .map(|limiter| limiter.len())
        .sum()
    }
}

/// The limiter's own small Postgres pool, apart from the data's so that a burst of checks
/// cannot take the connections requests need, nor the other way round. Its sessions commit
/// without waiting for the WAL flush (`synchronous_commit = off`): the rows are unlogged
/// anyway, and on this project's machine (pgbench, one client) a check took 0.3 ms against
/// 0.7-1.7 ms with the default, where even an UNLOGGED write waits for its commit record to
/// reach the disk.
async fn limiter_pool(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(database_url.to_owned());
    options
        .sqlx_logging(false)
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(STORE_TIMEOUT)
        // Not connected here but by the pool's background task (keeping `min_connections`):
        // the data's pool has just proved the database reachable, and a slow first connection
        // here must not stop the server from starting.
        .connect_lazy(true)
        .map_sqlx_postgres_opts(|options| options.options([("synchronous_commit", "off")]));
    Database::connect(options).await.map_err(|error| {
        anyhow::anyhow!(
            "rate limits: cannot connect to {}: {error}",
            crate::config::redact_url(database_url)
        )
    })
}

/// The shared store could not answer; the request may retry after this long.
struct StoreDown {
    retry_after_seconds: u64,
}

/// The database's clock in microseconds since the epoch: one clock for every instance.
const NOW_US: &str = "(extract(epoch FROM now()) * 1000000)::bigint";

/// $1 interval, $2 period (µs), then a key and its cost (how many tokens it asks for; a lease
/// asks for several) per row from $3 on. A new key starts with its cost used (a cost never
/// exceeds the quota). For an existing one the cost is read back as `excluded.tat - now` (now()
/// is one time for the whole statement), and every `SET` expression reads the old row, so
/// `allowed` and `tat` judge the same request; a refused request leaves the TAT as it was.
/// `wait_us` matters only when refused: how long until one token fits again
/// (`max(tat, now) + interval - now <= period`).
fn gcra_sql(keys: usize) -> String {
    let rows: Vec<String> = (0..keys)
        .map(|key| format!("(${}, {NOW_US} + ${} * $1, true)", 2 * key + 3, 2 * key + 4))
        .collect();
    let next = format!("GREATEST(r.tat, {NOW_US}) + (excluded.tat - {NOW_US})");
    let fits = format!("{next} <= {NOW_US} + $2");
    format!(
        "INSERT INTO rate_limits AS r (key, tat, allowed) VALUES {} \
         ON CONFLICT (key) DO UPDATE SET \
           tat = CASE WHEN {fits} THEN {next} ELSE r.tat END, \
           allowed = {fits} \
         RETURNING key, allowed, tat + $1 - $2 - {NOW_US} AS wait_us",
        rows.join(", ")
    )
}

fn whole_seconds(wait_us: i64) -> u64 {
    let wait_us = u64::try_from(wait_us).unwrap_or(0);
    (wait_us.div_ceil(1_000_000)).max(1)
}

/// What the store said about one request.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    Allowed,
    Refused { wait_us: i64 },
}

impl Verdict {
    /// The request against several keys: refused when any refuses it, until the last frees it.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Allowed, verdict) | (verdict, Self::Allowed) => verdict,
            (Self::Refused { wait_us: a }, Self::Refused { wait_us: b }) => {
                Self::Refused { wait_us: a.max(b) }
            }
        }
    }
}

impl Shared {
    async fn check(&self, limit: Limit, keys: &[Key]) -> std::result::Result<Verdict, StoreDown> {
        let (gcra, leases) = match limit {
            Limit::StartChat => (self.start_chat, &self.no_leases),
            Limit::SendMessage => (self.send_message, &self.send_leases),
            Limit::Login => (self.login, &self.no_leases),
        };
        // Sorted, so that two checks sharing keys lock their rows in the same order.
        let mut names: Vec<String> = keys
            .iter()
            .map(|key| key.shared_name(limit.name()))
            .collect();
        names.sort_unstable();
        let now = Instant::now();
        let plan = leases.take(&names, now);
        if plan.ask.is_empty() {
            return Ok(Verdict::Allowed);
        }
        let answers = match self.ask_with_retry(plan.ask, gcra).await {
            Ok(answers) => answers,
            Err(down) => {
                leases.give_back(&plan.taken);
                return Err(down);
            }
        };
        let verdict = answers
            .iter()
            .fold(Verdict::Allowed, |verdict, (_, _, answer)| {
                verdict.and(*answer)
            });
        let used = u32::from(matches!(verdict, Verdict::Allowed));
        for (key, cost, answer) in &answers {
            if matches!(answer, Verdict::Allowed) {
                leases.granted(key, *cost, used, now);
            }
        }
        if used == 0 {
            leases.give_back(&plan.taken);
        }
        Ok(verdict)
    }

    /// Asks the store for `ask`'s tokens; a lease refused near the end of a quota is asked for
    /// again as a single token, which may still be there. Each key with its cost and answer.
    async fn ask_with_retry(
        &self,
        mut ask: Vec<(String, u32)>,
        gcra: Gcra,
    ) -> std::result::Result<Vec<(String, u32, Verdict)>, StoreDown> {
        let mut answers = self.ask(&ask, gcra).await?;
        let again: Vec<usize> = (0..ask.len())
            .filter(|&at| ask[at].1 > 1 && matches!(answers[at], Verdict::Refused { .. }))
            .collect();
        if !again.is_empty() {
            let single: Vec<(String, u32)> =
                again.iter().map(|&at| (ask[at].0.clone(), 1)).collect();
            for (&at, answer) in again.iter().zip(self.ask(&single, gcra).await?) {
                ask[at].1 = 1;
                answers[at] = answer;
            }
        }
        Ok(ask
            .into_iter()
            .zip(answers)
            .map(|((key, cost), answer)| (key, cost, answer))
            .collect())
    }

    /// One round trip: an answer for each of `ask`'s keys, in its order.
    async fn ask(
        &self,
        ask: &[(String, u32)],
        gcra: Gcra,
    ) -> std::result::Result<Vec<Verdict>, StoreDown> {
        let now_ms = self.now_ms();
        let down_until = self.down_until_ms.load(Ordering::Relaxed);
        if now_ms < down_until {
            return Err(StoreDown {
                retry_after_seconds: (down_until - now_ms).div_ceil(1000).max(1),
            });
        }
        let answers = match &self.store {
            Store::Postgres(db) => {
                tokio::time::timeout(STORE_TIMEOUT, postgres_check(db, ask, gcra))
                    .await
                    .map(|answers| answers.map_err(|error| error.to_string()))
            }
            Store::Redis(redis) => tokio::time::timeout(STORE_TIMEOUT, redis.check(ask, gcra))
                .await
                .map(|answers| answers.map_err(|error| error.to_string())),
        };
        let answers = match answers {
            Ok(Ok(answers)) => answers,
            Ok(Err(error)) => return Err(self.went_down(&error)),
            Err(_) => return Err(self.went_down(&"no answer within 500 ms")),
        };
        if self.reported_down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                store = self.store_name(),
                "the shared rate-limit store answers again"
            );
        }
        Ok(answers)
    }

    fn store_name(&self) -> &'static str {
        match self.store {
            Store::Postgres(_) => "postgres",
            Store::Redis(_) => "redis",
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn went_down(&self, error: &dyn std::fmt::Display) -> StoreDown {
        let pause_ms = u64::try_from(STORE_PAUSE.as_millis()).unwrap_or(5000);
        self.down_until_ms
            .store(self.now_ms() + pause_ms, Ordering::Relaxed);
        if !self.reported_down.swap(true, Ordering::Relaxed) {
            tracing::error!(
                store = self.store_name(),
                %error,
                "the shared rate-limit store is unreachable: sign-ins are refused and the other \
                 limits are kept per instance until it answers again"
            );
        }
        StoreDown {
            retry_after_seconds: STORE_PAUSE.as_secs(),
        }
    }
}

async fn postgres_check(
    db: &DatabaseConnection,
    ask: &[(String, u32)],
    gcra: Gcra,
) -> std::result::Result<Vec<Verdict>, sea_orm::DbErr> {
    // A login or a new chat checks one key, a visitor's message two.
    static ONE: LazyLock<String> = LazyLock::new(|| gcra_sql(1));
    static TWO: LazyLock<String> = LazyLock::new(|| gcra_sql(2));
    let sql = match ask.len() {
        1 => ONE.clone(),
        2 => TWO.clone(),
        n => gcra_sql(n),
    };
    let mut values: Vec<sea_orm::Value> = vec![gcra.interval_us.into(), gcra.period_us.into()];
    for (key, cost) in ask {
        values.push(key.as_str().into());
        values.push(i64::from(*cost).into());
    }
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    // RETURNING's rows come in no promised order: match them by key.
    ask.iter()
        .map(|(key, _)| {
            let row = rows
                .iter()
                .find(|row| row.try_get::<String>("", "key").is_ok_and(|k| k == *key))
                .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("rate limit {key}")))?;
            let allowed: bool = row.try_get("", "allowed")?;
            let wait_us: i64 = row.try_get("", "wait_us")?;
            Ok(if allowed {
                Verdict::Allowed
            } else {
                Verdict::Refused { wait_us }
            })
        })
        .collect()
}

/// The same GCRA as the Postgres statement, by Redis's clock, for each key in turn with its cost
/// (ARGV[3], ARGV[4], …). Returns one number per key: 0 when it allowed its tokens, else the
/// wait in microseconds until one token fits. A key expires when its TAT passes, which is the
/// pruning.
const REDIS_GCRA: &str = r"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local answers = {}
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[i + 2])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next_tat = tat + cost * interval
  if next_tat - now > period then
    answers[i] = math.max(1, tat + interval - now - period)
  else
    redis.call('SET', key, next_tat, 'PX', math.ceil((next_tat - now) / 1000))
    answers[i] = 0
  end
end
return answers
";

struct RedisStore {
    client: redis::Client,
    /// One multiplexed connection shared by all requests; dropped after an error so that the
    /// next check connects again.
    connection: std::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    script: redis::Script,
}

impl RedisStore {
    fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|error| anyhow::anyhow!("CHATDESK_REDIS_URL: {error}"))?;
        Ok(Self {
            client,
            connection: std::sync::Mutex::new(None),
            script: redis::Script::new(REDIS_GCRA),
        })
    }

    fn cached(&self) -> Option<redis::aio::MultiplexedConnection> {
        self.connection.lock().ok().and_then(|slot| slot.clone())
    }

    fn set_cached(&self, connection: Option<redis::aio::MultiplexedConnection>) {
        if let Ok(mut slot) = self.connection.lock() {
            *slot = connection;
        }
    }

    async fn check(&self, ask: &[(String, u32)], gcra: Gcra) -> redis::RedisResult<Vec<Verdict>> {
        let mut connection = match self.cached() {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_multiplexed_async_connection().await?;
                self.set_cached(Some(connection.clone()));
                connection
            }
        };
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(gcra.interval_us).arg(gcra.period_us);
        for (key, cost) in ask {
            invocation.key(format!("chatdesk:rl:{key}")).arg(*cost);
        }
        let waits: redis::RedisResult<Vec<i64>> = invocation.invoke_async(&mut connection).await;
        match waits {
            Ok(waits) if waits.len() == ask.len() => Ok(waits
                .into_iter()
                .map(|wait_us| match wait_us {
                    0 => Verdict::Allowed,
                    wait_us => Verdict::Refused { wait_us },
                })
                .collect()),
            Ok(_) => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the rate-limit script answered for another number of keys",
            ))),
            Err(error) => {
                self.set_cached(None);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(login_per_min: &str) -> Settings {
        Settings::from_lookup(|name| {
            (name == "CHATDESK_RATE_LOGIN_PER_MIN").then(|| login_per_min.to_owned())
        })
        .unwrap()
    }

    #[tokio::test]
    async fn limits_trip_with_a_retry_hint_and_keys_are_separate() {
        let limits = RateLimits::in_memory(&settings("2"));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        limits.login(a).await.unwrap();
        limits.login(a).await.unwrap();
        match limits.login(a).await {
            Err(Error::RateLimited {
                retry_after_seconds,
            }) => {
                assert!(
                    (1..=30).contains(&retry_after_seconds),
                    "{retry_after_seconds}"
                )
            }
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        limits.login(b).await.unwrap();
        assert_eq!(limits.tracked_keys(), 2);
    }

    #[test]
    fn gcra_spacing_matches_the_quota() {
        let gcra = Gcra::new(10, MINUTE);
        assert_eq!(gcra.interval_us, 6_000_000);
        assert_eq!(gcra.period_us, 60_000_000);
        assert_eq!(whole_seconds(6_000_000), 6);
        assert_eq!(whole_seconds(1), 1);
        assert_eq!(whole_seconds(-5), 1);
    }
}
