//! One client connection: connecting, writing a request, reading its
//! response (head, then a body framed by length, chunks or the close).
//! Pure state over a nonblocking socket; the agent (`agent.rs`) drives it
//! from the connection's readiness events and decides what follows.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use phaseloop_core::{IoToken, TimerId};

use super::{ClientError, ClientResponse, TimeoutKind};
use crate::http::{parse_response_head, ChunkedDecoder, ResponseBodyFraming};
use crate::net::transport::Transport;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The TCP handshake is under way.
    Connecting,
    /// Connected, waiting for a request (in its origin's idle list).
    Idle,
    /// Sending a request.
    Writing,
    /// Reading the response.
    Reading,
}

/// How much of the response body is left.
#[derive(Debug)]
enum BodyLeft {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// What a readiness event led to.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Nothing final yet.
    Pending,
    /// A streamed request body's next piece is wanted: the socket took
    /// everything so far.
    NeedBody,
    /// Connected: the agent gives it a request (or makes it idle).
    Connected,
    /// The response is complete; the connection may be reused if `reuse`.
    Done {
        response: ClientResponse,
        reuse: bool,
    },
    /// The exchange failed. `reached`: some of the request was written, so
    /// the server may have acted on it.
    Failed { error: ClientError, reached: bool },
    /// An idle connection closed or misbehaved: drop it.
    Dropped,
}

/// The limits a response is read under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub max_head: usize,
    /// The largest body kept whole (a streamed body has no limit: its
    /// consumer takes it piece by piece).
    pub max_body: u64,
}

/// What a streamed response reads per event at most before its consumer
/// has it: the rest waits in the kernel (TCP's own backpressure).
const STREAM_READ_MAX: usize = 256 * 1024;

pub(crate) struct ClientConn {
    pub id: u64,
    /// The socket, or TLS over it (`https`).
    pub stream: Transport,
    pub token: Option<IoToken>,
    pub phase: Phase,
    /// It has carried a response before (a reused keep-alive connection).
    pub reused: bool,
    /// Its timer (connect, head, request or idle deadline).
    pub timer: Option<TimerId>,
    /// Addresses still to try if this connect fails.
    pub other_addrs: Vec<SocketAddr>,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    head_request: bool,
    wrote_any: bool,
    response: Option<ClientResponse>,
    keep_alive: bool,
    body_left: Option<BodyLeft>,
    /// The request's body comes piece by piece (chunked) until its last.
    body_streamed: bool,
    /// The response's body goes to its consumer piece by piece.
    pub streaming: bool,
    /// A streamed response's head was parsed and not yet handed on.
    pub head_fresh: bool,
    /// The last read stopped at its cap, not at "would block": read again
    /// (no new event will say so).
    pub more: bool,
}

impl ClientConn {
    /// Starts connecting to `addr` (nonblocking: the handshake finishes in
    /// the poll phase). `tls` wraps the socket: the TLS handshake begins
    /// with the first write (the request waits in rustls until it is done).
    pub fn connect(
        id: u64,
        addr: SocketAddr,
        other_addrs: Vec<SocketAddr>,
        tls: Option<TlsStart>,
    ) -> io::Result<Self> {
        let socket = TcpStream::connect(addr)?;
        let _ = socket.set_nodelay(true);
        let stream = match tls {
            None => Transport::Plain(socket),
            #[cfg(feature = "tls")]
            Some((session, counters)) => Transport::Tls(Box::new(crate::net::tls::TlsStream::new(
                socket, session, counters,
            ))),
            #[cfg(not(feature = "tls"))]
            Some(never) => match never {},
        };
        Ok(ClientConn {
            id,
            stream,
            token: None,
            phase: Phase::Connecting,
            reused: false,
            timer: None,
            other_addrs,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            head_request: false,
            wrote_any: false,
            response: None,
            keep_alive: false,
            body_left: None,
            body_streamed: false,
            streaming: false,
            head_fresh: false,
            more: false,
        })
    }

    /// Begins an exchange: the encoded request in `bytes` goes out next
    /// (then, if `body_streamed`, the pieces of its body as they are
    /// given); `streaming`: the response's body is handed on piece by
    /// piece.
    pub fn begin(
        &mut self,
        bytes: Vec<u8>,
        head_request: bool,
        body_streamed: bool,
        streaming: bool,
    ) {
        self.body_streamed = body_streamed;
        self.streaming = streaming;
        self.head_fresh = false;
        self.more = false;
        self.out = bytes;
        self.out_pos = 0;
        self.inbuf.clear();
        self.head_request = head_request;
        self.wrote_any = false;
        self.response = None;
        self.body_left = None;
        self.phase = Phase::Writing;
    }

    /// Whether any byte of the current request left.
    pub fn reached(&self) -> bool {
        self.wrote_any
    }

