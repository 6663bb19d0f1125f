//! One WebSocket on the loop: the connection the engine handed over after
//! its 101, read and written in the poll phase. Frames are checked as
//! RFC 6455 says a server must (masking, control frames, fragmentation,
//! UTF-8 of text, close codes); messages go to the `on_message` callback;
//! sends are framed into a bounded output buffer. Reading pauses while the
//! client leaves our output unread past the high-water mark, and sends
//! beyond the limit are refused, never queued without bound.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::Interest;
use phaseloop_core::{IoEvent, IoOutcome, IoToken, Loop, TimerId};

use crate::engine::read_buffer::{ReadBuffer, READ_BUFFER_SIZE};
use crate::engine::upgrade::Upgraded;
use crate::net::transport::{Settled, Transport};
use crate::ws::frame::{self, Opcode, Violation};
use crate::ws::registry;
use crate::ws::{Message, PreparedMessage, SendError, WsConfig};

/// Reads per readiness event before letting other sockets have a turn.
const READS_PER_EVENT: usize = 16;
/// The longest frame header (2 bytes, 8 of length, 4 of mask).
const MAX_HEADER: usize = 14;

type OnMessage = Box<dyn FnMut(&Loop, &WebSocket, Message)>;
type OnClose = Box<dyn FnOnce(&Loop, &WebSocket, u16, &str)>;
type OnDrain = Box<dyn FnOnce(&Loop, &WebSocket)>;

/// A WebSocket connection: a cheap handle (clone it to send from
/// anywhere on its loop). Set its callbacks in the `on_open` given to
/// [`crate::Responder::websocket`].
#[derive(Clone)]
pub struct WebSocket {
    inner: Rc<Socket>,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.inner.id)
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

/// One socket's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Whole messages received (text and binary).
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
}

struct Socket {
    id: u64,
    peer: Option<SocketAddr>,
    cfg: WsConfig,
    io: RefCell<Io>,
    on_message: RefCell<Option<OnMessage>>,
    on_close: RefCell<Option<OnClose>>,
    on_drain: RefCell<Option<OnDrain>>,
    /// The close code and reason `on_close` gets (set when the closing
    /// starts).
    closing: RefCell<Option<(u16, String)>>,
    stats: Cell<SocketStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// We sent a close frame and wait for the peer's (until a timeout).
    Closing,
    /// Our last frame is queued: the socket closes once it is written.
    Finishing,
    Closed,
}

struct Io {
    /// `None` once closed: the descriptor is closed then, whoever still
    /// holds a handle.
    stream: Option<Transport>,
    token: Option<IoToken>,
    /// Unparsed input, parsed in place. Freed while empty.
    inbuf: ReadBuffer,
    outbuf: Vec<u8>,
    out_pos: usize,
    /// The stream itself holds records the socket had no room for.
    stream_unsent: bool,
    /// A fragmented message being received: its opcode, bytes so far,
    /// and how far they are known to be UTF-8 (text).
    partial: Option<(Opcode, Vec<u8>, usize)>,
    phase: Phase,
    /// Input is not read while our output is over the high-water mark.
    paused: bool,
    /// Inside input processing: sends are written once it is over.
    in_input: bool,
    /// When a frame last arrived (loop nanoseconds).
    last_heard: u64,
    pinged: bool,
    timer: Option<TimerId>,
}

impl Io {
    fn unsent(&self) -> usize {
        self.outbuf.len() - self.out_pos + usize::from(self.stream_unsent)
    }
}

/// What input processing found for the socket to do outside the borrow.
enum Event {
    Message(Message),
    /// The peer's close frame: code and reason.
    PeerClosed(u16, String),
    /// The peer broke the protocol (or sent too much).
    Failed(Violation),
    /// The connection ended without a close frame, or broke.
    Gone,
}

