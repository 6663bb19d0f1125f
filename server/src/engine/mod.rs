//! The server on the loop: the listener, the connections slab, and the glue
//! from loop callbacks (accept, read, write, timers) to connection code.

pub(crate) mod config;
pub(crate) mod connection;
mod read_buffer;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::Interest;
use phaseloop_core::{IoEvent, IoOutcome, IoToken, Loop, TimerId};
use slab::Slab;

use crate::api::app::App;
use crate::api::responder::{Responder, TicketSpares, SPARE_TICKETS};
use crate::engine::config::ServerConfig;
use crate::engine::connection::{
    BufferPool, Conn, Ctx, DeadlineKind, Lifecycle, ReadBudget, Step, StreamError,
};
use crate::http::response::Response;
use crate::http::DateCache;
use crate::serve::listener::bind_listener;

/// Connections accepted per listener event before yielding to the others.
const ACCEPTS_PER_EVENT: usize = 128;
/// Requests dispatched per connection event before yielding.
const REQUESTS_PER_EVENT: u64 = 64;

/// Counters a server keeps (read with [`Server::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed (counted in the loop's close phase).
    pub closed: u64,
    /// Requests dispatched to handlers.
    pub requests: u64,
    /// Handlers' answers by class: 1xx..5xx at index 1..5 (the codec's
    /// refusals are counted in `refused`).
    pub responses_by_class: [u64; 6],
    /// Requests refused by the codec (400, 413, 414, 431, 501, 505...).
    pub refused: u64,
    /// Connections closed by a timeout.
    pub timeouts: u64,
    /// accept() failures, EMFILE/ENFILE included.
    pub accept_errors: u64,
    /// Times accepting paused because descriptors ran out.
    pub accept_pauses: u64,
    /// Handlers that panicked.
    pub handler_panics: u64,
    /// Requests answered 503 because their handler passed
    /// [`ServerConfig::handler_timeout`].
    pub handler_timeouts: u64,
    /// `read` calls on connections (about one per request on a keep-alive
    /// connection, far fewer when pipelined: no `read` follows a short one).
    pub socket_reads: u64,
}

type ShutdownCallback = Box<dyn FnOnce(&Loop)>;

/// Responses of one route, by status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStats {
    /// The route's pattern (`GET /api/users/:id`), or `unmatched` for 404/405.
    pub route: Rc<str>,
    /// (status, responses) in order of first appearance.
    pub by_status: Vec<(u16, u64)>,
}

/// What one drive of a connection did: its reads and what it dispatched.
#[derive(Default)]
struct DriveTally {
    budget: ReadBudget,
    dispatched: u64,
    refused: u64,
}

/// No route label is set (requests that matched no route have none).
const UNLABELLED: u32 = u32::MAX;

/// Highest handler latency the histogram tracks, in microseconds (an hour).
const LATENCY_MAX_US: u64 = 3_600_000_000;

pub(crate) struct ServerInner {
    pub app: App,
    pub cfg: ServerConfig,
    listener: RefCell<Option<TcpListener>>,
    listener_token: Cell<Option<IoToken>>,
    local_addr: SocketAddr,
    conns: RefCell<Slab<Conn>>,
    pool: RefCell<BufferPool>,
    date: RefCell<DateCache>,
    date_timer: Cell<Option<TimerId>>,
    next_conn_id: Cell<u64>,
    stats: RefCell<ServerStats>,
    accept_paused: Cell<bool>,
    shutting_down: Cell<bool>,
    on_shutdown: RefCell<Vec<ShutdownCallback>>,
    /// Per route (last: unmatched), (status, count) pairs: bounded by the
    /// routes and the statuses handlers use.
    route_stats: RefCell<Vec<Vec<(u16, u64)>>>,
    /// Time from dispatch to response, microseconds.
    latency_us: RefCell<hdrhistogram::Histogram<u64>>,
    /// Answers given during their own dispatch (the loop's clock has not
    /// moved: 1 µs in the histogram). Counted here and added to the
    /// histogram when it is read: most answers are these, and a counter is
    /// a tenth of a histogram record.
    answered_at_once: Cell<u64>,
    /// Spare boxes for responders' tickets.
    pub(crate) ticket_spares: TicketSpares,
}

