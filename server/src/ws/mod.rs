//! WebSocket (RFC 6455) on the loop: a route accepts an upgrade with
//! [`crate::Responder::websocket`]; the engine writes the 101 and hands
//! the connection over; [`WebSocket`] reads and writes it in the poll
//! phase. Our own frame codec (`frame.rs`): a frame is a few bytes of
//! header, and owning the buffers is what bounds them.
//!
//! ```no_run
//! use phaseloop::{ws::{Message, WsConfig}, App};
//!
//! let app = App::new().get_with("/echo", |_lp, req, res| {
//!     res.websocket(&req, WsConfig::default(), |_lp, ws| {
//!         ws.on_message(|_lp, ws, msg| {
//!             let _ = ws.send(&msg); // Err(Full) when the client reads too slowly
//!         });
//!     });
//! });
//! ```
//!
//! Files: `handshake.rs` (the 101 and its refusals), `frame.rs` (frames,
//! masking, close codes), `socket.rs` (one socket on the loop),
//! `registry.rs` (this thread's sockets and counters).

pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod registry;
pub(crate) mod socket;

use std::time::Duration;

pub use socket::{SocketStats, WebSocket};

/// A WebSocket's limits and timeouts.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// The largest message received (all its fragments): past it the
    /// socket closes with 1009. Input buffered is bounded by it.
    pub max_message: usize,
    /// Output the client has not taken past which sends are refused
    /// ([`SendError::Full`]; [`WebSocket::on_drain`] says when there is
    /// room again). Reading pauses at half of it (so a message's handler
    /// has the other half for its replies) and resumes below a quarter.
    pub write_high_water: usize,
    /// Without a frame from the client for half of it, we ping; for all
    /// of it, we close (1001). `None`: no idle timeout.
    pub idle_timeout: Option<Duration>,
    /// How long a close we started waits for the client's answer.
    pub close_timeout: Duration,
}

/// Largest message by default: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
/// Unread output by default before sends are refused: 1 MiB.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Idle timeout by default: a minute (a ping after 30 s of silence keeps
/// a live client open through proxies' own idle timeouts).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Close handshake timeout by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message: DEFAULT_MAX_MESSAGE,
            write_high_water: DEFAULT_WRITE_HIGH_WATER,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        }
    }
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8, checked).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// Its payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether its payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message framed once, to send to many sockets
/// ([`WebSocket::send_prepared`]).
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    frame: Vec<u8>,
    payload_len: usize,
}

impl PreparedMessage {
    /// A text message, framed.
    pub fn text(text: &str) -> PreparedMessage {
        let mut frame = Vec::with_capacity(text.len() + 10);
        frame::encode(&mut frame, frame::Opcode::Text, text.as_bytes());
        PreparedMessage {
            frame,
            payload_len: text.len(),
        }
    }

    /// A binary message, framed.
    pub fn binary(data: &[u8]) -> PreparedMessage {
        let mut frame = Vec::with_capacity(data.len() + 10);
        frame::encode(&mut frame, frame::Opcode::Binary, data);
        PreparedMessage {
            frame,
            payload_len: data.len(),
        }
    }
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The socket is closing or closed.
    Closed,
    /// The client has not taken what was sent before, past
    /// [`WsConfig::write_high_water`]: wait for [`WebSocket::on_drain`]
    /// (or drop the message, or close).
    Full,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the WebSocket is closed",
            SendError::Full => "the WebSocket's client is not reading: its output is full",
        })
    }
}

impl std::error::Error for SendError {}

/// The WebSockets of this thread's loop, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Open now.
    pub open: u64,
    /// Opened (handshakes accepted).
    pub opened: u64,
    /// Closed.
    pub closed: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Bytes read from the sockets.
    pub bytes_read: u64,
    /// Closed for a protocol breach (1002, 1007).
    pub protocol_errors: u64,
    /// Closed for a message over the limit (1009).
    pub too_big: u64,
    /// Closed for silence (1001).
    pub idle_timeouts: u64,
    /// Sends refused because the client did not read.
    pub sends_refused: u64,
    /// Times a socket stopped reading because its client left our output
    /// unread past the mark (backpressure at work).
    pub read_pauses: u64,
}

impl WsStats {
    pub(crate) const ZERO: WsStats = WsStats {
        open: 0,
        opened: 0,
        closed: 0,
        messages_in: 0,
        messages_out: 0,
        bytes_read: 0,
        protocol_errors: 0,
        too_big: 0,
        idle_timeouts: 0,
        sends_refused: 0,
        read_pauses: 0,
    };
}

/// The WebSocket figures of the loop on this thread.
pub fn stats() -> WsStats {
    registry::stats()
}

/// Closes every WebSocket of this thread's loop with 1001 (going away);
/// [`crate::Server::shutdown`] calls it.
pub fn close_all(lp: &phaseloop_core::Loop) {
    registry::going_away(lp);
}
