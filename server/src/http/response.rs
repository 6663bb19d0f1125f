//! A response as a handler builds it.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::http::spares::{Spares, SPARE_BUFFER_MAX};
use crate::http::status::StatusCode;

/// A response body.
///
/// Owned bytes of a small body go back to a per-thread spare list when the
/// body is dropped (after it was copied into the connection's output), and
/// [`Response::json`] serialises into one: a JSON response costs no
/// allocation once the thread has served a few.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// No bytes.
    Empty,
    /// Bytes that live for the whole program (no copy, no allocation).
    Static(&'static [u8]),
    /// Owned bytes.
    Bytes(Vec<u8>),
}

impl Body {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Static(b) => b,
            Body::Bytes(b) => b,
        }
    }
}

/// Spare body buffers kept per thread (each loop is one thread).
const SPARE_BODIES: usize = 64;

thread_local! {
    static SPARES: Spares<Vec<u8>> = const { Spares::new(SPARE_BODIES) };
}

/// An empty buffer, recycled if one is spare.
fn spare_buffer() -> Vec<u8> {
    SPARES
        .try_with(Spares::take)
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Drop for Body {
    // Inline: most bodies are static and need nothing; a call per response
    // to learn that costs more than the check.
    #[inline]
    fn drop(&mut self) {
        if let Body::Bytes(bytes) = self {
            if bytes.capacity() != 0 && bytes.capacity() <= SPARE_BUFFER_MAX {
                recycle(std::mem::take(bytes));
            }
        }
    }
}

/// Gives a dropped body's buffer back to this thread's spares.
#[inline(never)]
fn recycle(mut bytes: Vec<u8>) {
    bytes.clear();
    let _ = SPARES.try_with(|spares| spares.give(bytes));
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({} bytes)", self.as_bytes().len())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Static(s.as_bytes())
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::Static(s)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Bytes(s.into_bytes())
    }
}

/// Borrowed text is copied (a route parameter, say): a body outlives
/// the request it answers.
impl<'a> From<Cow<'a, str>> for Body {
    fn from(s: Cow<'a, str>) -> Body {
        match s {
            Cow::Borrowed(s) => Body::Bytes(s.as_bytes().to_vec()),
            Cow::Owned(s) => Body::Bytes(s.into_bytes()),
        }
    }
}

impl From<&String> for Body {
    fn from(s: &String) -> Body {
        Body::Bytes(s.as_bytes().to_vec())
    }
}

/// No copy when the `Bytes` is the only owner of a whole buffer (as one
/// made from a `Vec` is); a copy otherwise.
impl From<bytes::Bytes> for Body {
    fn from(b: bytes::Bytes) -> Body {
        Body::Bytes(Vec::from(b))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Bytes(v)
    }
}

/// An HTTP response: status, header fields, body. The connection adds
/// `Date`, `Content-Length` and `Connection` itself.
///
/// Builder methods (`header`, `body`) take and return it; the `set_`
/// methods change one in place (in an `on_send` hook, say).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a response does nothing until it is returned or sent"]
pub struct Response {
    pub(crate) status: u16,
    /// An error whose body is still its bare message: the app's error
    /// renderer makes the body before it is sent (see `Error`). In the
    /// status's padding: a response is no larger for it.
    pub(crate) unrendered: bool,
    /// Kept apart from `headers`: nearly every response has one, and a
    /// field costs no allocation.
    pub(crate) content_type: Option<Cow<'static, [u8]>>,
    /// The other fields, boxed: most responses have none, and a response
    /// is written and copied on every request's path (one word, not three).
    #[allow(clippy::box_collection)] // one pointer instead of three, on purpose
    headers: Option<Box<Vec<Field>>>,
    pub(crate) body: Body,
}

/// A header field as a handler set it.
pub(crate) type Field = (Cow<'static, str>, Cow<'static, [u8]>);

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(crate::http::is_tchar)
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Fields the connection writes itself; a handler's copy would be wrong.
fn reserved(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "date"]
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
}

