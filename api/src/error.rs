//! One error type for the whole API: a GraphQL `extensions.code` and an HTTP status for each
//! case. Internal errors are logged with their context and reach clients as `INTERNAL` only.

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, RuntimeErr, SqlErr};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error without
/// a code, so `?` in a resolver must go through the `From` impl below instead.
#[derive(Debug)]
pub enum Error {
    Unauthenticated,
    /// A sign-in with an unknown email or a wrong password (the two look the same).
    WrongCredentials,
    Forbidden,
    NotFound(&'static str),
    BadInput(String),
    /// Bad input in one named field, with a machine-readable reason (`extensions.field` and
    /// `extensions.reason`), so a form can say what is wrong where.
    InvalidField {
        field: &'static str,
        reason: &'static str,
        message: String,
    },
    RateLimited {
        retry_after_seconds: u64,
    },
    FileTooLarge {
        max_bytes: u64,
    },
    TooManyFiles {
        max: usize,
    },
    UnsupportedFileType(String),
    MessageTooLong {
        max: usize,
    },
    /// The virus scanner found malware in an upload. Names the file, never the signature.
    VirusDetected {
        file_name: String,
    },
    /// The database or the file storage cannot be reached; retrying later may work.
    Unavailable(anyhow::Error),
    Internal(anyhow::Error),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::WrongCredentials => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput(_) | Self::InvalidField { .. } => "BAD_USER_INPUT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::FileTooLarge { .. } => "FILE_TOO_LARGE",
            Self::TooManyFiles { .. } => "TOO_MANY_FILES",
            Self::UnsupportedFileType(_) => "UNSUPPORTED_FILE_TYPE",
            Self::MessageTooLong { .. } => "MESSAGE_TOO_LONG",
            Self::VirusDetected { .. } => "VIRUS_DETECTED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::WrongCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadInput(_)
            | Self::InvalidField { .. }
            | Self::MessageTooLong { .. }
            | Self::TooManyFiles { .. } => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedFileType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::VirusDetected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: never SQL, paths or internals.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => {
                "sign in first: this needs a valid visitor token or admin token".into()
            }
            Self::WrongCredentials => "wrong email or password".into(),
            Self::Forbidden => "you may not do that".into(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::BadInput(message)
            | Self::UnsupportedFileType(message)
            | Self::InvalidField { message, .. } => message.clone(),
            Self::RateLimited {
                retry_after_seconds,
            } => {
                format!("too many requests; try again in {retry_after_seconds} s")
            }
            Self::FileTooLarge { max_bytes } => {
                format!("a file is larger than the limit of {max_bytes} bytes")
            }
            Self::TooManyFiles { max } => format!("a message may carry at most {max} files"),
            Self::MessageTooLong { max } => {
                format!("a message may be at most {max} characters long")
            }
            Self::VirusDetected { file_name } => {
                // The name last: clients capitalize a message's first letter.
                format!("the virus scan found malware in {file_name}; the message was not sent")
            }
            Self::Unavailable(_) => {
                "the service is temporarily unavailable; try again shortly".into()
            }
            Self::Internal(_) => "internal error".into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput(message.into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// What an operator is told (the CLI, a background job's log): the client's text, or for an
    /// internal or unavailable error the whole chain of causes the client never sees.
    pub fn report(&self) -> String {
        match self {
            Self::Internal(source) | Self::Unavailable(source) => format!("{source:#}"),
            _ => self.message(),
        }
    }

    /// Logs what the client will not see. Called once, where the error leaves the API.
    fn log(&self) {
        match self {
            Self::Internal(source) => tracing::error!(error = ?source, "internal error"),
            Self::Unavailable(source) => {
                tracing::warn!(error = %format!("{source:#}"), "dependency unavailable")
            }
            _ => {}
        }
    }
}

/// For operators, with `?` in the CLI: the causes stay (see [`Error::report`]).
impl From<Error> for anyhow::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Internal(source) | Error::Unavailable(source) => source,
            other => anyhow::anyhow!(other.message()),
        }
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Self::BadInput("that value is already taken".into());
        }
        match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(error.into()),
            DbErr::Exec(RuntimeErr::SqlxError(inner))
            | DbErr::Query(RuntimeErr::SqlxError(inner))
                if is_connection_error(inner) =>
            {
                Self::Unavailable(error.into())
            }
            _ => Self::Internal(error.into()),
        }
    }
}

fn is_connection_error(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    matches!(
        error,
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_)
    ) || matches!(error, E::Database(db) if db.code().is_some_and(|code| {
        // Postgres: admin shutdown, crash shutdown, cannot connect now.
        ["57P01", "57P02", "57P03"].contains(&code.as_ref())
    }))
}

impl ErrorExtensions for Error {
    fn extend(&self) -> async_graphql::Error {
        self.log();
        async_graphql::Error::new(self.message()).extend_with(|_, extensions| {
            extensions.set("code", self.code());
            if let Self::RateLimited {
                retry_after_seconds,
            } = self
            {
                extensions.set("retryAfterSeconds", *retry_after_seconds);
            }
            if let Self::InvalidField { field, reason, .. } = self {
                extensions.set("field", *field);
                extensions.set("reason", *reason);
            }
        })
    }
}

impl From<Error> for async_graphql::Error {
    fn from(error: Error) -> Self {
        error.extend()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let body =
            serde_json::json!({ "error": { "code": self.code(), "message": self.message() } });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Self::RateLimited {
            retry_after_seconds,
        } = self
            && let Ok(value) = retry_after_seconds.to_string().parse()
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}
