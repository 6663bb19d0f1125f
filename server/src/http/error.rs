//! A request the codec refuses: the status to answer with and why.

use std::fmt;

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