/// Opens a WebSocket on connection `up` (the engine's, after its 101):
/// registers it with the loop, calls `on_open`, then reads what followed
/// the handshake.
pub(crate) fn open(
    lp: &Loop,
    up: Upgraded,
    cfg: WsConfig,
    on_open: impl FnOnce(&Loop, WebSocket) + 'static,
) {
    let Upgraded {
        stream,
        inbuf,
        peer,
    } = up;
    let ws = WebSocket {
        inner: Rc::new(Socket {
            id: registry::next_id(),
            peer,
            cfg,
            io: RefCell::new(Io {
                stream: Some(stream),
                token: None,
                inbuf,
                outbuf: Vec::new(),
                out_pos: 0,
                stream_unsent: false,
                partial: None,
                phase: Phase::Open,
                paused: false,
                in_input: false,
                last_heard: lp.now_ns(),
                pinged: false,
                timer: None,
            }),
            on_message: RefCell::new(None),
            on_close: RefCell::new(None),
            on_drain: RefCell::new(None),
            closing: RefCell::new(None),
            stats: Cell::new(SocketStats::default()),
        }),
    };
    let weak = Rc::downgrade(&ws.inner);
    let registered = {
        let mut io = ws.inner.io.borrow_mut();
        let Some(stream) = io.stream.as_mut() else {
            return;
        };
        lp.register_io(
            stream.socket_mut(),
            Interest::READABLE | Interest::WRITABLE,
            move |lp, ev| match weak.upgrade() {
                Some(inner) => WebSocket { inner }.on_event(lp, ev),
                None => IoOutcome::Drained,
            },
        )
    };
    match registered {
        Ok(token) => ws.inner.io.borrow_mut().token = Some(token),
        Err(_) => return, // dropped: the socket closes
    }
    registry::opened(&ws);
    ws.arm_idle_timer(lp);
    on_open(lp, ws.clone());
    // What the client sent after the handshake, then the socket.
    if ws.read_input(lp) == IoOutcome::Again {
        let again = ws.clone();
        lp.set_immediate(move |lp| {
            again.read_input(lp);
        });
    }
}

impl WebSocket {
    /// Calls `f` with each message received (text or binary, whole:
    /// fragments are joined, up to [`WsConfig::max_message`]).
    pub fn on_message(&self, f: impl FnMut(&Loop, &WebSocket, Message) + 'static) {
        *self.inner.on_message.borrow_mut() = Some(Box::new(f));
    }

    /// Calls `f` once when the socket has closed, with the close code
    /// (the peer's, ours, or 1006 when the connection simply ended) and
    /// reason.
    pub fn on_close(&self, f: impl FnOnce(&Loop, &WebSocket, u16, &str) + 'static) {
        *self.inner.on_close.borrow_mut() = Some(Box::new(f));
    }

    /// Calls `f` once when output buffered past half the high-water mark
    /// has drained below it (at once, in a check callback, if it already
    /// has): a sender refused with [`SendError::Full`] waits for this.
    pub fn on_drain(&self, f: impl FnOnce(&Loop, &WebSocket) + 'static) {
        let drained = {
            let io = self.inner.io.borrow();
            io.unsent() < self.inner.cfg.write_high_water / 2
        };
        if drained {
            let ws = self.clone();
            Loop::with_current(|lp| lp.set_immediate(move |lp| f(lp, &ws)));
        } else {
            *self.inner.on_drain.borrow_mut() = Some(Box::new(f));
        }
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send_frame(Opcode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Binary, data)
    }