    /// The socket may be writable: finishes the handshake, or writes.
    pub fn on_writable(&mut self) -> Progress {
        match self.phase {
            Phase::Connecting => self.finish_connect(),
            Phase::Writing => self.write(),
            // TLS records (the request's last, a handshake flight) that
            // waited for room.
            Phase::Reading => match self.stream.settle() {
                Ok(_) => Progress::Pending,
                Err(e) => self.failed(io_error(&e)),
            },
            Phase::Idle => Progress::Pending,
        }
    }

    /// Sending a request: a read may have unblocked it (under TLS the
    /// handshake, done by reads, lets the held request out).
    pub fn is_writing(&self) -> bool {
        self.phase == Phase::Writing
    }

    fn finish_connect(&mut self) -> Progress {
        let socket = self.stream.socket();
        match socket.take_error() {
            Ok(Some(e)) | Err(e) => return self.connect_failed(&e),
            Ok(None) => {}
        }
        match socket.peer_addr() {
            Ok(_) => Progress::Connected,
            // Not connected yet: a later event says so.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Progress::Pending,
            Err(e) => self.connect_failed(&e),
        }
    }

    fn connect_failed(&self, e: &io::Error) -> Progress {
        let error = match e.kind() {
            io::ErrorKind::ConnectionRefused => ClientError::Refused,
            io::ErrorKind::TimedOut => ClientError::Timeout(TimeoutKind::Connect),
            _ => ClientError::Io(e.to_string()),
        };
        Progress::Failed {
            error,
            reached: false,
        }
    }

