//! A request the codec refuses: the status to answer with and why.

use std::borrow::Cow;
use std::fmt;

use crate::http::response::Response;
use crate::http::status::StatusCode;

/// A malformed or unacceptable request. The connection answers `status` with
/// `message` as a plain-text body, then closes (the framing can no longer be
/// trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// The status code to answer with.
    pub status: u16,
    /// A short, human-readable reason, sent as the body.
    pub message: &'static str,
}

impl HttpError {
    pub(crate) const fn new(status: u16, message: &'static str) -> Self {
        HttpError { status, message }
    }

    pub(crate) const fn bad_request(message: &'static str) -> Self {
        HttpError::new(400, message)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// An error a handler returns: a status and a message for the client.
/// Returned from a handler (`Err(Error::not_found("no such todo"))`, or
/// through `?`), it becomes a response whose body the app's error renderer
/// makes: JSON `{"error": message}` for a client that accepts JSON, else
/// `404 Not Found: message` as text, unless the app renders its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: Cow<'static, str>,
    /// Seconds for a `Retry-After` field (a 503 or 429 that will pass).
    retry_after: Option<u32>,
}

impl Error {
    /// An error with `status` (a 4xx or 5xx) and `message`.
    pub fn new(status: impl Into<StatusCode>, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            status: status.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The answer says when to try again: `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u32) -> Error {
        self.retry_after = Some(secs);
        self
    }

    /// The `Retry-After` seconds, if set.
    pub fn retry_after_secs(&self) -> Option<u32> {
        self.retry_after
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the request conflicts with the resource's state.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::CONFLICT, message)
    }

    /// 422: well-formed, but its content is refused.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: the server failed; `message` is for the client, so keep
    /// details for the log.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503: try again later.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response it becomes, before the app's renderer makes its body.
    pub fn into_response(self) -> Response {
        let response = Response::unrendered_error(self.status, self.message.into_owned());
        match self.retry_after {
            Some(secs) => response.header("retry-after", secs.to_string()),
            None => response,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        Error::new(e.status, e.message)
    }
}

/// An I/O failure is the server's: 500, with the detail logged, not sent.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        phaseloop_core::report!(error, { error = %e }, "phaseloop: a handler failed: {e}");
        Error::internal("internal error")
    }
}

/// A body that is not the JSON expected: 400 with serde's reason.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::bad_request(format!("invalid JSON: {e}"))
    }
}

/// A pool job that could not run: a full queue is 503 (come back later),
/// a panicked job 500 (logged, not sent).
impl From<phaseloop_core::PoolError> for Error {
    fn from(e: phaseloop_core::PoolError) -> Error {
        match e {
            phaseloop_core::PoolError::QueueFull => {
                Error::unavailable("the server is busy; try again shortly")
            }
            other => {
                phaseloop_core::report!(
                    error,
                    { error = %other },
                    "phaseloop: a pool job failed: {other}"
                );
                Error::internal("internal error")
            }
        }
    }
}
