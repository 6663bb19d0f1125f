//! A connection's exchange: what it needs while requests and responses
//! pass (buffers, parsing state, the queue of in-flight responses, the
//! deadline timer). A connection has one only while it has work
//! ([`crate::engine::connection`] takes it from the spares when bytes
//! arrive and gives it back when the connection goes idle), so an idle
//! connection costs only its small [`Conn`](crate::engine::connection::Conn).
//!
//! Invariants:
//! - Responses leave in request order, whatever order handlers answer in.
//! - An idle connection has no exchange, so it holds no buffer.
//! - Reading pauses while too many requests are in flight or too many
//!   response bytes are unsent; it resumes when they drain.
//! - After a request we refuse, nothing more is read: the error response is
//!   queued after the in-flight ones, then the connection closes gracefully.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;

use crate::engine::upgrade::UpgradeHook;
use crate::net::transport::{Settled, Transport};
use phaseloop_core::TimerId;

use crate::engine::config::{DataRate, ServerConfig};
use crate::engine::read_buffer::ReadBuffer;
use crate::engine::service::{Service, Target};
use crate::engine::spares::Spares;
use crate::http::request::{Method, Request};
use crate::http::response::{Body, Response};
use crate::http::{
    encode_cached, encode_continue, encode_head, parse_head, BodyFraming, ChunkedDecoder,
    DateCache, HttpError, ResponseFraming, ResponseHead, Version,
};

/// Bytes read per `read` call at least (the buffer grows to fit).
const READ_CHUNK: usize = 8 * 1024;
/// Reads per readiness event before yielding to other connections.
pub(crate) const READS_PER_EVENT: usize = 16;
/// After we close our side, how long we read and discard what the client
/// still sends, so our last response is not destroyed by a reset.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// `d` in nanoseconds, the unit of the loop's clock ([`Loop::now_ns`]) that
/// a connection's times are kept in (saturating: a timeout of years is
/// "never").
///
/// [`Loop::now_ns`]: phaseloop_core::Loop::now_ns
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}
/// The largest run of output a connection may go to sleep with before the
/// client has taken it: asleep, the minimum response rate does not judge
/// it until the idle deadline (which resets the connection if the kernel
/// still holds bytes for the client), so a client that does not read holds
/// at most this much of the kernel's memory for that long. Responses up to
/// it (nearly all of an API's) let an idle connection sleep at once; a
/// larger run keeps it awake under the rate's timer until the next request
/// or its end.
pub(crate) const UNJUDGED_RUN_MAX: u64 = 64 * 1024;
/// Empty lines tolerated before a request line (RFC 9112 §2.2).
const MAX_LEADING_EMPTY_LINES: usize = 8;

/// What an answer must know of its request. Small (16 bytes): it is all a
/// request being dispatched keeps (`Exchange::dispatching`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    pub seq: u64,
    /// The response is sent as HEAD's: head only.
    pub head_only: bool,
    /// Close the connection after this response.
    pub close: bool,
    /// The request was HTTP/1.0 with keep-alive.
    pub http10_keep_alive: bool,
    /// The request was HTTP/1.0 (no chunked coding for its response).
    pub http10: bool,
    /// Its route's index (`u32::MAX`: none), for a handler timeout's
    /// answer. In the padding after the flags: the slot is no larger.
    pub route: u32,
}

/// A response waiting for its turn: its request, and its answer once given.
pub(crate) struct Slot {
    pub asked: Asked,
    /// Encoded bytes once the handler has answered.
    pub bytes: Option<Vec<u8>>,
    /// A streamed response still open: its bytes leave as they come but the
    /// slot stays at the front until the stream ends.
    pub streaming: bool,
    /// A handler timeout is armed for it ([`Exchange::unwatched_answers`]).
    pub watched: bool,
}

impl Asked {
    fn into_slot(self) -> Slot {
        Slot {
            asked: self,
            bytes: None,
            streaming: false,
            watched: false,
        }
    }
}

/// Where the bytes of the current request go.
pub(crate) enum Reading {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a body for a request whose head is parsed.
    Body(Box<PendingBody>),
    /// Reading nothing more (after an error or a request asking to close).
    Stopped,
}

pub(crate) struct PendingBody {
    pub req: Request,
    pub target: Target,
    pub seq: u64,
    pub framing: BodyDecoder,
    pub limit: u64,
    /// The slowest the body may arrive (the route's, else the server's).
    pub min_rate: Option<DataRate>,
    /// When the body began (loop nanoseconds).
    pub started: u64,
    /// When the whole request must have arrived.
    pub request_due: u64,
}

pub(crate) enum BodyDecoder {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Reading done in one drive of a connection (one readiness event).
#[derive(Debug, Default)]
pub(crate) struct ReadBudget {
    /// `read` calls made.
    pub reads: usize,
    /// A read came back short: the socket was empty at that moment.
    pub drained: bool,
}

/// What the connection asks its driver to do next.
pub(crate) enum Step {
    /// Run the handler for this request.
    /// Its sequence number and route are in [`Exchange::dispatched_seq`] and
    /// [`Exchange::dispatched_target`].
    Dispatch(Request),
    /// Nothing to do until the next event.
    Wait,
    /// The codec refused a request: its slot is queued and nothing more
    /// is read; the driver answers it through the service. Then as `Wait`.
    Refused(Box<Refusal>),
    /// The read budget ran out with bytes possibly left: come back next tick.
    Yield,
    /// Close the connection now.
    Close,
}

/// A refused request, waiting in the queue for its answer: the app's
/// middleware and error renderer make it (see [`Service::refuse`]).
pub(crate) struct Refusal {
    /// Its slot in the queue.
    pub seq: u64,
    pub error: HttpError,
    /// The request, or a stand-in with what is known of it.
    pub req: Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Serving requests.
    Open,
    /// Our side is shut down; reading and discarding until EOF or LINGER.
    Lingering,
}

/// Which timeout the connection's deadline enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadlineKind {
    Header,
    Body,
    /// The body arrives below its minimum rate.
    BodyRate,
    /// The whole request takes longer than the request timeout.
    Request,
    Idle,
    Send,
    /// The client takes our bytes below the minimum response rate.
    SendRate,
    Linger,
}