    fn write(&mut self) -> Progress {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return self.failed(ClientError::Reset),
                Ok(n) => {
                    self.out_pos += n;
                    self.wrote_any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(io_error(&e)),
            }
        }
        // Under TLS, records the socket had no room for wait in rustls: a
        // writable event sends them (`on_writable` while reading).
        if let Err(e) = self.stream.settle() {
            return self.failed(io_error(&e));
        }
        self.out = Vec::new();
        self.out_pos = 0;
        if self.body_streamed {
            return Progress::NeedBody;
        }
        self.phase = Phase::Reading;
        Progress::Pending
    }

    /// The next piece of a streamed request body (`None`: it has ended),
    /// framed as a chunk; writes on.
    pub fn body_piece(&mut self, piece: Option<Vec<u8>>) -> Progress {
        match piece {
            Some(data) if data.is_empty() => return Progress::NeedBody,
            Some(data) => {
                self.out
                    .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                self.out.extend_from_slice(&data);
                self.out.extend_from_slice(b"\r\n");
            }
            None => {
                self.out.extend_from_slice(b"0\r\n\r\n");
                self.body_streamed = false;
            }
        }
        self.write()
    }

    /// A streamed response's body so far, handed on.
    pub fn take_data(&mut self) -> Vec<u8> {
        self.response
            .as_mut()
            .map(|r| std::mem::take(&mut r.body))
            .unwrap_or_default()
    }

    /// A streamed response's status and fields (its body comes apart).
    pub fn head(&self) -> Option<ClientResponse> {
        self.response.as_ref().map(|r| ClientResponse {
            status: r.status,
            fields: r.fields.clone(),
            body: Vec::new(),
        })
    }

    fn failed(&self, error: ClientError) -> Progress {
        Progress::Failed {
            error,
            reached: self.wrote_any,
        }
    }

    /// The socket may be readable: reads what is there and goes on with
    /// the response.
    pub fn on_readable(&mut self, limits: ReadLimits) -> Progress {
        let mut eof = false;
        self.more = false;
        // Read into scratch space on the stack, kept only as far as it is
        // filled: an idle pooled connection holds no buffer.
        let mut scratch = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    if self.phase == Phase::Idle {
                        // Bytes nobody asked for: the connection is not
                        // to be trusted with another request.
                        return Progress::Dropped;
                    }
                    // Read on to "would block" (or the end): the socket is
                    // registered edge-triggered, and a FIN that came with
                    // these bytes raises no new event. What is buffered is
                    // bounded by the limits, checked as bytes are taken.
                    let cap = if self.streaming {
                        STREAM_READ_MAX as u64
                    } else {
                        limits.max_body + limits.max_head as u64
                    };
                    if self.inbuf.len() as u64 > cap {
                        self.more = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.phase == Phase::Idle {
                        return Progress::Dropped;
                    }
                    return self.failed(io_error(&e));
                }
            }
        }
        match self.phase {
            Phase::Idle if eof => Progress::Dropped,
            Phase::Reading => self.take_response(limits, eof),
            // A response before the request is out: the server answered
            // early (an error, say); read it all the same.
            Phase::Writing if !self.inbuf.is_empty() || eof => {
                self.phase = Phase::Reading;
                self.take_response(limits, eof)
            }
            _ if eof => self.failed(ClientError::Reset),
            _ => Progress::Pending,
        }
    }

    /// Parses and decodes what is buffered.
    fn take_response(&mut self, limits: ReadLimits, eof: bool) -> Progress {
        loop {
            if self.body_left.is_none() {
                let head =
                    match parse_response_head(&self.inbuf, self.head_request, limits.max_head) {
                        Ok(Some(head)) => head,
                        Ok(None) if eof => {
                            return self.failed(if self.inbuf.is_empty() {
                                ClientError::Reset
                            } else {
                                ClientError::BadResponse(
                                    "the connection closed inside the response head".into(),
                                )
                            })
                        }
                        Ok(None) => return Progress::Pending,
                        Err(e) => return self.failed(ClientError::BadResponse(e.0.into_owned())),
                    };
                self.inbuf.drain(..head.len);
                // 1xx interim responses (but 101, which this client never
                // asks for) are skipped: the final one follows.
                if (100..200).contains(&head.status) {
                    if head.status == 101 {
                        return self.failed(ClientError::BadResponse(
                            "an unrequested protocol switch".into(),
                        ));
                    }
                    continue;
                }
                self.keep_alive = head.keep_alive;
                self.body_left = Some(match head.framing {
                    ResponseBodyFraming::None => BodyLeft::Length(0),
                    ResponseBodyFraming::Length(n) if n > limits.max_body && !self.streaming => {
                        return self.failed(ClientError::BadResponse(format!(
                            "response body of {n} bytes is over the limit of {}",
                            limits.max_body
                        )))
                    }
                    ResponseBodyFraming::Length(n) => BodyLeft::Length(n),
                    ResponseBodyFraming::Chunked => BodyLeft::Chunked(ChunkedDecoder::new()),
                    ResponseBodyFraming::UntilClose => BodyLeft::UntilClose,
                });
                self.response = Some(ClientResponse {
                    status: head.status,
                    fields: head.fields,
                    body: Vec::new(),
                });
                self.head_fresh = self.streaming;
            }
            return self.take_body(limits, eof);
        }
    }

    fn take_body(&mut self, limits: ReadLimits, eof: bool) -> Progress {
        let (Some(left), Some(response)) = (self.body_left.as_mut(), self.response.as_mut()) else {
            return Progress::Pending;
        };
        // A streamed body is handed on as it comes: what is kept is one
        // read's worth, whatever its length.
        let max_body = if self.streaming {
            u64::MAX
        } else {
            limits.max_body
        };
        let done = match left {
            BodyLeft::Length(n) => {
                let take = (*n).min(self.inbuf.len() as u64) as usize;
                response.body.extend_from_slice(&self.inbuf[..take]);
                self.inbuf.drain(..take);
                *n -= take as u64;
                *n == 0
            }
            BodyLeft::Chunked(decoder) => {
                match decoder.decode(&self.inbuf, &mut response.body, max_body) {
                    Ok(used) => {
                        self.inbuf.drain(..used);
                        decoder.is_done()
                    }
                    Err(e) => {
                        let reason = format!("bad chunked body: {}", e.message);
                        return self.failed(ClientError::BadResponse(reason));
                    }
                }
            }
            BodyLeft::UntilClose => {
                response.body.append(&mut self.inbuf);
                if response.body.len() as u64 > max_body {
                    return self.failed(ClientError::BadResponse(format!(
                        "response body over the limit of {} bytes",
                        limits.max_body
                    )));
                }
                eof
            }
        };
        if !done {
            if eof {
                return self.failed(ClientError::BadResponse(
                    "the connection closed inside the response body".into(),
                ));
            }
            return Progress::Pending;
        }
        // Bytes after the response that nobody asked for: answer this one,
        // but do not reuse the connection.
        let reuse = self.keep_alive && !eof && self.inbuf.is_empty() && self.out.is_empty();
        let response = self.response.take().expect("a response is being read");
        self.body_left = None;
        // Idle in the pool, it keeps no buffer.
        self.inbuf = Vec::new();
        self.phase = Phase::Idle;
        self.reused = true;
        Progress::Done { response, reuse }
    }
}

/// What a connection needs to speak TLS: its rustls session and the
/// client's counters (uninhabited without the `tls` feature).
#[cfg(feature = "tls")]
pub(crate) type TlsStart = (
    rustls::ClientConnection,
    std::rc::Rc<crate::net::tls::TlsCounters>,
);
/// What a connection needs to speak TLS (uninhabited without the `tls`
/// feature).
#[cfg(not(feature = "tls"))]
pub(crate) type TlsStart = std::convert::Infallible;

fn io_error(e: &io::Error) -> ClientError {
    // A TLS failure (rustls's error, carried by the stream's io::Error).
    #[cfg(feature = "tls")]
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return ClientError::Tls(tls.to_string());
    }
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ClientError::Reset,
        io::ErrorKind::ConnectionRefused => ClientError::Refused,
        _ => ClientError::Io(e.to_string()),
    }
}

impl ClientConn {
    /// The current response's head has been read.
    pub fn has_head(&self) -> bool {
        self.response.is_some()
    }
}
