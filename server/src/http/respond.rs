//! `IntoResponse`: what a handler may return. Anything that becomes a
//! response: a [`Response`], text, bytes, a status, `(status, body)`,
//! [`Json`], an [`Error`], `Option` (none is 404), and `Result` of two such
//! types, so `?` works in handlers.

use serde::Serialize;

use crate::http::error::Error;
use crate::http::extract::Json;
use crate::http::response::{Body, Response};
use crate::http::status::StatusCode;

/// Turns a handler's return value into a response.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    #[inline(always)]
    fn into_response(self) -> Response {
        self
    }
}

/// `200` with a `text/plain` body.
impl IntoResponse for &'static str {
    #[inline(always)]
    fn into_response(self) -> Response {
        Response::text(StatusCode::OK, self)
    }
}

/// `200` with a `text/plain` body.
impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(StatusCode::OK, self)
    }
}

/// `200` with an `application/octet-stream` body.
impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK)
            .header("Content-Type", "application/octet-stream")
            .body(self)
    }
}

/// `200` with an `application/octet-stream` body.
impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK)
            .header("Content-Type", "application/octet-stream")
            .body(self)
    }
}

/// `204 No Content`.
impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(StatusCode::NO_CONTENT)
    }
}

/// An empty response with that status (an error status gets the error
/// renderer's body).
impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        if self.is_error() {
            Error::new(self, self.reason()).into_response()
        } else {
            Response::new(self)
        }
    }
}

/// `200` with the value as `application/json` (500 if it cannot be
/// serialised).
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(StatusCode::OK, &self.0)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Error::into_response(self)
    }
}

/// The body's response with another status: `(StatusCode::CREATED,
/// Json(todo))`, `(404, "no such todo")`.
impl<S: Into<StatusCode>, T: IntoResponse> IntoResponse for (S, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        response.set_status(self.0);
        response
    }
}

/// `None` is `404 Not Found`.
impl<T: IntoResponse> IntoResponse for Option<T> {
    fn into_response(self) -> Response {
        match self {
            Some(value) => value.into_response(),
            None => Error::not_found("not found").into_response(),
        }
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    #[inline(always)]
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(error) => error.into_response(),
        }
    }
}

/// A body alone is `200`.
impl IntoResponse for Body {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK).body(self)
    }
}
