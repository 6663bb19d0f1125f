//! Server settings: limits and timeouts, each default a named constant that
//! says why it has that value.

use std::time::Duration;

use crate::http::HeadLimits;

/// Longest request line: 8 KiB, the common limit (nginx's default buffer).
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Largest request head: 16 KiB, Node's `--max-http-header-size` default.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields: 64, far above any browser's, low enough to bound work.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Largest request body a route accepts unless it says otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Time for a client to send a whole request head (slowloris defence).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an idle keep-alive connection is kept: Node's `keepAliveTimeout`.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two pieces of a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a connection may go without taking any of our response bytes.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Pending connections the kernel queues for us: at least the 1024 a burst
/// of new clients needs (the kernel caps it at `somaxconn`).
pub const DEFAULT_BACKLOG: i32 = 1024;
/// Requests one connection may have in flight (pipelined) before we stop
/// reading from it: enough for 16-deep pipelining, and a bound on the
/// answers a client that stops reading can make us hold (16 times a
/// response).
pub const DEFAULT_MAX_PIPELINE: usize = 16;
/// Requests one connection may have dispatched and not yet answered: the
/// answers a slow handler has yet to produce are memory we cannot bound by
/// bytes, so we bound them by count. Handlers that answer at once never
/// count against it, so 16-deep pipelining of fast routes is unaffected.
pub const DEFAULT_MAX_UNANSWERED: usize = 4;
/// Response bytes a client has not taken (unsent, or answered and waiting
/// behind an earlier answer) past which we stop reading from it. The kernel's
/// send buffer holds more; 64 KiB on our side keeps 1,000 clients that never
/// read under 64 MiB.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 64 * 1024;
/// How long accepting pauses after EMFILE/ENFILE (out of descriptors).
pub const DEFAULT_ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Settings of a [`crate::Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// Largest request head (431 beyond).
    pub max_head_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
    /// Largest request body, unless a route sets its own (413 beyond).
    pub max_body: u64,
    /// Time to receive a complete request head (408 and close after).
    pub header_timeout: Duration,
    /// Idle time before a keep-alive connection is closed.
    pub keep_alive_timeout: Duration,
    /// Longest pause while receiving a body (408 and close after).
    pub body_timeout: Duration,
    /// Longest a client may refuse our response bytes (closed after).
    pub send_timeout: Duration,
    /// Listen backlog.
    pub backlog: i32,
    /// Set SO_REUSEPORT so several loops or processes share the port.
    pub reuse_port: bool,
    /// In-flight requests per connection before reading pauses.
    pub max_pipeline: usize,
    /// Dispatched-but-unanswered requests per connection before reading pauses.
    pub max_unanswered: usize,
    /// Unsent bytes per connection before reading pauses.
    pub write_high_water: usize,
    /// Pause after running out of file descriptors.
    pub accept_pause: Duration,
    /// Longest a handler may take to answer (or start a stream) once its
    /// request is dispatched: past it the client gets a 503 in that
    /// request's place, the requests behind it go on, and the handler's
    /// late answer is dropped. `None` (the default, as in Node and Go):
    /// a handler may take as long as it likes.
    pub handler_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            max_pipeline: DEFAULT_MAX_PIPELINE,
            max_unanswered: DEFAULT_MAX_UNANSWERED,
            write_high_water: DEFAULT_WRITE_HIGH_WATER,
            accept_pause: DEFAULT_ACCEPT_PAUSE,
            handler_timeout: None,
        }
    }
}

impl ServerConfig {
    pub(crate) fn head_limits(&self) -> HeadLimits {
        HeadLimits {
            max_request_line: self.max_request_line,
            max_head_bytes: self.max_head_bytes,
            max_headers: self.max_headers,
        }
    }
}
