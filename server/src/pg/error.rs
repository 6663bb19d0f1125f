//! The client's errors: the server's own (with SQLSTATE), the connection's,
//! the pool's, and conversions between Rust values and column types.

use std::fmt;
use std::time::Duration;

use postgres_protocol::message::backend::ErrorFields;

/// An error PostgreSQL sent (an `ErrorResponse`): the statement failed,
/// the connection stays usable unless `severity` is `FATAL` or `PANIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// `ERROR`, `FATAL` or `PANIC` (untranslated).
    pub severity: String,
    /// The SQLSTATE code, five characters (`23505`: a unique violation).
    pub code: String,
    /// The primary message.
    pub message: String,
    /// A secondary message with more detail.
    pub detail: Option<String>,
    /// A suggestion what to do.
    pub hint: Option<String>,
    /// The table the error concerns.
    pub table: Option<String>,
    /// The column the error concerns.
    pub column: Option<String>,
    /// The constraint the error concerns.
    pub constraint: Option<String>,
}

impl DbError {
    /// Reads an `ErrorResponse`'s fields; a field that is not text (a
    /// broken server) becomes a lossy string, never a panic.
    pub(crate) fn from_fields(mut fields: ErrorFields<'_>) -> DbError {
        use fallible_iterator::FallibleIterator;
        let mut e = DbError {
            severity: String::new(),
            code: String::new(),
            message: String::new(),
            detail: None,
            hint: None,
            table: None,
            column: None,
            constraint: None,
        };
        while let Ok(Some(field)) = fields.next() {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                // `V` is the untranslated severity (9.6+); `S` may be localised.
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                b't' => e.table = Some(value),
                b'c' => e.column = Some(value),
                b'n' => e.constraint = Some(value),
                _ => {}
            }
        }
        e
    }

    /// The error ends the session (the server closes the connection).
    pub fn is_fatal(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }
}

/// What a timeout cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTimeout {
    /// Connecting and authenticating took longer than the connect timeout.
    Connect,
    /// A statement ran past its statement timeout: it was cancelled on the
    /// server (a CancelRequest), or, if it never went out, dropped unsent.
    Statement,
}

/// Everything a query, a connection or the pool can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// The server refused the statement (or the session): SQLSTATE and all.
    Db(Box<DbError>),
    /// The connection could not be made (refused, reset, unreachable, a
    /// bad address).
    Connect(String),
    /// The server refused the credentials, or asked for a method this
    /// client does not speak.
    Auth(String),
    /// The connection broke (the server restarted, the backend was
    /// terminated, the network reset) before the answer came.
    Closed(String),
    /// A deadline passed; see [`PgTimeout`].
    Timeout(PgTimeout, Duration),
    /// Every connection of the pool stayed busy for the whole acquire
    /// timeout.
    PoolTimeout(Duration),
    /// The pool's wait queue is full: the caller is refused at once.
    PoolFull,
    /// One connection already holds as many queued statements as it may.
    Busy(String),
    /// A Rust value does not fit the column or parameter's type, or a
    /// column's value does not fit the Rust type asked for.
    Conversion(String),
    /// The server sent something this client cannot make sense of.
    Protocol(String),
    /// A bad connection string or setting.
    Config(String),
}

impl PgError {
    /// The SQLSTATE code, for the server's errors (and `57014` for a
    /// statement cancelled by its timeout).
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Db(e) => Some(&e.code),
            PgError::Timeout(PgTimeout::Statement, _) => Some("57014"),
            _ => None,
        }
    }

    /// The server's error, if it is one.
    pub fn db(&self) -> Option<&DbError> {
        match self {
            PgError::Db(e) => Some(e),
            _ => None,
        }
    }

    /// The database could not be reached or is overloaded: retrying later
    /// may succeed (an HTTP service answers 503 with `Retry-After`).
    /// True for the pool's refusals, connect and connection failures,
    /// and the server's "cannot connect now"/"shutting down" codes
    /// (class 57P and 53).
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Connect(_)
            | PgError::Closed(_)
            | PgError::PoolTimeout(_)
            | PgError::PoolFull
            | PgError::Timeout(PgTimeout::Connect, _) => true,
            PgError::Db(e) => e.code.starts_with("57P") || e.code.starts_with("53"),
            _ => false,
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Db(e) => {
                write!(f, "{} {}: {}", e.severity, e.code, e.message)?;
                if let Some(d) = &e.detail {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            PgError::Connect(m) => write!(f, "cannot connect to PostgreSQL: {m}"),
            PgError::Auth(m) => write!(f, "PostgreSQL authentication failed: {m}"),
            PgError::Closed(m) => write!(f, "the PostgreSQL connection closed: {m}"),
            PgError::Timeout(PgTimeout::Connect, d) => {
                write!(f, "connecting to PostgreSQL took longer than {d:?}")
            }
            PgError::Timeout(PgTimeout::Statement, d) => {
                write!(f, "the statement ran longer than {d:?} and was cancelled")
            }
            PgError::PoolTimeout(d) => {
                write!(f, "no PostgreSQL connection was free within {d:?}")
            }
            PgError::PoolFull => write!(f, "the PostgreSQL pool's wait queue is full"),
            PgError::Busy(m) => write!(f, "the PostgreSQL connection is busy: {m}"),
            PgError::Conversion(m) => write!(f, "conversion: {m}"),
            PgError::Protocol(m) => write!(f, "PostgreSQL protocol: {m}"),
            PgError::Config(m) => write!(f, "PostgreSQL settings: {m}"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<PgError> for crate::http::Error {
    /// 503 with `Retry-After` for an unreachable or overloaded database
    /// (1 s when the pool is busy, 5 s when the database cannot be
    /// reached), 409 for a unique or exclusion violation, 500 otherwise.
    /// The message says what kind of failure it was, never the server's
    /// address, the query or its values. A 500 or 504 reports the whole
    /// error to the log; an outage (503) does not, once per request (it
    /// would flood the log when it matters most): the pool counts it
    /// ([`crate::pg::PoolStats`]).
    fn from(e: PgError) -> Self {
        use crate::http::Error;
        if e.is_unavailable() {
            let (what, wait) = match &e {
                PgError::PoolFull | PgError::PoolTimeout(_) => ("all its connections are busy", 1),
                PgError::Connect(_) | PgError::Timeout(PgTimeout::Connect, _) => {
                    ("it cannot be reached", 5)
                }
                PgError::Closed(_) => ("the connection to it was lost", 5),
                _ => ("it refuses connections now", 5),
            };
            return Error::unavailable(format!("the database is unavailable: {what}"))
                .retry_after(wait);
        }
        if let (PgError::Db(db), Some("23505" | "23P01")) = (&e, e.code()) {
            return Error::conflict(match &db.constraint {
                Some(c) => format!("the value is already taken ({c})"),
                None => "the value is already taken".to_owned(),
            });
        }
        phaseloop_core::report!(warn, { error = %e }, "phaseloop: a database call failed: {e}");
        match e.code() {
            Some("57014") => Error::new(504, "the database statement timed out"),
            Some(code) => Error::internal(format!("database error (SQLSTATE {code})")),
            None => Error::internal("database error"),
        }
    }
}