/// A stream waiting for the client to take bytes.
pub(crate) type DrainWaiter = Box<dyn FnOnce(&phaseloop_core::Loop)>;

pub(crate) struct Exchange {
    /// The connection's peer (a copy of [`Conn`]'s, made when the exchange
    /// is taken: every request carries it).
    pub peer: Option<SocketAddr>,
    pub inbuf: ReadBuffer,
    pub outbuf: Vec<u8>,
    pub out_pos: usize,
    pub reading: Reading,
    /// Requests in flight, in order, after `dispatching`'s.
    pub queue: VecDeque<Slot>,
    /// The slot of the request being dispatched when none is in flight
    /// before it (nearly always): a handler answering during its dispatch
    /// (most do) is answered from here, and the slot never enters `queue`.
    /// Moved to `queue` by [`Exchange::settle`] when the dispatch is over,
    /// before anything else is parsed or searched; readers count it as the
    /// queue's front meanwhile.
    dispatching: Option<Asked>,
    /// The sequence number the next request takes: the connection's
    /// count, lent to the exchange while it has one (a late answer must
    /// never meet a later request of the same number).
    pub next_seq: u64,
    /// The sequence number and route of the request the last
    /// [`Step::Dispatch`] handed out. Kept here, not in the step: a step of
    /// a tag and a pointer comes back from [`Exchange::next_step`] in two
    /// registers, a larger one through memory (stored in parts and loaded
    /// whole: a store-forwarding stall on every request).
    pub dispatched_seq: u64,
    pub dispatched_target: Target,
    pub lifecycle: Lifecycle,
    pub read_eof: bool,
    pub paused: bool,
    /// A read batch is running: responses are written once at its end.
    pub batching: bool,
    /// After the queue drains, close (a `Connection: close` was sent).
    pub close_after_queue: bool,
    /// No request has begun on the connection yet: its first head is
    /// under the header timeout from the accept on.
    pub fresh: bool,
    pub timer: Option<TimerId>,
    // Loop times in nanoseconds ([`nanos`]): eight bytes each, where a
    // `Duration` takes sixteen and its sums check for overflow.
    pub timer_due: u64,
    pub head_started: Option<u64>,
    pub last_read: u64,
    pub last_write: u64,
    /// A run of output is under way: it began at `write_started` with the
    /// first flush of output, `written` bytes of it went to the kernel, and
    /// the client had taken `taken` when last looked (`TIOCOUTQ`). It ends
    /// when a look finds nothing left, in our buffer or the kernel's; the
    /// minimum response rate judges it meanwhile: `rate_due` is when the
    /// run falls below it unless the client takes more (its grace at first,
    /// then what `taken` bought; kept here so a deadline costs no division
    /// per request).
    pub writing: bool,
    pub write_started: u64,
    pub written: u64,
    pub taken: u64,
    pub rate_due: u64,
    /// When the connection went idle last (it then had no exchange; this
    /// one is busy, so this matters only while a pause keeps it).
    pub idle_since: u64,
    pub linger_since: u64,
    /// Streams waiting for the client to take bytes (`BodyWriter::on_drain`).
    pub drain_waiters: Vec<DrainWaiter>,
    /// The peer's end of stream (or an error) was reported: its edge is
    /// spent, so reading goes on to end of stream whatever a read returns.
    pub peer_shut: bool,
    /// What the transport still had to do after the last flush: TLS
    /// records the socket had no room for (a writable event flushes them;
    /// under the send timeout), or a handshake under way (under the header
    /// timeout). Either keeps the connection from counting as idle. One
    /// byte, apart from `unsent` (looked at on every request's way).
    pub transport: Settled,
    /// A request asked to switch protocols (`Connection: upgrade`).
    pub upgrade: Upgrade,
}

/// Where a connection is with a request that asked to switch protocols.
#[derive(Default)]
pub(crate) enum Upgrade {
    /// None asked (nearly always).
    #[default]
    None,
    /// Request `seq` asked: nothing after it is read until its answer.
    Asked(u64),
    /// Its handler accepted: once the 101 is written, the connection
    /// leaves the engine for `hook`.
    Accepted(UpgradeHook),
}

/// What connection code needs from its server while it runs.
pub(crate) struct Ctx<'a, S> {
    pub cfg: &'a ServerConfig,
    /// What routes requests: the engine knows it only as a [`Service`].
    pub service: &'a S,
    /// Borrowed when a buffer is needed (rarely: most calls have theirs),
    /// not for every call.
    pub spares: &'a RefCell<Spares>,
    /// The loop's time, nanoseconds.
    pub now: u64,
}

impl Exchange {
    /// An exchange with nothing in it, as a spare ([`Exchange::wake`]
    /// readies it for a connection).
    pub fn new() -> Exchange {
        Exchange {
            peer: None,
            inbuf: ReadBuffer::default(),
            outbuf: Vec::new(),
            out_pos: 0,
            reading: Reading::Head,
            queue: VecDeque::new(),
            dispatching: None,
            next_seq: 0,
            dispatched_seq: 0,
            dispatched_target: Target::NotFound,
            lifecycle: Lifecycle::Open,
            read_eof: false,
            paused: false,
            batching: false,
            close_after_queue: false,
            fresh: false,
            timer: None,
            timer_due: 0,
            head_started: None,
            last_read: 0,
            last_write: 0,
            writing: false,
            write_started: 0,
            written: 0,
            taken: 0,
            rate_due: 0,
            idle_since: 0,
            linger_since: 0,
            drain_waiters: Vec::new(),
            peer_shut: false,
            transport: Settled::Done,
            upgrade: Upgrade::None,
        }
    }

