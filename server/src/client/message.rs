//! What a client sends and gets: [`ClientRequest`], [`ClientResponse`], and
//! the typed [`ClientError`].

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// A request body given piece by piece: called each time the socket has
/// taken the previous piece; `None` ends the body.
#[derive(Clone)]
pub(crate) struct BodySource(pub Rc<RefCell<dyn FnMut() -> Option<Vec<u8>>>>);

impl fmt::Debug for BodySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodySource")
    }
}

/// A request for [`Client`](super::Client): a method, an `http://` or
/// `https://` URL, header fields and a body.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) fields: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
    pub(crate) source: Option<BodySource>,
    pub(crate) timeout: Option<Duration>,
}

impl ClientRequest {
    /// A request of `method` for `url` (`http[s]://host[:port]/path?query`).
    pub fn new(method: &str, url: &str) -> ClientRequest {
        ClientRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            fields: Vec::new(),
            body: Vec::new(),
            source: None,
            timeout: None,
        }
    }

    /// A GET request for `url`.
    pub fn get(url: &str) -> ClientRequest {
        ClientRequest::new("GET", url)
    }

    /// A POST request for `url`.
    pub fn post(url: &str) -> ClientRequest {
        ClientRequest::new("POST", url)
    }

    /// Adds a header field. `Host`, `Content-Length` and
    /// `Transfer-Encoding` are the client's to write and are refused here
    /// (the request then fails with [`ClientError::InvalidRequest`]).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> ClientRequest {
        self.fields.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body (sent with its `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> ClientRequest {
        self.body = body.into();
        self
    }

    /// Streams the body: `next` is called for a piece each time the socket
    /// has taken the one before (so a slow server slows the producer, and
    /// nothing piles up), until it returns `None`. Sent with the chunked
    /// coding. A streamed body is never sent twice: its request is tried
    /// again only if nothing of it left.
    pub fn body_stream(mut self, next: impl FnMut() -> Option<Vec<u8>> + 'static) -> ClientRequest {
        self.source = Some(BodySource(Rc::new(RefCell::new(next))));
        self.body.clear();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> ClientRequest {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("Content-Type", "application/json").body(body)
    }

    /// This request's whole-request timeout, in place of the client's.
    pub fn timeout(mut self, timeout: Duration) -> ClientRequest {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether a retry may repeat this request whatever happened to the
    /// first try (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }
}

/// A response the client received: status, header fields and the whole
/// body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// The status code.
    pub status: u16,
    /// The header fields in order, names as sent.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The body (decoded from chunks if it was chunked).
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The first field named `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Which of a request's timeouts passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Connecting took longer than [`ClientConfig::connect_timeout`](super::ClientConfig::connect_timeout).
    Connect,
    /// The response head did not come within
    /// [`ClientConfig::head_timeout`](super::ClientConfig::head_timeout) of
    /// the request being sent.
    Head,
    /// The whole request (retries included) took longer than its timeout.
    Request,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The URL or the request cannot be sent (not `http://` or `https://`,
    /// no host, a field the client writes itself).
    InvalidRequest(String),
    /// The host name did not resolve.
    Dns(String),
    /// The server refused the connection.
    Refused,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// A timeout passed.
    Timeout(TimeoutKind),
    /// The response broke HTTP/1.1 (or a limit): the reason.
    BadResponse(String),
    /// The origin's sockets are all busy and its queue of waiting requests
    /// is full.
    PoolFull,
    /// TLS failed (an `https` request): the server's certificate was not
    /// trusted or not valid for the host, the handshake broke, or a record
    /// was bad. Never tried again: the next try would fail the same way.
    Tls(String),
    /// Any other I/O error, as text.
    Io(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            ClientError::Dns(m) => write!(f, "name resolution failed: {m}"),
            ClientError::Refused => f.write_str("connection refused"),
            ClientError::Reset => f.write_str("connection closed before the response was complete"),
            ClientError::Timeout(TimeoutKind::Connect) => f.write_str("connect timed out"),
            ClientError::Timeout(TimeoutKind::Head) => f.write_str("no response head in time"),
            ClientError::Timeout(TimeoutKind::Request) => f.write_str("request timed out"),
            ClientError::BadResponse(m) => write!(f, "bad response: {m}"),
            ClientError::PoolFull => f.write_str("too many requests waiting for this origin"),
            ClientError::Tls(m) => write!(f, "TLS: {m}"),
            ClientError::Io(m) => write!(f, "I/O error: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}
