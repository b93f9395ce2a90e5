//! Settings, read once from the environment (and `.env`), typed, with a default for every value
//! that works on a laptop. Secrets are wrapped so they never reach a log.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use crate::files::scan::ClamdAddress;

/// A string that prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where uploaded files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix`; credentials and endpoint come from the standard `AWS_*` variables.
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl FromStr for StorageLocation {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket name, as in s3://bucket/prefix".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        match value.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "unknown storage scheme '{scheme}://' (use a folder path or s3://bucket/prefix)"
            )),
            None if value.is_empty() => Err("must not be empty".into()),
            None => Ok(Self::Local(PathBuf::from(value))),
        }
    }
}

/// Which browser origins may call the API and embed the widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|allowed| allowed == origin),
        }
    }

    fn parse(value: &str) -> Self {
        let list: Vec<String> = value
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if list.iter().any(|origin| origin == "*") {
            Self::Any
        } else {
            Self::List(list)
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub bind: SocketAddr,
    pub public_url: String,
    pub storage: StorageLocation,
    /// `./data` by default: the JWT secret file lives here when none is configured.
    pub data_dir: PathBuf,
    /// The static clients (`widget/`, `admin/`, `demo/`).
    pub clients_dir: PathBuf,
    pub jwt_secret: Option<Secret>,
    pub allowed_origins: AllowedOrigins,
    pub max_file_bytes: u64,
    pub max_files: usize,
    pub max_message_chars: usize,
    pub allowed_extensions: Vec<String>,
    pub retention_days: u32,
    pub trust_proxy: bool,
    pub rate_start_per_hour: u32,
    pub rate_send_per_min: u32,
    pub rate_login_per_min: u32,
    /// `CHATDESK_REDIS_URL`: keep the rate limits in Redis instead of the database.
    pub redis_url: Option<String>,
    pub introspection: bool,
    /// Open WebSockets allowed per client address.
    pub max_sockets_per_address: usize,
    /// Open TCP connections allowed per peer address (not applied behind a trusted proxy,
    /// whose own address every connection shares).
    pub max_connections_per_address: usize,
    /// Open TCP connections in all; 0 = a margin below the file descriptor limit.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: std::time::Duration,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    /// `smtp://`, `smtps://` or `smtp://…?tls=required` (STARTTLS), with `user:password@` when
    /// the server wants them. Unset: no email at all.
    pub smtp_url: Option<Secret>,
    /// The From of every email, e.g. `Example Support <support@example.com>`.
    pub mail_from: Option<String>,
    /// A PEM file of CA certificates the SMTP server's certificate may chain to, trusted besides
    /// the system's (a relay with a private CA).
    pub smtp_ca_file: Option<PathBuf>,
    /// How long a message may stay unseen before anyone is emailed about it.
    pub notify_delay: std::time::Duration,
    /// The first retry of a failed outbox job waits about this long; each next one twice as long.
    pub outbox_retry_base: std::time::Duration,
    /// Attempts before a job is given up as dead.
    pub outbox_max_attempts: u32,
    /// How often each instance looks for due outbox jobs.
    pub outbox_poll: std::time::Duration,
    /// `CHATDESK_CLAMD_URL`: scan every upload with this clamd (none: no scanning).
    pub clamd_url: Option<ClamdAddress>,
    /// Store uploads unscanned (with a warning) when clamd cannot answer, instead of refusing.
    pub clamd_fail_open: bool,
    pub clamd_timeout_secs: u64,
    /// Whole chats with no activity for this many days are erased (0 = keep forever).
    pub chat_retention_days: u32,
    /// Webhook URLs may be `http://` (default: `https://` only).
    pub webhook_allow_http: bool,
    /// Webhooks may reach loopback, private, link-local and metadata addresses (tests; never in
    /// production: it lets an admin's URL probe the server's own network).
    pub webhook_allow_private: bool,
    /// The waits between a webhook's attempts (Standard Webhooks' schedule by default: 5 s,
    /// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, so 8 attempts over about 27 h).
    pub webhook_retry_schedule: Vec<std::time::Duration>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub webhook_disable_after: std::time::Duration,
}

/// `CHATDESK_WEBHOOK_RETRY_SCHEDULE`: seconds between attempts, comma-separated.
fn retry_schedule(text: &str) -> Result<Vec<std::time::Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<u64>()
                .map(std::time::Duration::from_secs)
                .map_err(|_| {
                    format!(
                        "CHATDESK_WEBHOOK_RETRY_SCHEDULE: expected seconds separated by commas, got '{text}'"
                    )
                })
        })
        .collect()
}