    /// Sends `message`.
    pub fn send(&self, message: &Message) -> Result<(), SendError> {
        match message {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends a message framed once for many sockets (a broadcast copies
    /// its bytes, it does not frame them again).
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<(), SendError> {
        let frame = &message.frame;
        self.queue(frame.len(), message.payload_len, true, |out| {
            out.extend_from_slice(frame)
        })
    }

    /// Sends a ping (at most 125 bytes of payload; longer is cut).
    pub fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Ping, &payload[..payload.len().min(125)])
    }

    /// Starts the closing handshake with `code` (1000 normal, 1001 going
    /// away, 3000–4999 the application's) and `reason`; the socket closes
    /// when the peer answers, or after [`WsConfig::close_timeout`].
    pub fn close(&self, code: u16, reason: &str) {
        Loop::with_current(|lp| self.start_close(lp, code, reason, Phase::Closing));
    }

    /// Whether it is open for sending.
    pub fn is_open(&self) -> bool {
        self.inner.io.borrow().phase == Phase::Open
    }

    /// Output not yet taken by the client, in bytes.
    pub fn buffered(&self) -> usize {
        self.inner.io.borrow().unsent()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer
    }

    /// Its number on this thread (unique while the thread runs).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Its counters.
    pub fn stats(&self) -> SocketStats {
        self.inner.stats.get()
    }

    fn count(&self, f: impl FnOnce(&mut SocketStats)) {
        let mut s = self.inner.stats.get();
        f(&mut s);
        self.inner.stats.set(s);
    }

    fn send_frame(&self, opcode: Opcode, payload: &[u8]) -> Result<(), SendError> {
        let data = matches!(opcode, Opcode::Text | Opcode::Binary);
        self.queue(
            frame::encoded_len(payload.len()),
            payload.len(),
            data,
            |out| frame::encode(out, opcode, payload),
        )
    }

    /// Queues a frame of `frame_len` bytes, written by `put` straight into
    /// the output buffer (framed once, copied once), and writes it unless
    /// input is being processed (then the batch is written at its end).
    fn queue(
        &self,
        frame_len: usize,
        payload_len: usize,
        data: bool,
        put: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let write_now = {
            let mut io = self.inner.io.borrow_mut();
            if io.phase != Phase::Open {
                return Err(SendError::Closed);
            }
            if io.unsent() + frame_len > self.inner.cfg.write_high_water && io.unsent() > 0 {
                registry::count(|s| s.sends_refused += 1);
                return Err(SendError::Full);
            }
            put(&mut io.outbuf);
            !io.in_input
        };
        if data {
            self.count(|s| {
                s.messages_out += 1;
                s.bytes_out += payload_len as u64;
            });
            registry::count(|s| s.messages_out += 1);
        }
        if write_now {
            Loop::with_current(|lp| self.write_output(lp));
        }
        Ok(())
    }

    fn on_event(&self, lp: &Loop, ev: IoEvent) -> IoOutcome {
        if ev.writable && self.inner.io.borrow().unsent() > 0 {
            self.write_output(lp);
        }
        if ev.readable || ev.read_closed || ev.error {
            return self.read_input(lp);
        }
        IoOutcome::Drained
    }

    /// Reads and handles frames until the socket would block, the read
    /// budget is spent (`Again`), or reading pauses.
    fn read_input(&self, lp: &Loop) -> IoOutcome {
        // What was buffered first (the bytes after the handshake, or those
        // left when reading paused).
        if !self.handle_input(lp) {
            return IoOutcome::Drained;
        }
        for _ in 0..READS_PER_EVENT {
            let result = {
                let mut io = self.inner.io.borrow_mut();
                if io.paused || io.phase == Phase::Closed || io.phase == Phase::Finishing {
                    return IoOutcome::Drained;
                }
                let io = &mut *io;
                let Some(stream) = io.stream.as_mut() else {
                    return IoOutcome::Drained;
                };
                // Into the buffer's free tail (the engine's: initialised
                // once, compacted only when the tail runs short); it holds
                // at most one frame of the largest message and one read.
                if !io.inbuf.has_storage() {
                    io.inbuf.attach(Vec::new());
                }
                let max = self.inner.cfg.max_message + MAX_HEADER + READ_BUFFER_SIZE;
                io.inbuf
                    .read_from(stream, max)
                    .map(|(n, filled)| (n, !filled && stream.short_read_drains()))
            };
            match result {
                Ok((0, _)) => {
                    self.finish_with(lp, Event::Gone);
                    return IoOutcome::Drained;
                }
                Ok((n, drained)) => {
                    registry::count(|s| s.bytes_read += n as u64);
                    if !self.handle_input(lp) || drained {
                        self.release_input();
                        return IoOutcome::Drained;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.release_input();
                    return IoOutcome::Drained;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.finish_with(lp, Event::Gone);
                    return IoOutcome::Drained;
                }
            }
        }
        IoOutcome::Again
    }

    /// Frees the input buffer when nothing is in it: an idle socket keeps
    /// no buffer.
    fn release_input(&self) {
        drop(self.inner.io.borrow_mut().inbuf.detach_if_empty());
    }

    /// Handles the whole frames buffered. False once the socket is done
    /// reading (closing, closed, or failed).
    fn handle_input(&self, lp: &Loop) -> bool {
        self.inner.io.borrow_mut().in_input = true;
        let mut going = true;
        while going {
            let event = self.next_event(lp);
            match event {
                None => break,
                Some(Event::Message(message)) => {
                    self.count(|s| {
                        s.messages_in += 1;
                        s.bytes_in += message.len() as u64;
                    });
                    registry::count(|s| s.messages_in += 1);
                    // Taken out while it runs: it may send, close, or set
                    // another callback.
                    let callback = self.inner.on_message.borrow_mut().take();
                    if let Some(mut f) = callback {
                        f(lp, self, message);
                        let mut slot = self.inner.on_message.borrow_mut();
                        if slot.is_none() && self.inner.io.borrow().phase != Phase::Closed {
                            *slot = Some(f);
                        }
                    }
                    // What the messages so far made goes out now once it is
                    // half the mark; past the mark the rest of the input
                    // waits (reading pauses) until the client takes it.
                    let unsent = self.inner.io.borrow().unsent();
                    if unsent >= self.inner.cfg.write_high_water / 2 {
                        self.write_output(lp);
                        if self.inner.io.borrow().paused {
                            break;
                        }
                    }
                }
                Some(other) => {
                    self.finish_with(lp, other);
                    going = false;
                }
            }
            if self.inner.io.borrow().phase == Phase::Closed {
                return false;
            }
        }
        self.inner.io.borrow_mut().in_input = false;
        self.write_output(lp);
        going && self.inner.io.borrow().phase != Phase::Closed
    }

    /// The next message or event from the buffered bytes, answering pings
    /// on the way; `None` when a whole frame is not there yet.
    fn next_event(&self, lp: &Loop) -> Option<Event> {
        let max = self.inner.cfg.max_message;
        let mut io = self.inner.io.borrow_mut();
        let io = &mut *io;
        loop {
            if matches!(io.phase, Phase::Finishing | Phase::Closed) || io.paused {
                return None;
            }
            let buf = io.inbuf.data();
            let header = match frame::parse_header(buf) {
                Ok(Some(h)) => h,
                Ok(None) => return None,
                Err(v) => return Some(Event::Failed(v)),
            };
            let so_far = io.partial.as_ref().map_or(0, |p| p.1.len() as u64);
            if header.payload_len.saturating_add(so_far) > max as u64 {
                return Some(Event::Failed(Violation {
                    code: frame::TOO_BIG,
                    reason: "message too big",
                }));
            }
            let total = header.header_len + header.payload_len as usize;
            if buf.len() < total {
                return None;
            }
            io.last_heard = lp.now_ns();
            io.pinged = false;
            let open = io.phase == Phase::Open;
            let Io {
                inbuf,
                partial,
                outbuf,
                ..
            } = io;
            // Unmasked in place, handled, then consumed.
            frame::apply_mask(
                &mut inbuf.data_mut()[header.header_len..total],
                header.mask,
                0,
            );
            let payload = &inbuf.data()[header.header_len..total];
            let event = frame_event(header, payload, partial, outbuf, open);
            inbuf.consume(total);
            if event.is_some() {
                return event;
            }
        }
    }

    /// Writes what is queued; closes a finishing socket once all is out;
    /// resumes reading and calls `on_drain` once below half the mark.
    fn write_output(&self, lp: &Loop) {
        let (failed, finished, resume, drained) = {
            let mut io = self.inner.io.borrow_mut();
            let io = &mut *io;
            let Some(stream) = io.stream.as_mut() else {
                return;
            };
            let mut failed = false;
            while io.out_pos < io.outbuf.len() {
                match stream.write(&io.outbuf[io.out_pos..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => io.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if io.out_pos == io.outbuf.len() {
                // Empty: an idle socket keeps no output buffer.
                io.outbuf = Vec::new();
                io.out_pos = 0;
                match stream.settle() {
                    Ok(s) => io.stream_unsent = s == Settled::Unsent,
                    Err(_) => failed = true,
                }
            }
            // Input pauses at half the mark, so the message being handled
            // still has the other half for its replies (sends are refused
            // only past the mark), and resumes below a quarter.
            let half = self.inner.cfg.write_high_water / 2;
            let unsent = io.unsent();
            let finished = io.phase == Phase::Finishing && unsent == 0;
            let resume = io.paused && unsent < half / 2;
            if resume {
                io.paused = false;
            }
            if unsent >= half && !io.paused {
                io.paused = true;
                registry::count(|s| s.read_pauses += 1);
            }
            (failed, finished, resume, unsent < half)
        };
        if failed {
            self.finish_with(lp, Event::Gone);
            return;
        }
        if finished {
            self.shut(lp);
            return;
        }
        if drained {
            if let Some(f) = self.inner.on_drain.borrow_mut().take() {
                let ws = self.clone();
                lp.set_immediate(move |lp| f(lp, &ws));
            }
        }
        if resume {
            // The edge that brought the client's bytes may be spent.
            let ws = self.clone();
            lp.set_immediate(move |lp| {
                if ws.read_input(lp) == IoOutcome::Again {
                    let again = ws.clone();
                    lp.set_immediate(move |lp| {
                        again.read_input(lp);
                    });
                }
            });
        }
    }

    /// Ends the socket for `event`: answers a peer's close, fails a
    /// protocol breach with its code, or just closes.
    fn finish_with(&self, lp: &Loop, event: Event) {
        match event {
            Event::PeerClosed(code, reason) => {
                let closing = self.inner.io.borrow().phase == Phase::Closing;
                if closing {
                    // The answer to ours: done.
                    self.shut(lp);
                } else {
                    // Echo the code (none if it sent none), then close:
                    // the server closes the TCP connection first.
                    self.note_close(code, &reason);
                    {
                        let mut io = self.inner.io.borrow_mut();
                        if code == frame::NO_STATUS {
                            frame::encode(&mut io.outbuf, Opcode::Close, &[]);
                        } else {
                            frame::encode_close(&mut io.outbuf, code, "");
                        }
                        io.phase = Phase::Finishing;
                    }
                    self.write_output(lp);
                }
            }
            Event::Failed(v) => {
                registry::count(|s| {
                    if v.code == frame::TOO_BIG {
                        s.too_big += 1;
                    } else {
                        s.protocol_errors += 1;
                    }
                });
                self.start_close(lp, v.code, v.reason, Phase::Finishing);
            }
            Event::Gone | Event::Message(_) => {
                self.note_close(1006, "");
                self.shut(lp);
            }
        }
    }

    /// Sends a close frame and moves to `then` (Closing: wait for the
    /// peer's answer; Finishing: close once it is written).
    fn start_close(&self, lp: &Loop, code: u16, reason: &str, then: Phase) {
        {
            let mut io = self.inner.io.borrow_mut();
            if io.phase != Phase::Open {
                return;
            }
            frame::encode_close(&mut io.outbuf, code, reason);
            io.phase = then;
            io.partial = None;
        }
        self.note_close(code, reason);
        if then == Phase::Closing {
            let weak = Rc::downgrade(&self.inner);
            let timer = lp.set_timeout(self.inner.cfg.close_timeout, move |lp| {
                if let Some(inner) = weak.upgrade() {
                    WebSocket { inner }.shut(lp);
                }
            });
            lp.unref_timer(timer);
        }
        if !self.inner.io.borrow().in_input {
            self.write_output(lp);
        }
    }

    /// Remembers the first close code and reason for `on_close`.
    fn note_close(&self, code: u16, reason: &str) {
        let mut closing = self.inner.closing.borrow_mut();
        if closing.is_none() {
            *closing = Some((code, reason.to_string()));
        }
    }

    /// Closes the connection now: out of the loop and the registry,
    /// `on_close` called, callbacks dropped (they may hold handles to it).
    fn shut(&self, lp: &Loop) {
        {
            let mut io = self.inner.io.borrow_mut();
            if io.phase == Phase::Closed {
                return;
            }
            io.phase = Phase::Closed;
            let token = io.token.take();
            if let Some(mut stream) = io.stream.take() {
                if let Some(token) = token {
                    let _ = lp.deregister_io(token, stream.socket_mut());
                }
                stream.shutdown_write();
                // Dropped here: the descriptor closes now.
            }
            if let Some(t) = io.timer.take() {
                lp.clear_timer(t);
            }
            io.inbuf = ReadBuffer::default();
            io.outbuf = Vec::new();
            io.partial = None;
        }
        registry::closed(self);
        let (code, reason) = self
            .inner
            .closing
            .borrow_mut()
            .take()
            .unwrap_or((1006, String::new()));
        self.inner.on_message.borrow_mut().take();
        self.inner.on_drain.borrow_mut().take();
        let on_close = self.inner.on_close.borrow_mut().take();
        if let Some(f) = on_close {
            f(lp, self, code, &reason);
        }
    }

    /// The idle timer: a ping after half the idle timeout without a
    /// frame, a close (1001) after the whole.
    fn arm_idle_timer(&self, lp: &Loop) {
        let Some(idle) = self.inner.cfg.idle_timeout else {
            return;
        };
        let due = {
            let io = self.inner.io.borrow();
            let step = if io.pinged { idle } else { idle / 2 };
            io.last_heard + step.as_nanos() as u64
        };
        let delay = Duration::from_nanos(due.saturating_sub(lp.now_ns()));
        let weak: Weak<Socket> = Rc::downgrade(&self.inner);
        let timer = lp.set_timeout(delay, move |lp| {
            if let Some(inner) = weak.upgrade() {
                WebSocket { inner }.idle_check(lp, idle);
            }
        });
        lp.unref_timer(timer);
        self.inner.io.borrow_mut().timer = Some(timer);
    }

    fn idle_check(&self, lp: &Loop, idle: Duration) {
        let (phase, silent, pinged) = {
            let mut io = self.inner.io.borrow_mut();
            io.timer = None;
            let silent = lp.now_ns().saturating_sub(io.last_heard);
            (io.phase, silent, io.pinged)
        };
        if phase != Phase::Open {
            return;
        }
        if silent + 1_000_000 >= idle.as_nanos() as u64 && pinged {
            registry::count(|s| s.idle_timeouts += 1);
            self.start_close(lp, frame::GOING_AWAY, "idle timeout", Phase::Finishing);
            return;
        }
        if silent + 1_000_000 >= (idle / 2).as_nanos() as u64 && !pinged {
            self.inner.io.borrow_mut().pinged = true;
            let _ = self.ping(b"");
        }
        self.arm_idle_timer(lp);
    }

    /// Going away (the server shuts down): close 1001, closed within the
    /// close timeout whatever the client does.
    pub(crate) fn going_away(&self, lp: &Loop) {
        self.start_close(
            lp,
            frame::GOING_AWAY,
            "server shutting down",
            Phase::Closing,
        );
    }
}

/// What one whole frame (its payload unmasked) makes: a message, the
/// peer's close, a breach, or nothing yet (a ping answered into
/// `outbuf` while `open`, a pong, a fragment kept in `partial`).
fn frame_event(
    header: frame::Header,
    payload: &[u8],
    partial: &mut Option<(Opcode, Vec<u8>, usize)>,
    outbuf: &mut Vec<u8>,
    open: bool,
) -> Option<Event> {
    match header.opcode {
        Opcode::Ping => {
            if open {
                frame::encode(outbuf, Opcode::Pong, payload);
            }
            None
        }
        Opcode::Pong => None,
        Opcode::Close => Some(match frame::parse_close(payload) {
            Ok((code, reason)) => Event::PeerClosed(code, reason.to_string()),
            Err(v) => Event::Failed(v),
        }),
        Opcode::Text | Opcode::Binary => {
            if partial.is_some() {
                return Some(Event::Failed(frame::protocol(
                    "a new message inside a fragmented one",
                )));
            }
            if header.fin {
                return Some(match whole(header.opcode, payload.to_vec()) {
                    Ok(m) => Event::Message(m),
                    Err(v) => Event::Failed(v),
                });
            }
            let mut p = (header.opcode, payload.to_vec(), 0);
            if let Err(v) = check_utf8_so_far(&mut p) {
                return Some(Event::Failed(v));
            }
            *partial = Some(p);
            None
        }
        Opcode::Continuation => {
            let Some(mut p) = partial.take() else {
                return Some(Event::Failed(frame::protocol(
                    "a continuation with no message to continue",
                )));
            };
            p.1.extend_from_slice(payload);
            if header.fin {
                return Some(match whole(p.0, p.1) {
                    Ok(m) => Event::Message(m),
                    Err(v) => Event::Failed(v),
                });
            }
            if let Err(v) = check_utf8_so_far(&mut p) {
                return Some(Event::Failed(v));
            }
            *partial = Some(p);
            None
        }
    }
}

/// A whole message from its opcode and bytes: text must be UTF-8 (1007).
fn whole(opcode: Opcode, bytes: Vec<u8>) -> Result<Message, Violation> {
    if opcode == Opcode::Binary {
        return Ok(Message::Binary(bytes));
    }
    String::from_utf8(bytes)
        .map(Message::Text)
        .map_err(|_| Violation {
            code: frame::INVALID_PAYLOAD,
            reason: "a text message that is not UTF-8",
        })
}

/// Fails a fragmented text message as soon as its bytes cannot be UTF-8
/// (a character cut at a fragment's end may still be completed).
fn check_utf8_so_far(p: &mut (Opcode, Vec<u8>, usize)) -> Result<(), Violation> {
    if p.0 != Opcode::Text {
        return Ok(());
    }
    match std::str::from_utf8(&p.1[p.2..]) {
        Ok(_) => p.2 = p.1.len(),
        Err(e) if e.error_len().is_none() => p.2 += e.valid_up_to(),
        Err(_) => {
            return Err(Violation {
                code: frame::INVALID_PAYLOAD,
                reason: "a text message that is not UTF-8",
            })
        }
    }
    Ok(())
}