impl Response {
    /// Drops the response. One made of static parts only (most are) owns
    /// nothing and is forgotten instead: its drop glue is a call per
    /// response that would free nothing.
    #[inline]
    pub(crate) fn dispose(self) {
        let owns_nothing = self.headers.is_none()
            && !matches!(self.content_type, Some(Cow::Owned(_)))
            && !matches!(self.body, Body::Bytes(_));
        if owns_nothing {
            std::mem::forget(self);
        } // else dropped here, its buffers freed or recycled
    }

    /// An empty response with `status` (100..=999; others become 500).
    #[inline]
    pub fn new(status: impl Into<StatusCode>) -> Response {
        Response::typed(status.into().as_u16(), None, Body::Empty)
    }

    /// A response built in one go: the builder methods would move it and
    /// drop the fields they replace, a cost every response pays.
    fn typed(status: u16, content_type: Option<&'static [u8]>, body: Body) -> Response {
        Response {
            status: if (100..=999).contains(&status) {
                status
            } else {
                500
            },
            unrendered: false,
            content_type: content_type.map(Cow::Borrowed),
            headers: None,
            body,
        }
    }

    /// An error the app's renderer turns into a body (JSON or text, as
    /// the client accepts); `message` is what it says.
    pub(crate) fn unrendered_error(status: StatusCode, message: String) -> Response {
        let mut response = Response::text(status, message);
        response.unrendered = true;
        response
    }

    /// True for an error response whose body the app's error renderer has
    /// still to make; its body is the error's message.
    pub fn is_unrendered_error(&self) -> bool {
        self.unrendered
    }

    /// A `text/plain` response.
    #[inline]
    pub fn text(status: impl Into<StatusCode>, body: impl Into<Body>) -> Response {
        Response::typed(
            status.into().as_u16(),
            Some(b"text/plain; charset=utf-8"),
            body.into(),
        )
    }

    /// An `application/json` response serialising `value`.
    pub fn json<T: Serialize + ?Sized>(status: impl Into<StatusCode>, value: &T) -> Response {
        let mut bytes = spare_buffer();
        match serde_json::to_writer(&mut bytes, value) {
            Ok(()) => Response::typed(
                status.into().as_u16(),
                Some(b"application/json"),
                Body::Bytes(bytes),
            ),
            Err(e) => Response::text(500, format!("response serialisation failed: {e}\n")),
        }
    }

    /// `{"error": message}` with `status`.
    pub fn json_error(status: impl Into<StatusCode>, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// Adds a header field (see [`Response::append_header`]).
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<HeaderValue>,
    ) -> Response {
        self.append_header(name, value);
        self
    }

    /// Adds a header field, after any of the same name. Fields with an
    /// invalid name, a value containing CR, LF or NUL (response
    /// splitting), or one the connection manages (Content-Length,
    /// Transfer-Encoding, Connection, Date) are ignored.
    pub fn append_header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<HeaderValue>,
    ) {
        let name = name.into();
        let value = value.into().0;
        if valid_name(&name) && valid_value(&value) && !reserved(&name) {
            if name.eq_ignore_ascii_case("content-type") {
                self.content_type = Some(value);
            } else {
                self.headers
                    .get_or_insert_with(Box::default)
                    .push((name, value));
            }
        }
    }

    /// Sets a header field, replacing every field of that name (same
    /// rules as [`Response::append_header`]).
    pub fn set_header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<HeaderValue>,
    ) {
        let name = name.into();
        self.remove_header(&name);
        self.append_header(name, value);
    }

    /// Removes every header field called `name` (case-insensitive).
    pub fn remove_header(&mut self, name: &str) {
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = None;
        } else if let Some(fields) = &mut self.headers {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
    }

    /// Adds a `Set-Cookie` field (none for a cookie that cannot be sent
    /// as it is: see [`crate::http::Cookie`]).
    pub fn set_cookie(&mut self, cookie: &crate::http::cookie::Cookie) {
        let value = cookie.to_string();
        if !value.is_empty() {
            self.append_header("Set-Cookie", value);
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: impl Into<Body>) {
        self.body = body.into();
        self.unrendered = false;
    }

    /// Replaces the status.
    pub fn set_status(&mut self, status: impl Into<StatusCode>) {
        self.status = status.into().as_u16();
    }

    /// The status code, as a number.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from(self.status)
    }

    /// Every header field but the content type, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.other_fields().iter().map(|(n, v)| (&**n, &**v))
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        self.body.as_bytes()
    }

    /// The first header called `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type.as_deref();
        }
        self.other_fields()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// The fields other than the content type.
    pub(crate) fn other_fields(&self) -> &[Field] {
        self.headers.as_deref().map_or(&[], Vec::as_slice)
    }
}

