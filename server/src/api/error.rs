//! Error responses: every error the server or a handler answers (400, 404,
//! 405, 408, 413, 414, 431, 500, 503, and a handler's own [`Error`]s) gets
//! its body from one renderer, which an app may replace.
//!
//! [`Error`]: crate::http::Error

use std::rc::Rc;

use crate::http::response::Response;
use crate::http::StatusCode;

/// What an error renderer is told.
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfo<'a> {
    /// The status to answer.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: &'a str,
    /// Whether the client accepts JSON (its `Accept` names it).
    pub wants_json: bool,
}

/// An app's error renderer.
pub(crate) type ErrorRenderer = Rc<dyn Fn(&ErrorInfo<'_>) -> Response>;

/// The default: `{"error": message}` for a client that accepts JSON, else
/// `404 Not Found: message` as text.
pub fn render_default(info: &ErrorInfo<'_>) -> Response {
    if info.wants_json {
        Response::json_error(info.status, info.message)
    } else {
        Response::text(info.status, format!("{}: {}\n", info.status, info.message))
    }
}
