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
/// Longest a whole request (head and body) may take to arrive: Node's
/// `server.requestTimeout` default. Generous for any upload a route does
/// not relax it for, and still an end for a client that trickles inside
/// every other bound.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The slowest a request body may arrive on average, after a grace:
/// Kestrel's `MinRequestBodyDataRate` (240 bytes/s after 5 s). A client
/// sending a byte every few seconds holds a connection (and up to a body
/// limit of buffer) only that long.
pub const DEFAULT_MIN_BODY_RATE: DataRate = DataRate {
    bytes_per_second: 240,
    grace: Duration::from_secs(5),
};
/// The slowest a client may take a response on average, after a grace:
/// Kestrel's `MinResponseDataRate` (240 bytes/s after 5 s).
pub const DEFAULT_MIN_RESPONSE_RATE: DataRate = DataRate {
    bytes_per_second: 240,
    grace: Duration::from_secs(5),
};

/// A minimum data rate: on average `bytes_per_second` since the transfer
/// began, checked once `grace` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRate {
    /// The least average rate, in bytes per second.
    pub bytes_per_second: u64,
    /// How long a transfer may go before its rate is checked.
    pub grace: Duration,
}

impl DataRate {
    /// When a transfer that began at `start_ns` and has moved `bytes` falls
    /// below the rate if nothing more moves (loop nanoseconds).
    pub(crate) fn due(&self, start_ns: u64, bytes: u64) -> u64 {
        let earned = bytes
            .saturating_mul(1_000_000_000)
            .checked_div(self.bytes_per_second)
            .unwrap_or(u64::MAX);
        start_ns.saturating_add(earned.max(self.grace.as_nanos().min(u128::from(u64::MAX)) as u64))
    }
}

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

/// Default longest graceful shutdown of [`crate::serve`] and
/// [`crate::serve_cluster`] on SIGINT/SIGTERM before what is still open is
/// closed.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// [`ServerConfig::drain_idle_grace`]: idle connections close at once.
pub const DEFAULT_DRAIN_IDLE_GRACE: Duration = Duration::ZERO;

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
    /// Longest a whole request, head and body, may take to arrive (408
    /// and close after); a route may set its own for its body
    /// ([`crate::App::request_timeout`]).
    pub request_timeout: Duration,
    /// The slowest a body may arrive (408 and close below it); `None`: no
    /// rate. A route may set its own ([`crate::App::min_body_rate`]).
    pub min_body_rate: Option<DataRate>,
    /// The slowest a client may take our response bytes (the connection is
    /// closed below it); `None`: only the send timeout applies.
    pub min_response_rate: Option<DataRate>,
    /// How long [`crate::serve`] and [`crate::serve_cluster`] let
    /// in-flight requests finish after SIGINT or SIGTERM.
    pub shutdown_deadline: Duration,
    /// During a graceful shutdown, how long idle keep-alive connections
    /// stay open: a request arriving on one is answered (with
    /// `Connection: close`) instead of meeting a closed socket. Zero (the
    /// default, as Node's `server.close()` with `closeIdleConnections`):
    /// idle connections close at once. Behind a proxy that reuses upstream
    /// connections (nginx's `keepalive`), set it above the proxy's upstream
    /// `keepalive_timeout`, so the proxy, not the server, closes them and
    /// never sends a request on a connection being closed.
    pub drain_idle_grace: Duration,
    /// Serve HTTPS with this certificate (feature `tls`); `None` (the
    /// default): plain HTTP. The header timeout bounds the handshake too.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::engine::tls::TlsConfig>,
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
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            min_body_rate: Some(DEFAULT_MIN_BODY_RATE),
            min_response_rate: Some(DEFAULT_MIN_RESPONSE_RATE),
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            drain_idle_grace: DEFAULT_DRAIN_IDLE_GRACE,
            #[cfg(feature = "tls")]
            tls: None,
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