pub const DEFAULT_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "png", "webp", "pdf", "doc", "docx", "txt"];

impl Settings {
    /// Reads `.env` (if present) and the environment. The error is one line naming the variable.
    pub fn from_env() -> Result<Self, String> {
        // A missing .env is the normal case; a malformed one is worth saying.
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(format!(".env: {error}"));
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same parsing over any source of variables, so it can be tested without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let parse = |name: &str, default: &str| -> Result<String, String> {
            Ok(var(name).unwrap_or_else(|| default.to_owned()))
        };
        fn number<T: FromStr>(name: &str, value: Option<String>, default: T) -> Result<T, String> {
            match value {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}: expected a whole number, got '{text}'")),
            }
        }
        fn boolean(name: &str, value: Option<String>, default: bool) -> Result<bool, String> {
            match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) if ["1", "true", "on", "yes"].contains(&v.as_str()) => Ok(true),
                Some(v) if ["0", "false", "off", "no"].contains(&v.as_str()) => Ok(false),
                Some(v) => Err(format!("{name}: expected true or false, got '{v}'")),
            }
        }

        let database_url = parse("DATABASE_URL", "sqlite://data/chatdesk.db?mode=rwc")?;
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(format!(
                "DATABASE_URL: expected sqlite://… or postgres://…, got '{}'",
                redact_url(&database_url)
            ));
        }
        let bind_text = parse("CHATDESK_BIND", "127.0.0.1:8080")?;
        let bind = bind_text
            .parse()
            .map_err(|_| format!("CHATDESK_BIND: expected host:port, got '{bind_text}'"))?;
        let public_url = parse("CHATDESK_PUBLIC_URL", "http://127.0.0.1:8080")?
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(format!(
                "CHATDESK_PUBLIC_URL: expected an http(s):// URL, got '{public_url}'"
            ));
        }
        let storage = parse("CHATDESK_STORAGE", "./data/uploads")?
            .parse()
            .map_err(|error| format!("CHATDESK_STORAGE: {error}"))?;
        let allowed_origins = AllowedOrigins::parse(
            &var("CHATDESK_ALLOWED_ORIGINS").unwrap_or_else(|| public_url.clone()),
        );
        let max_file_mb: u64 = number("CHATDESK_MAX_FILE_MB", var("CHATDESK_MAX_FILE_MB"), 10)?;
        if max_file_mb == 0 || max_file_mb > 1024 {
            return Err("CHATDESK_MAX_FILE_MB: expected 1 to 1024".into());
        }
        let max_files = number("CHATDESK_MAX_FILES", var("CHATDESK_MAX_FILES"), 3)?;
        if max_files == 0 || max_files > 20 {
            return Err("CHATDESK_MAX_FILES: expected 1 to 20".into());
        }
        let allowed_extensions = match var("CHATDESK_ALLOWED_EXTENSIONS") {
            None => DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            Some(list) => {
                let list: Vec<String> = list
                    .split(',')
                    .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|e| !e.is_empty())
                    .collect();
                if let Some(unknown) = list
                    .iter()
                    .find(|e| !DEFAULT_EXTENSIONS.contains(&e.as_str()))
                {
                    return Err(format!(
                        "CHATDESK_ALLOWED_EXTENSIONS: '{unknown}' is not one Chatdesk can verify (choose from {})",
                        DEFAULT_EXTENSIONS.join(", ")
                    ));
                }
                list
            }
        };
        let rate = |name: &str, default: u32| -> Result<u32, String> {
            let value = number(name, var(name), default)?;
            if value == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
            Ok(value)
        };

        let smtp_url = var("CHATDESK_SMTP_URL").map(Secret::new);
        if let Some(url) = &smtp_url
            && !["smtp://", "smtps://"]
                .iter()
                .any(|scheme| url.expose().starts_with(scheme))
        {
            return Err(format!(
                "CHATDESK_SMTP_URL: expected smtp://… or smtps://…, got '{}'",
                redact_url(url.expose())
            ));
        }

        Ok(Self {
            database_url,
            bind,
            public_url,
            storage,
            data_dir: PathBuf::from(parse("CHATDESK_DATA_DIR", "./data")?),
            clients_dir: var("CHATDESK_CLIENTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_clients_dir),
            jwt_secret: var("CHATDESK_JWT_SECRET").map(Secret::new),
            allowed_origins,
            max_file_bytes: max_file_mb * 1024 * 1024,
            max_files,
            max_message_chars: number(
                "CHATDESK_MAX_MESSAGE_CHARS",
                var("CHATDESK_MAX_MESSAGE_CHARS"),
                5000,
            )?,
            allowed_extensions,
            retention_days: number(
                "CHATDESK_RETENTION_DAYS",
                var("CHATDESK_RETENTION_DAYS"),
                90,
            )?,
            trust_proxy: boolean("CHATDESK_TRUST_PROXY", var("CHATDESK_TRUST_PROXY"), false)?,
            rate_start_per_hour: rate("CHATDESK_RATE_START_PER_HOUR", 20)?,
            rate_send_per_min: rate("CHATDESK_RATE_SEND_PER_MIN", 30)?,
            rate_login_per_min: rate("CHATDESK_RATE_LOGIN_PER_MIN", 10)?,
            redis_url: match var("CHATDESK_REDIS_URL") {
                Some(url) if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) => {
                    return Err(format!(
                        "CHATDESK_REDIS_URL: expected redis://host:port, got '{}'",
                        redact_url(&url)
                    ));
                }
                url => url,
            },
            introspection: boolean(
                "CHATDESK_INTROSPECTION",
                var("CHATDESK_INTROSPECTION"),
                true,
            )?,
            max_sockets_per_address: number(
                "CHATDESK_MAX_SOCKETS_PER_ADDRESS",
                var("CHATDESK_MAX_SOCKETS_PER_ADDRESS"),
                50,
            )?,
            max_connections_per_address: number(
                "CHATDESK_MAX_CONNECTIONS_PER_ADDRESS",
                var("CHATDESK_MAX_CONNECTIONS_PER_ADDRESS"),
                // Above what one office behind a NAT opens (browsers keep ~6 per host each),
                // far below what starves the process of descriptors.
                512,
            )?,
            max_connections: number(
                "CHATDESK_MAX_CONNECTIONS",
                var("CHATDESK_MAX_CONNECTIONS"),
                0,
            )?,
            header_read_timeout: std::time::Duration::from_secs(number(
                "CHATDESK_HEADER_TIMEOUT_SECS",
                var("CHATDESK_HEADER_TIMEOUT_SECS"),
                10,
            )?),
            metrics_token: var("CHATDESK_METRICS_TOKEN").map(Secret::new),
            admin_email: var("CHATDESK_ADMIN_EMAIL"),
            admin_password: var("CHATDESK_ADMIN_PASSWORD").map(Secret::new),
            smtp_url,
            mail_from: var("CHATDESK_MAIL_FROM"),
            smtp_ca_file: var("CHATDESK_SMTP_CA_FILE").map(PathBuf::from),
            notify_delay: Duration::from_secs(number(
                "CHATDESK_NOTIFY_DELAY_SECS",
                var("CHATDESK_NOTIFY_DELAY_SECS"),
                120,
            )?),
            outbox_retry_base: Duration::from_secs(number(
                "CHATDESK_OUTBOX_RETRY_BASE_SECS",
                var("CHATDESK_OUTBOX_RETRY_BASE_SECS"),
                120,
            )?),
            outbox_max_attempts: rate("CHATDESK_OUTBOX_MAX_ATTEMPTS", 10)?,
            outbox_poll: Duration::from_millis(u64::from(rate("CHATDESK_OUTBOX_POLL_MS", 1000)?)),
            clamd_url: var("CHATDESK_CLAMD_URL")
                .map(|url| url.trim().parse())
                .transpose()
                .map_err(|error| format!("CHATDESK_CLAMD_URL: {error}"))?,
            clamd_fail_open: boolean(
                "CHATDESK_CLAMD_FAIL_OPEN",
                var("CHATDESK_CLAMD_FAIL_OPEN"),
                false,
            )?,
            clamd_timeout_secs: number(
                "CHATDESK_CLAMD_TIMEOUT_SECS",
                var("CHATDESK_CLAMD_TIMEOUT_SECS"),
                30,
            )?,
            chat_retention_days: number(
                "CHATDESK_CHAT_RETENTION_DAYS",
                var("CHATDESK_CHAT_RETENTION_DAYS"),
                0,
            )?,
            webhook_allow_http: boolean(
                "CHATDESK_WEBHOOK_ALLOW_HTTP",
                var("CHATDESK_WEBHOOK_ALLOW_HTTP"),
                false,
            )?,
            webhook_allow_private: boolean(
                "CHATDESK_WEBHOOK_ALLOW_PRIVATE",
                var("CHATDESK_WEBHOOK_ALLOW_PRIVATE"),
                false,
            )?,
            webhook_retry_schedule: retry_schedule(
                var("CHATDESK_WEBHOOK_RETRY_SCHEDULE")
                    .as_deref()
                    .unwrap_or("5,300,1800,7200,18000,36000,36000"),
            )?,
            webhook_disable_after: Duration::from_secs(number(
                "CHATDESK_WEBHOOK_DISABLE_AFTER_SECS",
                var("CHATDESK_WEBHOOK_DISABLE_AFTER_SECS"),
                5 * 24 * 3600,
            )?),
        })
    }

    /// Whether emails are sent at all.
    pub fn email_enabled(&self) -> bool {
        self.smtp_url.is_some()
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    /// The largest request body worth reading: every file at its limit, plus the operations.
    pub fn max_body_bytes(&self) -> usize {
        (self.max_file_bytes as usize) * self.max_files + 1024 * 1024
    }
}