    /// Readies a spare exchange for a connection waking (its peer, its
    /// next sequence number; `fresh` with the accept's time `since`, else
    /// idle since `since`). A spare is as [`Exchange::sleep`] left it:
    /// idle, with no head started and no run of output; its read and
    /// write times are set when it reads and when a run begins.
    #[inline(always)]
    pub fn wake(&mut self, peer: Option<SocketAddr>, next_seq: u64, fresh: bool, since: u64) {
        self.peer = peer;
        self.next_seq = next_seq;
        self.fresh = fresh;
        if fresh {
            self.head_started = Some(since);
        }
        self.idle_since = since;
    }

    /// Whether the connection may give its exchange back: nothing
    /// buffered, in flight or waiting, nothing paused, its peer still
    /// there, and any run of output it has not seen the client take small
    /// ([`UNJUDGED_RUN_MAX`]).
    #[inline]
    pub fn may_sleep(&self) -> bool {
        // The flags in one expression without short cuts: a few
        // instructions on every response, not a branch each.
        let calm = !(self.paused
            | self.batching
            | self.read_eof
            | self.peer_shut
            | self.close_after_queue)
            & (self.lifecycle == Lifecycle::Open)
            & (!self.writing | (self.written <= UNJUDGED_RUN_MAX));
        calm && self.is_idle() && self.drain_waiters.is_empty()
    }

    /// Empties an idle exchange for the spares (its buffers to `spares`, its
    /// run of output over: all of it is in the kernel, and the idle
    /// timeout bounds how long a client that does not read keeps it
    /// there). Returns the connection's next sequence number and the
    /// timer to clear, if one is armed.
    #[inline(always)]
    pub fn sleep(&mut self, spares: &mut Spares) -> (u64, Option<TimerId>) {
        self.release_buffers(spares);
        self.writing = false;
        self.head_started = None;
        (self.next_seq, self.timer.take())
    }

    pub fn buffered_bytes(&self) -> usize {
        self.inbuf.capacity()
            + self.outbuf.capacity()
            + self
                .queue
                .iter()
                .map(|s| s.bytes.as_ref().map_or(0, Vec::capacity))
                .sum::<usize>()
    }

    pub fn unsent(&self) -> usize {
        self.outbuf.len() - self.out_pos
    }

    /// Nothing buffered, nothing in flight, nothing to write.
    pub fn is_idle(&self) -> bool {
        !self.in_flight()
            && self.inbuf.is_empty()
            && self.unsent() == 0
            && matches!(self.reading, Reading::Head)
            && self.transport == Settled::Done
    }

    /// Response bytes the client has not taken: unsent output plus answers
    /// waiting behind an earlier one.
    pub fn buffered_output(&self) -> usize {
        self.backlog().1
    }

    /// (unanswered requests, buffered output bytes) in one pass over the
    /// queue: checked before every request is taken.
    fn backlog(&self) -> (usize, usize) {
        let dispatching = usize::from(self.dispatching.is_some());
        if self.queue.is_empty() {
            // Between requests, nearly always: no fold over a deque.
            return (dispatching, self.unsent());
        }
        self.queue.iter().fold(
            (dispatching, self.unsent()),
            |(unanswered, bytes), s| match &s.bytes {
                None => (unanswered + 1, bytes),
                Some(b) => (unanswered + usize::from(s.streaming), bytes + b.len()),
            },
        )
    }

    /// Checked before every request is taken: inline for the common case
    /// (every earlier request answered, so only unsent bytes count).
    #[inline]
    fn over_limits(&self, cfg: &ServerConfig) -> bool {
        if self.queue.is_empty() {
            return cfg.max_pipeline == 0
                || cfg.max_unanswered == 0
                || self.unsent() >= cfg.write_high_water;
        }
        self.over_limits_queued(cfg)
    }

    #[inline(never)]
    fn over_limits_queued(&self, cfg: &ServerConfig) -> bool {
        if self.queue.len() >= cfg.max_pipeline {
            return true;
        }
        let (unanswered, buffered) = self.backlog();
        unanswered >= cfg.max_unanswered || buffered >= cfg.write_high_water
    }

    /// Reading may resume: every limit is back under half (or, for the
    /// unanswered count, under the limit).
    pub fn may_resume(&self, cfg: &ServerConfig) -> bool {
        let (unanswered, buffered) = self.backlog();
        self.paused
            && self.queue.len() < cfg.max_pipeline.div_ceil(2)
            && unanswered < cfg.max_unanswered
            && buffered < cfg.write_high_water / 2
    }