/// An HTTP/1.1 server running on a [`Loop`].
///
/// ```no_run
/// use phaseloop::{App, Server, ServerConfig};
/// use phaseloop_core::{Loop, RunMode};
///
/// let lp = Loop::new().unwrap();
/// let app = App::new().get("/", |_lp, _req, res| res.text(200, "Hello, World!"));
/// let server = Server::bind(&lp, "127.0.0.1:3000".parse().unwrap(), app, ServerConfig::default()).unwrap();
/// println!("listening on {}", server.local_addr());
/// lp.run(RunMode::Default);
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listens on `addr` and serves `app` on `lp` (once `lp` runs).
    ///
    /// The loop is set to catch panics ([`Loop::set_catch_panics`]): a
    /// handler that panics in a callback it scheduled (a timer, an
    /// immediate, a pool job's completion) answers 500 for its request, as
    /// one that panics at once does, and the loop serves on. A program
    /// that prefers a panic to end the run calls
    /// `lp.set_catch_panics(false)` after binding.
    pub fn bind(lp: &Loop, addr: SocketAddr, app: App, cfg: ServerConfig) -> io::Result<Server> {
        let listener = bind_listener(addr, cfg.backlog, cfg.reuse_port)?;
        Server::from_listener(lp, listener, app, cfg)
    }

    /// Serves `app` on an already bound, nonblocking listener (the loop
    /// catches panics from then on, as with [`Server::bind`]).
    pub fn from_listener(
        lp: &Loop,
        mut listener: TcpListener,
        mut app: App,
        cfg: ServerConfig,
    ) -> io::Result<Server> {
        app.finish();
        lp.set_catch_panics(true);
        let local_addr = listener.local_addr()?;
        let inner = Rc::new(ServerInner {
            app,
            cfg,
            listener: RefCell::new(None),
            listener_token: Cell::new(None),
            local_addr,
            conns: RefCell::new(Slab::new()),
            pool: RefCell::new(BufferPool::new()),
            date: RefCell::new(DateCache::new()),
            date_timer: Cell::new(None),
            next_conn_id: Cell::new(1),
            stats: RefCell::new(ServerStats::default()),
            accept_paused: Cell::new(false),
            shutting_down: Cell::new(false),
            on_shutdown: RefCell::new(Vec::new()),
            route_stats: RefCell::new(Vec::new()),
            latency_us: RefCell::new(
                hdrhistogram::Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                    .expect("static bounds are valid"),
            ),
            answered_at_once: Cell::new(0),
            ticket_spares: TicketSpares::new(SPARE_TICKETS),
        });
        let routes = inner.app.router.routes.len();
        *inner.route_stats.borrow_mut() = vec![Vec::new(); routes + 1];
        let weak = Rc::downgrade(&inner);
        let token = lp.register_io(&mut listener, Interest::READABLE, move |lp, _ev| match weak
            .upgrade()
        {
            Some(inner) => inner.accept(lp),
            None => IoOutcome::Drained,
        })?;
        *inner.listener.borrow_mut() = Some(listener);
        inner.listener_token.set(Some(token));
        // The Date header changes once a second; so does our copy of it.
        let weak = Rc::downgrade(&inner);
        let timer = lp.set_interval(Duration::from_secs(1), move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.date.borrow_mut().refresh();
            }
        });
        lp.unref_timer(timer);
        inner.date_timer.set(Some(timer));
        Ok(Server { inner })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Bytes of buffer memory held by connections now (read and write
    /// buffers plus answered responses waiting for their turn). Idle
    /// keep-alive connections hold none.
    pub fn buffered_bytes(&self) -> usize {
        self.inner
            .conns
            .borrow()
            .iter()
            .map(|(_, c)| c.buffered_bytes())
            .sum()
    }

    /// Responses by route and status.
    pub fn route_stats(&self) -> Vec<RouteStats> {
        let routes = &self.inner.app.router.routes;
        self.inner
            .route_stats
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, by_status)| RouteStats {
                route: routes
                    .get(i)
                    .map_or_else(|| "unmatched".into(), |r| r.pattern.clone()),
                by_status: by_status.clone(),
            })
            .collect()
    }

    /// Time from dispatch to response of every request so far, in
    /// microseconds, measured on the loop's clock (one tick resolution:
    /// answers given during the dispatch count as 1 µs).
    pub fn latency_histogram(&self) -> hdrhistogram::Histogram<u64> {
        let mut histogram = self.inner.latency_us.borrow_mut();
        let at_once = self.inner.answered_at_once.replace(0);
        if at_once > 0 {
            histogram.saturating_record_n(1, at_once);
        }
        histogram.clone()
    }

    /// A copy of the server's counters.
    pub fn stats(&self) -> ServerStats {
        let mut stats = self.inner.stats.borrow().clone();
        // Every handler's answer is counted once, by route and status;
        // the classes are added up from there when asked for.
        for by_status in self.inner.route_stats.borrow().iter() {
            for &(status, n) in by_status {
                stats.responses_by_class[usize::from(status / 100).min(5)] += n;
            }
        }
        stats
    }

    /// Graceful shutdown: stop accepting, close idle connections, let
    /// in-flight requests finish (their responses say `Connection: close`),
    /// and force-close whatever remains after `deadline`. `done` runs as a
    /// next tick once the last connection is gone (after that connection's
    /// close-phase callback; at once after the current callback if none is
    /// open), as Node emits a server's `'close'`.
    pub fn shutdown(&self, lp: &Loop, deadline: Duration, done: impl FnOnce(&Loop) + 'static) {
        self.inner.begin_shutdown(lp, deadline, Box::new(done));
    }
}