/// The repository's `clients/` when run from a checkout, else `./clients` beside the binary's
/// working directory.
fn default_clients_dir() -> PathBuf {
    let checkout = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../clients"));
    if checkout.is_dir() {
        checkout
    } else {
        PathBuf::from("clients")
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_work_on_a_laptop() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite://data/chatdesk.db?mode=rwc");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage, StorageLocation::Local("./data/uploads".into()));
        assert_eq!(s.max_file_bytes, 10_485_760);
        assert_eq!(s.max_files, 3);
        assert!(s.allowed_origins.allows("http://127.0.0.1:8080"));
        assert!(!s.allowed_origins.allows("https://evil.example"));
        assert!(s.introspection);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = settings(&[("CHATDESK_MAX_FILE_MB", "ten")]).unwrap_err();
        assert!(error.starts_with("CHATDESK_MAX_FILE_MB:"), "{error}");
        let error = settings(&[("CHATDESK_STORAGE", "ftp://x/y")]).unwrap_err();
        assert!(error.contains("unknown storage scheme 'ftp://'"), "{error}");
        let error = settings(&[("DATABASE_URL", "mysql://u:pw@h/db")]).unwrap_err();
        assert!(
            error.contains("u:***@h/db") && !error.contains("pw"),
            "{error}"
        );
        let error = settings(&[("CHATDESK_SMTP_URL", "http://u:pw@mail/")]).unwrap_err();
        assert!(
            error.starts_with("CHATDESK_SMTP_URL:") && !error.contains("pw"),
            "{error}"
        );
        let error = settings(&[("CHATDESK_BIND", "nonsense")]).unwrap_err();
        assert!(error.starts_with("CHATDESK_BIND:"), "{error}");
        // TLS to Redis is not built in (rediss://); a password in the URL is not repeated.
        let error = settings(&[("CHATDESK_REDIS_URL", "rediss://:pw@h:6379")]).unwrap_err();
        assert!(
            error.starts_with("CHATDESK_REDIS_URL:") && !error.contains("pw"),
            "{error}"
        );
        let s = settings(&[("CHATDESK_REDIS_URL", "redis://127.0.0.1:6379/2")]).unwrap();
        assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6379/2"));
    }

    #[test]
    fn s3_and_origins_parse() {
        let s = settings(&[
            ("CHATDESK_STORAGE", "s3://bucket/some/prefix/"),
            ("CHATDESK_ALLOWED_ORIGINS", "https://a.example, *"),
            ("CHATDESK_INTROSPECTION", "off"),
        ])
        .unwrap();
        assert_eq!(
            s.storage,
            StorageLocation::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(s.allowed_origins, AllowedOrigins::Any);
        assert!(!s.introspection);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = settings(&[
            ("CHATDESK_JWT_SECRET", "hunter2"),
            ("CHATDESK_ADMIN_PASSWORD", "pw"),
            (
                "CHATDESK_SMTP_URL",
                "smtps://mailer:smtp-pw@mail.example:465",
            ),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("hunter2")
                && !printed.contains("\"pw\"")
                && !printed.contains("smtp-pw"),
            "{printed}"
        );
    }
}