    /// The sequence numbers of queued requests whose handler has not
    /// answered and that have no handler timeout yet; each is marked as
    /// having one as it is returned.
    pub fn unwatched_answers(&mut self) -> impl Iterator<Item = u64> + '_ {
        // A request whose body is still arriving has no handler yet: its
        // time is the body timeout's until it is dispatched.
        let receiving = match &self.reading {
            Reading::Body(pending) => Some(pending.seq),
            _ => None,
        };
        self.queue
            .iter_mut()
            .filter(move |s| s.bytes.is_none() && !s.watched && Some(s.asked.seq) != receiving)
            .map(|s| {
                s.watched = true;
                s.asked.seq
            })
    }

    /// Whether request `seq` still waits for its handler's answer (being
    /// dispatched, or queued unanswered).
    pub fn waits_for(&self, seq: u64) -> bool {
        self.dispatching.is_some_and(|a| a.seq == seq) || self.awaiting(seq).is_some()
    }

    /// The route of request `seq` if it still waits for its handler's
    /// answer (queued, unanswered, no stream started).
    pub fn awaiting(&self, seq: u64) -> Option<u32> {
        self.queue
            .iter()
            .find(|s| s.asked.seq == seq && s.bytes.is_none() && !s.streaming)
            .map(|s| s.asked.route)
    }

    /// Requests are in flight (dispatched or queued, not yet all written
    /// to the output).
    pub fn in_flight(&self) -> bool {
        !self.queue.is_empty() || self.dispatching.is_some()
    }

    /// Ends a dispatch: a request its handler did not answer during it
    /// takes its place in the queue. Called before anything parses,
    /// searches or pushes to the queue.
    #[inline]
    pub fn settle(&mut self) {
        if let Some(asked) = self.dispatching.take() {
            self.queue.push_back(asked.into_slot());
        }
    }

    /// Returns idle buffers to the spares.
    pub fn release_buffers(&mut self, spares: &mut Spares) {
        if let Some(storage) = self.inbuf.detach_if_empty() {
            spares.give_read(storage);
        }
        if self.unsent() == 0 && self.outbuf.capacity() > 0 {
            self.out_pos = 0;
            spares.give(std::mem::take(&mut self.outbuf));
        }
    }

    /// Advances reading and parsing until a request is ready for its handler
    /// or there is nothing more to do now.
    pub fn next_step<S: Service>(
        &mut self,
        stream: &mut Transport,
        ctx: &mut Ctx<'_, S>,
        budget: &mut ReadBudget,
    ) -> Step {
        self.settle();
        // Nearly always the next head is buffered already (a pipelined
        // batch) and no limit is reached: taken here, outside the loop
        // below, whose hoisted values would cost every request a frame.
        let head_tried = self.lifecycle == Lifecycle::Open
            && matches!(self.reading, Reading::Head)
            && !self.over_limits(ctx.cfg);
        if head_tried {
            // An empty buffer (the usual state once a batch is answered)
            // is judged here: the call and the read loop's frame would
            // cost each wake-up twice.
            if self.inbuf.is_empty() {
                // What `read_and_parse` would conclude (its end-of-stream
                // cases apart).
                if !self.read_eof && self.socket_emptied(budget) {
                    return Step::Wait;
                }
            } else if let Some(step) = self.parse_next_head(ctx) {
                return step;
            }
        }
        self.read_and_parse(stream, ctx, budget, head_tried)
    }

    /// [`Exchange::next_step`]'s general way: reads when parsing needs bytes,
    /// within the budget, until a step is found. `head_tried`: the buffered
    /// bytes were just parsed (and found short of a head) by the caller,
    /// under the checks the loop makes first; the loop starts at the read
    /// instead of parsing them again.
    #[inline(never)]
    fn read_and_parse<S: Service>(
        &mut self,
        stream: &mut Transport,
        ctx: &mut Ctx<'_, S>,
        budget: &mut ReadBudget,
        mut head_tried: bool,
    ) -> Step {
        let now = ctx.now;
        loop {
            if !std::mem::take(&mut head_tried) {
                if self.lifecycle == Lifecycle::Lingering {
                    return Self::discard_input(stream);
                }
                // Between requests, respect the limits before taking another
                // one from the buffer: a pipelining client that never reads
                // must not make us produce unbounded output.
                if matches!(self.reading, Reading::Head) && self.over_limits(ctx.cfg) {
                    self.paused = true;
                    return Step::Wait;
                }
                if let Some(step) = self.parse_buffered(ctx) {
                    return step;
                }
            }
            // Parsing needs more bytes.
            if self.read_eof {
                // A request cut short by the peer's end of stream ends
                // here: 400 (read by a client that only shut its sending
                // side, else the write fails), then the connection closes.
                // Waiting would wait for ever: no more bytes can come.
                if let Some(error) = self.cut_short() {
                    return Step::Refused(self.refuse(error));
                }
                return if !self.in_flight() && !self.output_waiting() {
                    Step::Close
                } else {
                    // Answer what was asked, then close.
                    self.reading = Reading::Stopped;
                    self.close_after_queue = true;
                    Step::Wait
                };
            }
            if matches!(self.reading, Reading::Stopped) {
                return Step::Wait;
            }
            // (Between requests the check at the top of this iteration
            // already ran, and parsing took nothing since.)
            if !matches!(self.reading, Reading::Head) && self.over_limits(ctx.cfg) {
                self.paused = true;
                return Step::Wait;
            }
            if self.socket_emptied(budget) {
                return Step::Wait;
            }
            if budget.reads >= READS_PER_EVENT {
                return Step::Yield;
            }
            budget.reads += 1;
            if !self.inbuf.has_storage() {
                self.inbuf.attach(ctx.spares.borrow_mut().take_read());
            }
            // Room for the largest head plus a read's worth of body bytes.
            let max = ctx.cfg.max_head_bytes + READ_CHUNK * 2;
            let result = self.inbuf.read_from(stream, max);
            match result {
                Ok((0, _)) => {
                    self.read_eof = true;
                }
                Ok((_, filled)) => {
                    budget.drained = !filled && stream.short_read_drains();
                    self.last_read = now;
                    if matches!(self.reading, Reading::Head) && self.head_started.is_none() {
                        self.head_started = Some(now);
                    }
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return Step::Wait;
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Step::Close;
                }
            }
        }
    }

    /// A short read emptied the socket: anything that arrives later raises
    /// a new edge (mio registers edge-triggered), so another read now would
    /// only return EAGAIN, a system call per request for nothing. Unless
    /// the peer's FIN edge was already spent.
    #[inline(always)]
    fn socket_emptied(&self, budget: &ReadBudget) -> bool {
        budget.drained && !self.peer_shut
    }

    /// Tries to complete a request from buffered bytes.
    fn parse_buffered<S: Service>(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Step> {
        match self.reading {
            Reading::Stopped => self.stopped(ctx),
            Reading::Head if self.inbuf.is_empty() => None,
            Reading::Head => self.parse_next_head(ctx),
            Reading::Body(_) => self.read_body(),
        }
    }

    /// The next request's head: dispatched at once when it has no body
    /// (nearly every request), else its body is read first.
    // Out of line: inlined into `next_step`, the function grows past what
    // LLVM inlines the field scan and the routing into (measured: 30 more
    // instructions a request).
    #[inline(never)]
    fn parse_next_head<S: Service>(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Step> {
        let now = ctx.now;
        self.skip_leading_empty_lines();
        if self.inbuf.is_empty() {
            return None;
        }
        if self.head_started.is_none() {
            self.head_started = Some(now);
        }
        let parsed = match parse_head(self.inbuf.data(), &ctx.cfg.head_limits()) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => return Some(Step::Refused(self.refuse(e))),
        };
        let head_len = parsed.len;
        let framing = parsed.framing;
        let keep_alive = parsed.keep_alive;
        let version = parsed.version;
        let expect_continue = parsed.expect_continue;
        let upgrade = parsed.upgrade;
        let mut req = Request::from_head(&self.inbuf.data()[..head_len], parsed, self.peer);
        self.inbuf.consume(head_len);
        let request_started = self.head_started.take().unwrap_or(now);

        let seq = self.next_seq;
        self.next_seq += 1;
        let target = ctx.service.destination(&mut req);
        let asked = Asked {
            seq,
            head_only: req.method() == Method::Head,
            close: !keep_alive,
            http10_keep_alive: keep_alive && version == Version::Http10,
            http10: version == Version::Http10,
            route: target.route_index(),
        };
        // A bodiless request is dispatched now: its slot waits outside the
        // queue if nothing is in flight before it. One with a body is
        // dispatched later, from the queue.
        if matches!(framing, BodyFraming::None) && self.queue.is_empty() {
            self.dispatching = Some(asked);
        } else {
            self.queue.push_back(asked.into_slot());
        }
        if !keep_alive {
            // Nothing after this request is read (RFC 9112 §9.6).
            self.close_after_queue = true;
        }
        let decoder = match framing {
            BodyFraming::None => {
                if !keep_alive | upgrade {
                    self.reading = Reading::Stopped;
                    if upgrade {
                        self.upgrade = Upgrade::Asked(seq);
                    }
                }
                self.dispatched_seq = seq;
                self.dispatched_target = target;
                return Some(Step::Dispatch(req));
            }
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        };
        // The route's rules are looked up only for a request with a body.
        let rules = ctx.service.body_rules(target);
        let limit = rules.limit.unwrap_or(ctx.cfg.max_body);
        if matches!(decoder, BodyDecoder::Length(n) if n > limit) {
            self.queue.pop_back();
            let refusal = self.refuse_request(HttpError::new(413, "request body too large"), req);
            return Some(Step::Refused(refusal));
        }
        let body = PendingBody {
            req,
            target,
            seq,
            framing: decoder,
            limit,
            min_rate: rules.min_rate.unwrap_or(ctx.cfg.min_body_rate),
            started: now,
            request_due: request_started.saturating_add(nanos(
                rules.request_timeout.unwrap_or(ctx.cfg.request_timeout),
            )),
        };
        self.begin_body(ctx, body, expect_continue)
    }

    /// Starts reading a request's body. Out of line: the bodiless path
    /// above is every GET's, and stays small without it.
    #[cold]
    #[inline(never)]
    fn begin_body<S: Service>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        body: PendingBody,
        expect_continue: bool,
    ) -> Option<Step> {
        let now = ctx.now;
        // RFC 9110 §10.1.1: tell the client to send the body, unless
        // it already started or earlier responses must go first.
        if expect_continue && self.inbuf.is_empty() && self.queue.len() == 1 {
            if self.outbuf.capacity() == 0 {
                self.outbuf = ctx.spares.borrow_mut().take();
            }
            encode_continue(&mut self.outbuf);
        }
        self.last_read = now;
        self.reading = Reading::Body(Box::new(body));
        self.read_body()
    }

    /// Takes body bytes from the buffer; the request is dispatched once its
    /// body is complete.
    #[inline(never)]
    fn read_body(&mut self) -> Option<Step> {
        // Called only while a body is being read.
        let Reading::Body(pending) = &mut self.reading else {
            return None;
        };
        let done = match &mut pending.framing {
            BodyDecoder::Length(remaining) => {
                let take = (*remaining as usize).min(self.inbuf.len());
                pending
                    .req
                    .body_mut()
                    .extend_from_slice(&self.inbuf.data()[..take]);
                self.inbuf.consume(take);
                *remaining -= take as u64;
                *remaining == 0
            }
            BodyDecoder::Chunked(decoder) => {
                match decoder.decode(self.inbuf.data(), pending.req.body_mut(), pending.limit) {
                    Ok(used) => {
                        self.inbuf.consume(used);
                        decoder.is_done()
                    }
                    Err(e) => {
                        self.queue.pop_back();
                        return Some(Step::Refused(self.refuse(e)));
                    }
                }
            }
        };
        if !done {
            return None;
        }
        let Reading::Body(pending) = std::mem::replace(&mut self.reading, Reading::Head) else {
            unreachable!("matched above")
        };
        if self.close_after_queue {
            self.reading = Reading::Stopped;
        }
        let PendingBody {
            req, target, seq, ..
        } = *pending;
        self.dispatched_seq = seq;
        self.dispatched_target = target;
        Some(Step::Dispatch(req))
    }

    /// The error for a request the peer's end of stream cut short: part of
    /// a head is buffered, or a body is being read. Its body's slot, if
    /// any, leaves the queue: the refusal answers in its place.
    #[cold]
    fn cut_short(&mut self) -> Option<HttpError> {
        match self.reading {
            Reading::Body(_) => {
                self.queue.pop_back();
                Some(HttpError::new(
                    400,
                    "connection closed before the request body was complete",
                ))
            }
            Reading::Head if !self.inbuf.is_empty() => Some(HttpError::new(
                400,
                "connection closed before the request head was complete",
            )),
            _ => None,
        }
    }

    #[inline(always)]
    fn skip_leading_empty_lines(&mut self) {
        let mut skip = 0;
        for _ in 0..MAX_LEADING_EMPTY_LINES {
            if self.inbuf.data()[skip..].starts_with(b"\r\n") {
                skip += 2;
            } else {
                break;
            }
        }
        if skip > 0 {
            self.inbuf.consume(skip);
        }
    }

    /// Queues a slot for an error response after the in-flight ones and
    /// stops reading; the refusal returned is for the driver to answer.
    /// A refused HEAD request's answer has no content, as every answer to
    /// HEAD (RFC 9110 §9.3.2).
    #[cold]
    #[inline(never)]
    pub fn refuse(&mut self, error: HttpError) -> Box<Refusal> {
        let req = match std::mem::replace(&mut self.reading, Reading::Stopped) {
            Reading::Body(pending) => {
                let mut req = pending.req;
                req.body_mut().clear();
                req
            }
            // A head refused while being parsed is still in the buffer.
            _ => Request::stand_in(self.inbuf.data(), self.peer),
        };
        self.refuse_request(error, req)
    }

    /// [`Exchange::refuse`] for a request already parsed.
    #[cold]
    #[inline(never)]
    fn refuse_request(&mut self, error: HttpError, req: Request) -> Box<Refusal> {
        let head_only = req.method() == Method::Head;
        self.settle();
        self.reading = Reading::Stopped;
        self.inbuf.clear();
        self.close_after_queue = true;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(
            Asked {
                seq,
                head_only,
                close: true,
                http10_keep_alive: false,
                http10: false,
                route: u32::MAX,
            }
            .into_slot(),
        );
        Box::new(Refusal { seq, error, req })
    }

    /// Stores an answered response; moves every answered response at the
    /// front of the queue into the output buffer, in order. False if the
    /// request no longer waits for it (answered for: a handler timeout).
    // Inline (into the responder's answer): a call here and another to
    // `answer_now` cost more than the few instructions of the choice.
    #[inline(always)]
    pub fn complete(
        &mut self,
        seq: u64,
        response: &Response,
        date: &DateCache,
        spares: &RefCell<Spares>,
    ) -> bool {
        // Nearly always the answer to the request being dispatched, or
        // else to the one at the front.
        let asked = if let Some(asked) = self.dispatching.take_if(|a| a.seq == seq) {
            asked
        } else if self
            .queue
            .front()
            .is_some_and(|s| s.asked.seq == seq && s.bytes.is_none())
        {
            self.queue.pop_front().expect("the front was seen").asked
        } else {
            return self.answer(seq, response, date, spares, false);
        };
        self.answer_now(asked, response, date, spares);
        true
    }

    /// Reading stopped: for good (a close), or until a request that asked
    /// to switch protocols is answered. Answered without a 101 (nothing
    /// accepted it), reading goes on after it. Out of the answers' way:
    /// looked at only when reading has stopped.
    #[cold]
    #[inline(never)]
    fn stopped<S: Service>(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Step> {
        if let Upgrade::Asked(seq) = self.upgrade {
            if !self.waits_for(seq) {
                self.upgrade = Upgrade::None;
                if !self.close_after_queue {
                    self.reading = Reading::Head;
                    return self.parse_next_head(ctx);
                }
            }
        }
        Some(Step::Wait)
    }

    /// A request that asked to switch protocols has been answered without
    /// a 101: the engine drives the connection again to read on.
    pub fn upgrade_declined(&self) -> bool {
        matches!(self.upgrade, Upgrade::Asked(seq) if !self.waits_for(seq))
    }

    /// Request `seq`'s handler switches protocols with `response` (a
    /// 101): queued like any answer; `hook` takes the connection once it is
    /// written. False if the request no longer waits.
    pub fn accept_upgrade(
        &mut self,
        seq: u64,
        response: &Response,
        date: &DateCache,
        spares: &RefCell<Spares>,
        hook: UpgradeHook,
    ) -> bool {
        if !matches!(self.upgrade, Upgrade::Asked(s) if s == seq) || !self.waits_for(seq) {
            return false;
        }
        let taken = self.answer(seq, response, date, spares, false);
        if taken {
            self.upgrade = Upgrade::Accepted(hook);
        }
        taken
    }

    /// The connection may leave the engine: its 101 is written and
    /// nothing else is owed.
    pub fn upgrade_ready(&self) -> bool {
        matches!(self.upgrade, Upgrade::Accepted(_)) && !self.in_flight() && !self.output_waiting()
    }

    /// Starts a streamed response (head now, body in chunks). Returns false
    /// if the request is no longer waiting (the connection moved on).
    pub fn start_stream(
        &mut self,
        seq: u64,
        response: &Response,
        date: &DateCache,
        spares: &RefCell<Spares>,
    ) -> bool {
        self.answer(seq, response, date, spares, true)
    }

    /// An answer that waits for its turn, or a stream's head. Out of line:
    /// the common answer (the first in line's, fixed length) is
    /// [`Exchange::answer_now`].
    #[inline(never)]
    fn answer(
        &mut self,
        seq: u64,
        response: &Response,
        date: &DateCache,
        spares: &RefCell<Spares>,
        streaming: bool,
    ) -> bool {
        self.settle();
        let at_front = self.queue.front().is_some_and(|s| s.asked.seq == seq);
        let last_seq = self.next_seq.saturating_sub(1);
        let close_after_queue = self.close_after_queue;
        let Some(slot) = self
            .queue
            .iter_mut()
            .find(|s| s.asked.seq == seq && s.bytes.is_none())
        else {
            return false; // already answered, or the queue was abandoned
        };
        let mut close = slot.asked.close || close_after_queue && slot.asked.seq == last_seq;
        // HTTP/1.0 has no chunked coding: a stream there ends with the
        // connection (RFC 9112 §6.3 (8)).
        if streaming && slot.asked.http10 {
            close = true;
        }
        slot.asked.close = close;
        slot.streaming = streaming;
        // At the front, encode straight into the output buffer.
        let mut own = Vec::new();
        let out = if at_front {
            if self.outbuf.capacity() == 0 {
                self.outbuf = spares.borrow_mut().take();
            }
            &mut self.outbuf
        } else {
            &mut own
        };
        let stream_framing = match (streaming, slot.asked.http10) {
            (false, _) => None,
            (true, false) => Some(ResponseFraming::Chunked),
            (true, true) => Some(ResponseFraming::UntilClose),
        };
        encode_response(
            out,
            response,
            stream_framing,
            slot.asked.head_only,
            close,
            slot.asked.http10_keep_alive,
            date,
        );
        slot.bytes = Some(own);
        // A streamed response's body so far is its first piece.
        let body = response.body.as_bytes();
        if streaming && !body.is_empty() {
            let _ = self.stream_chunk(seq, body, usize::MAX);
        }
        self.drain_ready_front();
        true
    }

    /// [`Exchange::answer`] for the request first in line (its slot taken out)
    /// with a fixed-length response, nearly every answer: its bytes go
    /// straight to the output, with no search and no hand-over.
    // Inline: its only caller is `complete`, and a call would pass the
    // `Asked` through memory.
    #[inline(always)]
    fn answer_now(
        &mut self,
        asked: Asked,
        response: &Response,
        date: &DateCache,
        spares: &RefCell<Spares>,
    ) {
        let close = asked.close || self.close_after_queue && asked.seq + 1 == self.next_seq;
        if self.outbuf.capacity() == 0 {
            self.outbuf = spares.borrow_mut().take();
        }
        encode_response(
            &mut self.outbuf,
            response,
            None,
            asked.head_only,
            close,
            asked.http10_keep_alive,
            date,
        );
        if close {
            self.finish_queue();
        } else if self.queue.front().is_some_and(|s| s.bytes.is_some()) {
            self.drain_ready_front();
        }
    }

    /// Appends a piece of a streamed body. Refuses (without queueing) when
    /// more than `high_water` bytes are already waiting to be sent.
    pub fn stream_chunk(
        &mut self,
        seq: u64,
        data: &[u8],
        high_water: usize,
    ) -> Result<(), StreamError> {
        self.settle();
        let at_front = self.queue.front().is_some_and(|s| s.asked.seq == seq);
        // Everything the client has not taken counts, whichever response it
        // belongs to: the bound is per connection.
        let waiting = self.buffered_output();
        let Some(slot) = self
            .queue
            .iter_mut()
            .find(|s| s.asked.seq == seq && s.streaming)
        else {
            return Err(StreamError::Closed);
        };
        if waiting >= high_water {
            return Err(StreamError::Congested);
        }
        if slot.asked.head_only || data.is_empty() {
            return Ok(()); // an empty chunk would end the body
        }
        let chunked = !slot.asked.http10;
        let out = if at_front {
            &mut self.outbuf
        } else {
            slot.bytes.as_mut().expect("streaming slots are answered")
        };
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
        Ok(())
    }

    /// Ends a streamed body: the last chunk, or (when `abort`) a cut that
    /// leaves the body visibly incomplete and closes the connection.
    pub fn end_stream(&mut self, seq: u64, abort: bool) {
        self.settle();
        let at_front = self.queue.front().is_some_and(|s| s.asked.seq == seq);
        let Some(slot) = self
            .queue
            .iter_mut()
            .find(|s| s.asked.seq == seq && s.streaming)
        else {
            return;
        };
        slot.streaming = false;
        if abort {
            slot.asked.close = true;
        } else if !slot.asked.head_only && !slot.asked.http10 {
            let out = if at_front {
                &mut self.outbuf
            } else {
                slot.bytes.as_mut().expect("streaming slots are answered")
            };
            out.extend_from_slice(b"0\r\n\r\n");
        }
        self.drain_ready_front();
    }

    /// Moves answered responses at the front into the output buffer, in
    /// order; stops at an open stream (its later bytes follow directly).
    fn drain_ready_front(&mut self) {
        while let Some(front) = self.queue.front_mut() {
            let Some(bytes) = front.bytes.as_mut() else {
                break;
            };
            if !bytes.is_empty() {
                self.outbuf.extend_from_slice(bytes);
                *bytes = Vec::new();
            }
            if front.streaming {
                break;
            }
            let slot = self.queue.pop_front().expect("front exists");
            if slot.asked.close {
                self.finish_queue();
                return;
            }
        }
    }

    /// A `Connection: close` response is out: nothing after it is sent.
    fn finish_queue(&mut self) {
        self.dispatching = None;
        self.queue.clear();
        self.reading = Reading::Stopped;
        self.close_after_queue = true;
    }

    /// Writes what it can. Returns Err on a broken connection.
    #[inline(always)] // into the engine's flush, its one caller
    pub fn flush(&mut self, stream: &mut Transport, now: u64, grace_ns: u64) -> io::Result<()> {
        // The response rate counts from the first flush of a run of output
        // until the client has taken all of it.
        if !self.writing {
            self.writing = true;
            self.write_started = now;
            // The send timeout counts from here until bytes are taken.
            self.last_write = now;
            self.written = 0;
            self.taken = 0;
            self.rate_due = now.saturating_add(grace_ns);
        }
        while self.out_pos < self.outbuf.len() {
            match stream.write(&self.outbuf[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    self.written += n as u64;
                    self.last_write = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.outbuf.clear();
        self.out_pos = 0;
        // What the stream itself holds (TLS records, a handshake under
        // way) keeps the connection from counting as idle.
        self.transport = stream.settle()?;
        Ok(())
    }

    /// Looks at how much of the run of output the client has taken: what
    /// went to the kernel less what the kernel still holds unsent
    /// (`TIOCOUTQ`); ends the run if nothing is left anywhere. Called when
    /// the response-rate deadline comes, not per write.
    pub fn look_at_taken(&mut self, stream: &TcpStream, rate: DataRate) {
        let queued = kernel_unsent(stream);
        if queued == 0 && !self.output_waiting() {
            self.writing = false;
            return;
        }
        self.taken = self.written.saturating_sub(queued);
        self.rate_due = rate.due(self.write_started, self.taken);
    }

    /// True when everything owed has been written and the connection should
    /// now close (gracefully).
    pub fn done_after_flush(&self) -> bool {
        self.close_after_queue
            && !self.in_flight()
            && self.unsent() == 0
            && self.transport != Settled::Unsent
    }

    /// Output is waiting for room in the socket: ours, or the transport's.
    pub fn output_waiting(&self) -> bool {
        self.unsent() > 0 || self.transport == Settled::Unsent
    }

    /// Shuts our side and starts discarding input (lingering close).
    pub fn start_linger(&mut self, stream: &mut Transport, now: u64) {
        stream.shutdown_write();
        self.lifecycle = Lifecycle::Lingering;
        self.linger_since = now;
        self.inbuf.clear();
    }

    /// Out of line: its 4 KiB scratch would otherwise sit in the frame of
    /// `next_step`, which every request enters.
    #[cold]
    #[inline(never)]
    fn discard_input(stream: &mut Transport) -> Step {
        let mut scratch = [0u8; 4096];
        for _ in 0..READS_PER_EVENT {
            match stream.read(&mut scratch) {
                Ok(0) => return Step::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
        Step::Yield
    }

    /// The deadline a timer must now be armed for, if any: `None` when there
    /// is no deadline (a pending timer finds none and stops) or the armed
    /// timer fires no later than it (the timer is lazy: moving a deadline
    /// later costs nothing; a timer that fires early re-arms).
    pub fn deadline_to_arm(&self, cfg: &ServerConfig) -> Option<u64> {
        let (due, _) = self.deadline(cfg)?;
        let covered = self.timer.is_some() && self.timer_due <= due;
        (!covered).then_some(due)
    }

    /// The deadline the connection is under now, if any.
    pub fn deadline(&self, cfg: &ServerConfig) -> Option<(u64, DeadlineKind)> {
        if self.lifecycle == Lifecycle::Lingering {
            return Some((self.linger_since + nanos(LINGER), DeadlineKind::Linger));
        }
        let rate_due = match cfg.min_response_rate {
            Some(_) if self.writing => Some((self.rate_due, DeadlineKind::SendRate)),
            _ => None,
        };
        if self.output_waiting() {
            let stalled = (
                self.last_write.saturating_add(nanos(cfg.send_timeout)),
                DeadlineKind::Send,
            );
            return Some(match rate_due {
                Some(rate_due) => earlier(stalled, rate_due),
                None => stalled,
            });
        }
        let reading = self.reading_deadline(cfg);
        match (reading, rate_due) {
            (Some(r), Some(w)) => Some(earlier(r, w)),
            (r, w) => r.or(w),
        }
    }

    /// The deadline of what the connection reads or waits for (the client's
    /// side), if any.
    fn reading_deadline(&self, cfg: &ServerConfig) -> Option<(u64, DeadlineKind)> {
        match &self.reading {
            Reading::Body(body) => {
                let stalled = (
                    self.last_read.saturating_add(nanos(cfg.body_timeout)),
                    DeadlineKind::Body,
                );
                let whole = earlier(stalled, (body.request_due, DeadlineKind::Request));
                Some(match body.min_rate {
                    Some(rate) => earlier(
                        whole,
                        (
                            rate.due(body.started, body.req.body().len() as u64),
                            DeadlineKind::BodyRate,
                        ),
                    ),
                    None => whole,
                })
            }
            Reading::Head if !self.in_flight() => match self.head_started {
                Some(started) if !self.inbuf.is_empty() || self.fresh => Some((
                    started.saturating_add(nanos(cfg.header_timeout.min(cfg.request_timeout))),
                    DeadlineKind::Header,
                )),
                _ => Some((
                    self.idle_since
                        .saturating_add(nanos(cfg.keep_alive_timeout)),
                    DeadlineKind::Idle,
                )),
            },
            Reading::Head if !self.inbuf.is_empty() => self.head_started.map(|s| {
                (
                    s.saturating_add(nanos(cfg.header_timeout)),
                    DeadlineKind::Header,
                )
            }),
            _ => None,
        }
    }
}

/// Bytes the kernel holds for `stream` that the peer has not taken
/// (`TIOCOUTQ`: unsent or unacknowledged); 0 if it cannot say.
pub(crate) fn kernel_unsent(stream: &TcpStream) -> u64 {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int, through a valid pointer to one, for
    // the socket's descriptor, which `stream` keeps open.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::TIOCOUTQ,
            &mut queued,
        )
    };
    if rc == 0 {
        queued.max(0) as u64
    } else {
        0
    }
}

/// The earlier of two deadlines.
fn earlier(a: (u64, DeadlineKind), b: (u64, DeadlineKind)) -> (u64, DeadlineKind) {
    if b.0 < a.0 {
        b
    } else {
        a
    }
}

/// Why a piece of a streamed body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The client is gone or the stream has ended.
    Closed,
    /// Too many bytes are waiting for the client: try again later.
    Congested,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamError::Closed => "the response stream is closed",
            StreamError::Congested => "the client is not reading fast enough",
        })
    }
}