impl ServerInner {
    /// The loop's time in nanoseconds: a connection's times are kept so.
    fn now(lp: &Loop) -> u64 {
        lp.now_ns()
    }

    /// What connection code needs from the server, for one call.
    fn ctx(&self, now: u64) -> Ctx<'_> {
        Ctx {
            cfg: &self.cfg,
            app: &self.app,
            pool: &self.pool,
            date: &self.date,
            now,
        }
    }

    pub fn conn_alive(&self, key: usize, id: u64) -> bool {
        self.conns.borrow().get(key).is_some_and(|c| c.id == id)
    }

    /// Counts a response for its route and records its latency.
    // Inline into the responder's answer, its one caller.
    #[inline(always)]
    pub fn record(&self, route: u32, status: u16, took_ns: u64) {
        let mut stats = self.route_stats.borrow_mut();
        let last = stats.len() - 1;
        let by_status = &mut stats[(route as usize).min(last)];
        match by_status.first_mut() {
            // A route nearly always answers with its first status.
            Some((s, n)) if *s == status => *n += 1,
            _ => match by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => by_status.push((status, 1)),
            },
        }
        if took_ns < 2_000 {
            self.answered_at_once.set(self.answered_at_once.get() + 1);
            return;
        }
        let us = (took_ns / 1_000).min(LATENCY_MAX_US);
        self.latency_us.borrow_mut().saturating_record(us);
    }

    pub fn note_handler_panic(&self) {
        self.stats.borrow_mut().handler_panics += 1;
    }

    // ----- accepting ----------------------------------------------------------

    fn accept(self: Rc<Self>, lp: &Loop) -> IoOutcome {
        if self.accept_paused.get() || self.shutting_down.get() {
            return IoOutcome::Drained;
        }
        for _ in 0..ACCEPTS_PER_EVENT {
            let accepted = match self.listener.borrow().as_ref() {
                Some(l) => l.accept(),
                None => return IoOutcome::Drained,
            };
            match accepted {
                Ok((stream, peer)) => self.add_conn(lp, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return IoOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.borrow_mut().accept_errors += 1;
                    if is_fd_exhaustion(&e) {
                        // Out of descriptors: the pending connection stays in
                        // the backlog and the listener stays readable. Retrying
                        // now would spin; pause, then try again.
                        self.stats.borrow_mut().accept_pauses += 1;
                        self.accept_paused.set(true);
                        let inner = self.clone();
                        lp.set_timeout(self.cfg.accept_pause, move |lp| {
                            inner.accept_paused.set(false);
                            inner.resume_accepting(lp);
                        });
                        return IoOutcome::Drained;
                    }
                    // ECONNABORTED and friends: that one connection is gone.
                }
            }
        }
        IoOutcome::Again
    }

    /// Accepts what waited during a pause. Edges that arrived meanwhile were
    /// consumed, so no readiness event will come for those connections: go
    /// on from a check callback until the backlog is drained.
    fn resume_accepting(self: Rc<Self>, lp: &Loop) {
        let inner = self.clone();
        if self.accept(lp) == IoOutcome::Again {
            lp.set_immediate(move |lp| inner.resume_accepting(lp));
        }
    }

    fn add_conn(self: &Rc<Self>, lp: &Loop, stream: mio::net::TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        let key = {
            let mut conns = self.conns.borrow_mut();
            let entry = conns.vacant_entry();
            let key = entry.key();
            entry.insert(Conn::new(id, stream, Some(peer), Self::now(lp)));
            key
        };
        let weak = Rc::downgrade(self);
        let registered = {
            let mut conns = self.conns.borrow_mut();
            let conn = &mut conns[key];
            lp.register_io(
                &mut conn.stream,
                Interest::READABLE | Interest::WRITABLE,
                move |lp, ev| match weak.upgrade() {
                    Some(inner) => inner.on_event(lp, key, id, ev),
                    None => IoOutcome::Drained,
                },
            )
        };
        match registered {
            Ok(token) => {
                self.conns.borrow_mut()[key].token = Some(token);
                let mut stats = self.stats.borrow_mut();
                stats.accepted += 1;
                stats.open += 1;
                drop(stats);
                self.update_deadline(lp, key);
            }
            Err(_) => {
                self.conns.borrow_mut().remove(key);
            }
        }
    }

    // ----- connection events ----------------------------------------------

    fn on_event(self: Rc<Self>, lp: &Loop, key: usize, id: u64, ev: IoEvent) -> IoOutcome {
        let output_waiting = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key).filter(|c| c.id == id) else {
                return IoOutcome::Drained;
            };
            if ev.read_closed || ev.error {
                conn.peer_shut = true;
            }
            // Most events report the socket writable (epoll gives the whole
            // readiness mask); only output that waited for room needs a
            // flush: unsent bytes, or streams waiting for room.
            ev.writable && (conn.unsent() > 0 || !conn.drain_waiters.is_empty())
        };
        if output_waiting && !self.flush(lp, key) {
            return IoOutcome::Drained;
        }
        if ev.readable || ev.read_closed || ev.error {
            return self.drive(lp, key);
        }
        IoOutcome::Drained
    }

    /// Reads, parses and dispatches until the connection must wait.
    fn drive(self: &Rc<Self>, lp: &Loop, key: usize) -> IoOutcome {
        // The starvation guard's label names the route being served; it
        // changes only when the route does (a pipelined batch is usually
        // one route) and is cleared once the batch is over.
        let mut labelled = UNLABELLED;
        let mut tally = DriveTally::default();
        let outcome = self.drive_batch(lp, key, &mut labelled, &mut tally);
        if labelled != UNLABELLED {
            lp.set_label(None);
        }
        // Counted once a drive, not once a request: a pipelined batch is
        // many requests.
        let mut stats = self.stats.borrow_mut();
        stats.requests += tally.dispatched;
        stats.refused += tally.refused;
        stats.socket_reads += tally.budget.reads as u64;
        outcome
    }

    fn drive_batch(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        labelled: &mut u32,
        tally: &mut DriveTally,
    ) -> IoOutcome {
        // The loop's clock moves once per tick, never inside a callback.
        let now = Self::now(lp);
        // Lends nothing borrowed: one for the whole drive.
        let mut ctx = self.ctx(now);
        let outcome = loop {
            let step = {
                let mut conns = self.conns.borrow_mut();
                let Some(conn) = conns.get_mut(key) else {
                    return IoOutcome::Drained;
                };
                conn.batching = true;
                let step = conn.next_step(&mut ctx, &mut tally.budget);
                (step, conn.id, conn.dispatched_seq, conn.dispatched_target)
            };
            match step {
                (Step::Dispatch(req), id, seq, target) => {
                    tally.dispatched += 1;
                    let route = match target {
                        crate::api::app::Target::Route { index } => index,
                        _ => u32::MAX,
                    };
                    if route != *labelled {
                        lp.set_label(self.app.label(target));
                        *labelled = route;
                    }
                    let res = Responder::new(self.clone(), key, id, seq, route, now);
                    let ok = self.app.dispatch(lp, target, req, res);
                    if !ok {
                        eprintln!("phaseloop: a handler panicked; answered 500");
                    }
                    if tally.dispatched >= REQUESTS_PER_EVENT {
                        break IoOutcome::Again;
                    }
                }
                (step @ (Step::Wait | Step::Refused), ..) => {
                    tally.refused += u64::from(matches!(step, Step::Refused));
                    // Flushing may let a paused connection read again.
                    if self.finish_batch(lp, key) {
                        continue;
                    }
                    return IoOutcome::Drained;
                }
                (Step::Yield, ..) => break IoOutcome::Again,
                (Step::Close, ..) => {
                    self.close_conn(lp, key);
                    return IoOutcome::Drained;
                }
            }
        };
        self.finish_batch(lp, key);
        outcome
    }

    /// Ends a read batch: writes the batch's responses in one go. Returns
    /// true if the connection was paused and may now read again.
    fn finish_batch(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        if let Some(conn) = self.conns.borrow_mut().get_mut(key) {
            conn.batching = false;
            // The batch may have ended right after a dispatch.
            conn.settle();
            // Once per batch, not per request: what is still unanswered
            // now is all in the queue.
            if let Some(limit) = self.cfg.handler_timeout {
                self.watch_answers(lp, key, conn, limit);
            }
        }
        if !self.flush(lp, key) {
            return false;
        }
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key) else {
            return false;
        };
        if conn.may_resume(&self.cfg) {
            conn.paused = false;
            return true;
        }
        false
    }

    /// Writes pending output; handles closing after the last response.
    /// Returns false if the connection is gone.
    fn flush(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        let now = Self::now(lp);
        let result = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else {
                return false;
            };
            conn.flush(now).map(|()| {
                let done = conn.done_after_flush() && conn.lifecycle == Lifecycle::Open;
                if done {
                    conn.start_linger(now);
                }
                if conn.is_idle() {
                    conn.idle_since = now;
                    conn.release_buffers(&mut self.pool.borrow_mut());
                }
                // Streams waiting for room get it back below half the mark.
                let drained = if !conn.drain_waiters.is_empty()
                    && conn.buffered_output() < self.cfg.write_high_water / 2
                {
                    std::mem::take(&mut conn.drain_waiters)
                } else {
                    Vec::new()
                };
                // Usually the armed timer still covers the deadline: seen
                // here, that costs no second look-up of the connection.
                let timer_ok =
                    !done && drained.is_empty() && conn.deadline_to_arm(&self.cfg).is_none();
                (done, drained, timer_ok)
            })
        };
        match result {
            Err(_) => {
                self.close_conn(lp, key);
                false
            }
            Ok((lingering, drained, timer_ok)) => {
                // Each in its own macrotask (this tick's check phase, as a
                // waiter given room at once): user code never runs in the
                // middle of this function, and one that panics is the
                // loop's to catch, not a cut through the rest of it.
                for waiter in drained {
                    lp.set_immediate(waiter);
                }
                if lingering && !self.drive_linger(lp, key) {
                    return false; // the client had already closed: done
                }
                if !timer_ok {
                    self.update_deadline(lp, key);
                }
                true
            }
        }
    }

    fn drive_linger(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        let step = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else {
                return false;
            };
            conn.next_step(&mut self.ctx(Self::now(lp)), &mut ReadBudget::default())
        };
        if let Step::Close = step {
            self.close_conn(lp, key);
            return false;
        }
        true
    }

    /// Arms the handler timeout of each request of `conn` whose handler
    /// has not answered and that has none yet. The timers are
    /// unreferenced: they never keep the loop alive, and one firing after
    /// its answer does nothing.
    #[inline(never)]
    fn watch_answers(self: &Rc<Self>, lp: &Loop, key: usize, conn: &mut Conn, limit: Duration) {
        let id = conn.id;
        for seq in conn.unwatched_answers() {
            let weak = Rc::downgrade(self);
            let timer = lp.set_timeout(limit, move |lp| {
                if let Some(inner) = weak.upgrade() {
                    inner.answer_timed_out(lp, key, id, seq, limit);
                }
            });
            lp.unref_timer(timer);
        }
    }

    /// The handler timeout of request `seq` fired: answers 503 in its
    /// place, which [`ServerInner::complete`] takes only if its handler
    /// has not answered meanwhile (the one look for the waiting request).
    fn answer_timed_out(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        limit: Duration,
    ) {
        let response = Response::text(
            503,
            format!(
                "503 Service Unavailable: the handler did not answer within {} ms\n",
                limit.as_millis()
            ),
        );
        if self.complete(lp, key, id, seq, &response) {
            self.stats.borrow_mut().handler_timeouts += 1;
        }
    }

    /// A handler answered: queue the response in order and write if we are
    /// not inside a read batch. False if nobody waits for it any more (the
    /// client left, or a handler timeout answered for it).
    pub fn complete(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        response: &Response,
    ) -> bool {
        // Inside a read batch (the common case: an answer given during its
        // dispatch) the batch writes at its end; nothing more to do here.
        let Some((taken, batching)) = self.with_conn(key, id, |conn| {
            let taken = conn.complete(seq, response, &self.date.borrow(), &self.pool);
            (taken, conn.batching)
        }) else {
            return false;
        };
        // An answer not taken added no output.
        if taken && !batching {
            self.after_output(lp, key);
        }
        taken
    }

    /// A handler starts a streamed response. False if the client left.
    pub fn stream_start(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        response: &Response,
    ) -> bool {
        let started = self
            .with_conn(key, id, |conn| {
                conn.start_stream(seq, response, &self.date.borrow(), &self.pool)
            })
            .unwrap_or(false);
        if started {
            self.after_output(lp, key);
        }
        started
    }

    /// A piece of a streamed body.
    pub fn stream_write(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        data: &[u8],
    ) -> Result<(), StreamError> {
        let high_water = self.cfg.write_high_water;
        let result = self
            .with_conn(key, id, |conn| conn.stream_chunk(seq, data, high_water))
            .unwrap_or(Err(StreamError::Closed));
        if result.is_ok() {
            self.after_output(lp, key);
        }
        result
    }

    /// True when a stream's next piece would be refused as congested (or
    /// the connection is gone).
    pub fn stream_congested(&self, key: usize, id: u64) -> bool {
        let high_water = self.cfg.write_high_water;
        self.with_conn(key, id, |conn| conn.buffered_output() >= high_water)
            .unwrap_or(true)
    }

    /// Runs `callback` once the connection has taken most of what is
    /// buffered for it (at once, next tick, if it already has); dropped if
    /// the connection closes first.
    pub fn stream_on_drain(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        callback: Box<dyn FnOnce(&Loop)>,
    ) {
        let half = self.cfg.write_high_water / 2;
        let ready = self.with_conn(key, id, |conn| {
            if conn.buffered_output() < half {
                Some(callback)
            } else {
                conn.drain_waiters.push(callback);
                None
            }
        });
        if let Some(Some(callback)) = ready {
            lp.set_immediate(callback);
        }
    }

    /// The end of a streamed body (`abort`: cut it short and close).
    pub fn stream_end(self: &Rc<Self>, lp: &Loop, key: usize, id: u64, seq: u64, abort: bool) {
        if self
            .with_conn(key, id, |conn| conn.end_stream(seq, abort))
            .is_some()
        {
            self.after_output(lp, key);
        }
    }

    /// Runs `f` on connection `key` if it is still connection `id`.
    fn with_conn<R>(&self, key: usize, id: u64, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        let mut conns = self.conns.borrow_mut();
        let conn = conns.get_mut(key).filter(|c| c.id == id)?;
        Some(f(conn))
    }

    /// After a handler produced output outside a read batch: write it now,
    /// and let a paused connection read again if that drained it.
    fn after_output(self: &Rc<Self>, lp: &Loop, key: usize) {
        let batching = self.conns.borrow().get(key).is_some_and(|c| c.batching);
        if batching || !self.flush(lp, key) {
            return;
        }
        let resume = {
            let mut conns = self.conns.borrow_mut();
            conns.get_mut(key).is_some_and(|c| {
                let r = c.may_resume(&self.cfg);
                if r {
                    c.paused = false;
                }
                r
            })
        };
        if resume && self.drive(lp, key) == IoOutcome::Again {
            // Budget spent: the socket may still hold requests, and no new
            // edge will say so. Come back in the next tick.
            let inner = self.clone();
            lp.defer(move |lp| {
                if inner.conns.borrow().contains(key) {
                    inner.drive(lp, key);
                }
            });
        }
    }

    // ----- deadlines --------------------------------------------------------

    /// Arms the connection's single timer for its current deadline. The timer
    /// is lazy: moving a deadline later costs nothing; when the timer fires
    /// early it re-arms for the new time.
    fn update_deadline(self: &Rc<Self>, lp: &Loop, key: usize) {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let Some(due) = conn.deadline_to_arm(&self.cfg) else {
            return;
        };
        if let Some(t) = conn.timer.take() {
            lp.clear_timer(t);
        }
        let id = conn.id;
        let inner = Rc::downgrade(self);
        let delay = Duration::from_nanos(due.saturating_sub(Self::now(lp)));
        let timer = lp.set_timeout(delay, move |lp| {
            if let Some(inner) = inner.upgrade() {
                inner.on_deadline(lp, key, id);
            }
        });
        lp.unref_timer(timer);
        conn.timer = Some(timer);
        conn.timer_due = due;
    }

    fn on_deadline(self: Rc<Self>, lp: &Loop, key: usize, id: u64) {
        let now = Self::now(lp);
        let kind = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key).filter(|c| c.id == id) else {
                return;
            };
            conn.timer = None;
            match conn.deadline(&self.cfg) {
                None => return,
                Some((due, _)) if due > now => None,
                Some((_, kind)) => Some(kind),
            }
        };
        let Some(kind) = kind else {
            self.update_deadline(lp, key);
            return;
        };
        self.stats.borrow_mut().timeouts += 1;
        match kind {
            DeadlineKind::Header | DeadlineKind::Body => {
                // RFC 9110 §15.5.9: 408, then close.
                {
                    let mut conns = self.conns.borrow_mut();
                    let conn = &mut conns[key];
                    let mut ctx = self.ctx(now);
                    if matches!(conn.reading, crate::engine::connection::Reading::Body(_)) {
                        conn.queue.pop_back();
                    }
                    conn.refuse(
                        crate::http::HttpError::new(408, "request not received in time"),
                        &mut ctx,
                    );
                }
                self.flush(lp, key);
            }
            DeadlineKind::Idle | DeadlineKind::Send | DeadlineKind::Linger => {
                self.close_conn(lp, key)
            }
        }
    }

    // ----- closing -----------------------------------------------------------

    fn close_conn(self: &Rc<Self>, lp: &Loop, key: usize) {
        let Some(mut conn) = self.conns.borrow_mut().try_remove(key) else {
            return;
        };
        if let Some(token) = conn.token.take() {
            let _ = lp.deregister_io(token, &mut conn.stream);
        }
        if let Some(t) = conn.timer.take() {
            lp.clear_timer(t);
        }
        conn.inbuf.clear();
        conn.out_pos = 0;
        conn.outbuf.clear();
        conn.release_buffers(&mut self.pool.borrow_mut());
        drop(conn); // closes the socket
        self.stats.borrow_mut().open -= 1;
        let inner = self.clone();
        lp.on_close(move |lp| {
            inner.stats.borrow_mut().closed += 1;
            if inner.shutting_down.get() && inner.conns.borrow().is_empty() {
                // Node emits a server's 'close' by process.nextTick once
                // its last connection is gone.
                let inner = inner.clone();
                lp.next_tick(move |lp| inner.finish_shutdown(lp));
            }
        });
    }

    fn begin_shutdown(
        self: &Rc<Self>,
        lp: &Loop,
        deadline: Duration,
        done: Box<dyn FnOnce(&Loop)>,
    ) {
        self.on_shutdown.borrow_mut().push(done);
        if self.shutting_down.replace(true) {
            return;
        }
        if let Some(mut listener) = self.listener.borrow_mut().take() {
            if let Some(token) = self.listener_token.take() {
                let _ = lp.deregister_io(token, &mut listener);
            }
        }
        if let Some(t) = self.date_timer.take() {
            lp.clear_timer(t);
        }
        let keys: Vec<usize> = self.conns.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            let idle = {
                let mut conns = self.conns.borrow_mut();
                let conn = &mut conns[key];
                // In-flight requests finish; their last response says close.
                conn.close_after_queue = true;
                if !matches!(conn.reading, crate::engine::connection::Reading::Body(_)) {
                    conn.reading = crate::engine::connection::Reading::Stopped;
                }
                !conn.in_flight()
                    && conn.unsent() == 0
                    && !matches!(conn.reading, crate::engine::connection::Reading::Body(_))
            };
            if idle {
                self.close_conn(lp, key);
            }
        }
        if self.conns.borrow().is_empty() {
            // As Node's server 'close': a next tick once nothing is open.
            let inner = self.clone();
            lp.next_tick(move |lp| inner.finish_shutdown(lp));
            return;
        }
        let inner = self.clone();
        let force = lp.set_timeout(deadline, move |lp| {
            let keys: Vec<usize> = inner.conns.borrow().iter().map(|(k, _)| k).collect();
            for key in keys {
                inner.close_conn(lp, key);
            }
        });
        lp.unref_timer(force);
    }

    fn finish_shutdown(&self, lp: &Loop) {
        let callbacks = std::mem::take(&mut *self.on_shutdown.borrow_mut());
        for cb in callbacks {
            cb(lp);
        }
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