/// A header value: from `&'static str`, `String`, bytes or numbers.
#[derive(Debug, Clone)]
pub struct HeaderValue(Cow<'static, [u8]>);

impl From<&'static str> for HeaderValue {
    fn from(s: &'static str) -> Self {
        HeaderValue(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue(Cow::Owned(s.into_bytes()))
    }
}

impl From<Vec<u8>> for HeaderValue {
    fn from(v: Vec<u8>) -> Self {
        HeaderValue(Cow::Owned(v))
    }
}

/// Borrowed text is copied.
impl<'a> From<Cow<'a, str>> for HeaderValue {
    fn from(s: Cow<'a, str>) -> Self {
        HeaderValue(Cow::Owned(s.into_owned().into_bytes()))
    }
}

impl From<&String> for HeaderValue {
    fn from(s: &String) -> Self {
        HeaderValue(Cow::Owned(s.as_bytes().to_vec()))
    }
}

impl From<u64> for HeaderValue {
    fn from(n: u64) -> Self {
        HeaderValue(Cow::Owned(n.to_string().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_bodies_without_a_copy() {
        let v = b"shared".to_vec();
        let at = v.as_ptr();
        let body = Body::from(bytes::Bytes::from(v));
        assert_eq!(
            (body.as_bytes(), body.as_bytes().as_ptr()),
            (&b"shared"[..], at)
        );
    }

    #[test]
    fn unsafe_headers_are_dropped() {
        let r = Response::new(200)
            .header("X-Ok", "fine")
            .header("X-Split", "a\r\nSet-Cookie: evil=1")
            .header("Bad Name", "v")
            .header("Content-Length", "5")
            .header("connection", "keep-alive");
        assert_eq!(r.other_fields().len(), 1);
        assert_eq!(
            Response::text(200, "x").header_value("Content-Type"),
            Some(&b"text/plain; charset=utf-8"[..])
        );
        assert_eq!(r.header_value("x-ok"), Some(&b"fine"[..]));
        assert_eq!(Response::new(42).status(), 500);
    }

    #[test]
    fn disposing_an_owned_body_recycles_its_buffer_and_a_static_one_owns_nothing() {
        // This thread's spares are emptied first (other tests on the thread
        // may have left some).
        while SPARES.with(Spares::take).is_some() {}
        Response::text(200, "static").dispose();
        assert!(SPARES.with(Spares::take).is_none(), "nothing to recycle");
        let mut owned = Vec::with_capacity(64);
        owned.extend_from_slice(b"owned");
        let pointer = owned.as_ptr();
        Response::text(200, owned).dispose();
        let recycled = SPARES.with(Spares::take).expect("the body's buffer");
        assert_eq!((recycled.as_ptr(), recycled.len()), (pointer, 0));
        // Owned headers are dropped, not forgotten: a leak checker (Miri,
        // valgrind) sees the difference; here, that it still recycles.
        Response::text(200, b"x".to_vec())
            .header("X-A", "b")
            .dispose();
        assert!(SPARES.with(Spares::take).is_some());
    }
}