impl std::error::Error for StreamError {}

/// A response's header fields as the encoder takes them, Content-Type first.
fn fields(response: &Response) -> impl Iterator<Item = (&str, &[u8])> {
    response
        .content_type
        .as_deref()
        .map(|v| ("Content-Type", v))
        .into_iter()
        .chain(response.other_fields().iter().map(|(n, v)| (&**n, &**v)))
}

/// Encodes a response's head, then, for a fixed-length response not
/// answering HEAD, its body. `stream_framing` is a streamed response's
/// (its body follows later); `None` for a fixed one, whose framing is its
/// body's length.
// Inline into its two callers: the answer path is one function from the
// responder to the response cache, with no calls passing its parts in memory.
#[inline(always)]
pub(crate) fn encode_response(
    out: &mut Vec<u8>,
    response: &Response,
    stream_framing: Option<ResponseFraming>,
    head_only: bool,
    close: bool,
    http10_keep_alive: bool,
    date: &DateCache,
) {
    let body = response.body.as_bytes();
    let framing = stream_framing.unwrap_or(ResponseFraming::Length(body.len() as u64));
    let head = ResponseHead {
        status: response.status,
        framing,
        close,
        http10_keep_alive: http10_keep_alive && !close,
    };
    let bodiless = response.status < 200 || response.status == 204 || response.status == 304;
    let sends_body = stream_framing.is_none() && !head_only && !bodiless;
    if response.other_fields().is_empty() {
        // A static body is part of what the cache keeps: one copy for all.
        let static_body = match response.body {
            Body::Static(b) if sends_body => Some(b),
            _ => None,
        };
        encode_cached(
            out,
            &head,
            response.content_type.as_ref(),
            static_body,
            date,
        );
        if static_body.is_some() {
            return;
        }
    } else {
        encode_head(out, &head, fields(response), date.value());
    }
    if sends_body {
        out.extend_from_slice(body);
    }
}
