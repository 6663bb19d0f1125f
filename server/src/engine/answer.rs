//! A handler's answer on its way into the engine: the handle a responder
//! wraps ([`Answer`]), a streamed body's ([`Stream`]), and the engine's side
//! of both (queueing in order, writing, counting).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Waker;

use phaseloop_core::Loop;

use crate::engine::exchange::StreamError;
use crate::engine::service::Service;
use crate::engine::upgrade::UpgradeHook;
use crate::engine::{Engine, RouteStats, ServerStats};
use crate::http::response::Response;
use crate::http::spares::Spares;

type SendHook = Box<dyn FnOnce(&mut Response)>;

/// A serving engine's figures, read at once (for the dashboard).
pub(crate) struct ServerFigures {
    pub stats: ServerStats,
    pub routes: Vec<RouteStats>,
    pub latency: hdrhistogram::Histogram<u64>,
    pub buffered: usize,
    /// Connections idle, reading, writing.
    pub states: (usize, usize, usize),
}

/// Sends a response later: what a [`Transform`] is given.
pub(crate) type SendLater = Box<dyn FnOnce(Response)>;

/// Takes a finished response and sends it (or another) later through
/// the [`SendLater`] it is given: middleware that needs the pool (a
/// compressor, say). Streams pass it by.
pub(crate) type Transform = Box<dyn FnOnce(Response, SendLater)>;

/// The body of the 500 a panicking handler (or response hook) gets.
pub(crate) const PANICKED: &str = "the handler panicked";

/// The engine's handle for answering one request, once. Two pointers,
/// passed in registers: it is moved several times on every request's way
/// to its handler, and one of seven words went through memory, each move a
/// copy whose 16-byte loads of fields just stored one by one stalled store
/// forwarding (the hottest user instruction of a pipelined load). Dropped
/// unanswered, it answers 500.
pub(crate) struct Answer<S: Service> {
    /// Both `None` once answered.
    engine: Option<Rc<Engine<S>>>,
    ticket: Option<Box<Ticket>>,
}

/// Which request an answer is for, and what it needs to count it. Boxes
/// are recycled by the engine ([`TicketSpares`]), so a warm loop makes
/// answers without allocating.
pub(crate) struct Ticket {
    /// The connection's slab key: below the descriptor limit, so 32 bits.
    key: u32,
    route: u32,
    conn_id: u64,
    seq: u64,
    /// Loop time at dispatch: the loop's cached clock costs no system call,
    /// and its resolution (one tick) is what a queued request experiences.
    /// In nanoseconds: one subtraction when answered.
    started_ns: u64,
    /// Usually empty (it keeps its capacity when the box is recycled).
    hooks: Vec<SendHook>,
    /// Where a detached answer's response goes (`None` for an engine's).
    detached: Option<Rc<Detached>>,
    /// Takes the response before it is sent (the last set runs first).
    transforms: Vec<Transform>,
    /// The request's `tracing` span (none unless a subscriber wants
    /// debug-level spans of target `phaseloop`): status and latency are
    /// recorded in it when the answer is sent.
    span: tracing::Span,
}

/// The destination of an answer with no engine behind it: in-process
/// dispatch (`phaseloop::testing`), where a request comes from no socket.
pub(crate) struct Detached {
    /// The response, once answered (hooks run).
    pub response: std::cell::RefCell<Option<Response>>,
    /// The service that dispatched it (its error renderer is used).
    pub service: Rc<dyn std::any::Any>,
}

/// An engine's spare ticket boxes (boxes, not tickets: an answer holds its
/// ticket by pointer, and a spare must be one already).
pub(crate) type TicketSpares = Spares<Box<Ticket>>;

/// Spare ticket boxes an engine keeps (more are freed when given back).
pub(crate) const SPARE_TICKETS: usize = 64;

impl<S: Service> Answer<S> {
    #[inline]
    pub(crate) fn new(
        engine: Rc<Engine<S>>,
        key: usize,
        conn_id: u64,
        seq: u64,
        route: u32,
        started_ns: u64,
    ) -> Self {
        let ticket = match engine.ticket_spares.take() {
            // Field by field: the spare's hooks vector stays as it is.
            Some(mut spare) => {
                spare.key = key as u32;
                spare.route = route;
                spare.conn_id = conn_id;
                spare.seq = seq;
                spare.started_ns = started_ns;
                spare
            }
            None => Box::new(Ticket {
                key: key as u32,
                route,
                conn_id,
                seq,
                started_ns,
                hooks: Vec::new(),
                detached: None,
                transforms: Vec::new(),
                span: tracing::Span::none(),
            }),
        };
        Answer {
            engine: Some(engine),
            ticket: Some(ticket),
        }
    }

    /// Gives the answer its request's span.
    #[cold]
    pub(crate) fn trace(&mut self, span: tracing::Span) {
        if let Some(ticket) = &mut self.ticket {
            ticket.span = span;
        }
    }

    /// An answer whose response goes to `to` instead of a connection.
    pub(crate) fn detached(to: Rc<Detached>) -> Self {
        Answer {
            engine: None,
            ticket: Some(Box::new(Ticket {
                key: 0,
                route: u32::MAX,
                conn_id: 0,
                seq: 0,
                started_ns: 0,
                hooks: Vec::new(),
                detached: Some(to),
                transforms: Vec::new(),
                span: tracing::Span::none(),
            })),
        }
    }

    /// The service the request went to (`None` once answered).
    pub(crate) fn service(&self) -> Option<&S> {
        match &self.engine {
            Some(engine) => Some(&engine.service),
            None => self
                .ticket
                .as_ref()?
                .detached
                .as_ref()?
                .service
                .downcast_ref::<S>(),
        }
    }

    /// True while the request still waits for this answer (the client is
    /// there, no handler timeout answered in its place).
    pub(crate) fn is_awaited(&self) -> bool {
        match (&self.engine, &self.ticket) {
            (Some(engine), Some(t)) => engine
                .with_exchange(t.key as usize, t.conn_id, |c| {
                    c.waits_for(t.seq) && !c.read_eof
                })
                .unwrap_or(false),
            (None, Some(_)) => true, // detached: waited for until answered
            _ => false,
        }
    }

    /// Wakes `waker` when the request stops waiting for this answer.
    pub(crate) fn watch_cancel(&self, waker: &Waker) {
        if let (Some(engine), Some(t)) = (&self.engine, &self.ticket) {
            let mut all = engine.cancel_wakers.borrow_mut();
            let watchers = all.entry((t.key as usize, t.conn_id)).or_default();
            match watchers.iter_mut().find(|(seq, _)| *seq == t.seq) {
                Some((_, w)) => w.clone_from(waker),
                None => watchers.push((t.seq, waker.clone())),
            }
        }
    }

    /// Stops [`Answer::watch_cancel`]'s watch.
    pub(crate) fn forget_cancel(&self) {
        if let (Some(engine), Some(t)) = (&self.engine, &self.ticket) {
            let mut all = engine.cancel_wakers.borrow_mut();
            let conn = (t.key as usize, t.conn_id);
            if let Some(watchers) = all.get_mut(&conn) {
                watchers.retain(|(seq, _)| *seq != t.seq);
                if watchers.is_empty() {
                    all.remove(&conn);
                }
            }
        }
    }

    /// The serving engine's figures: counters, responses by route, the
    /// latency histogram and buffered bytes (`None` for a detached answer).
    pub(crate) fn server_figures(&self) -> Option<ServerFigures> {
        self.engine.as_ref().map(|e| ServerFigures {
            stats: e.stats(),
            routes: e.route_stats(),
            latency: e.latency_histogram(),
            buffered: e.buffered_bytes(),
            states: e.conn_states(),
        })
    }

    /// Which connection and request (for `Debug`).
    pub(crate) fn ids(&self) -> Option<(u64, u64)> {
        self.ticket.as_ref().map(|t| (t.conn_id, t.seq))
    }

    /// Registers `hook` to see (and may change) the response before it is
    /// written.
    pub(crate) fn on_send(&mut self, hook: impl FnOnce(&mut Response) + 'static) {
        if let Some(ticket) = &mut self.ticket {
            ticket.hooks.push(Box::new(hook));
        }
    }

    /// Registers `transform` to take the (non-streamed) response and send
    /// it later: the innermost registered runs first, each sending on to
    /// the next, the hooks after all of them.
    pub(crate) fn transform(&mut self, transform: Transform) {
        if let Some(ticket) = &mut self.ticket {
            ticket.transforms.push(transform);
            // Transforms are looked for only where hooks are (one check
            // on every answer's way): an empty hook makes sure they are.
            // (A zero-sized closure: its box allocates nothing.)
            ticket.hooks.push(Box::new(|_: &mut Response| {}));
        }
    }

    /// True while the connection that asked is still open.
    pub(crate) fn is_connected(&self) -> bool {
        match (&self.engine, &self.ticket) {
            (Some(engine), Some(t)) => engine.conn_alive(t.key as usize, t.conn_id),
            _ => false,
        }
    }

    /// Sends `response` (dropped quietly if the client has gone), then
    /// forgets the spent handle: answered, it has nothing to drop, and
    /// skipping `Drop` saves every request its check.
    #[inline(always)]
    pub(crate) fn send(mut self, response: Response) {
        self.finish(response);
        debug_assert!(self.engine.is_none() && self.ticket.is_none());
        std::mem::forget(self);
    }

    /// Starts a streamed response: head now, body through the [`Stream`].
    pub(crate) fn stream(mut self, mut response: Response) -> Stream<S> {
        // Streams pass transforms by (and a recycled ticket keeps none).
        if let Some(ticket) = &mut self.ticket {
            ticket.transforms.clear();
        }
        let mut stream = Stream {
            engine: None,
            key: 0,
            conn_id: 0,
            seq: 0,
        };
        self.answer(&mut response, |lp, engine, t, response| {
            let (key, conn_id, seq) = (t.key as usize, t.conn_id, t.seq);
            let started = engine.stream_start(lp, key, conn_id, seq, response);
            if started {
                stream = Stream {
                    engine: Some(engine.clone()),
                    key,
                    conn_id,
                    seq,
                };
            }
            started
        });
        stream
    }

    /// Switches protocols: `response` (a 101) is sent in order, then the
    /// connection leaves the engine for `hook`. False (and `hook` dropped)
    /// if the request no longer waits, or did not ask to upgrade (an
    /// HTTP/1.1 request with `Connection: upgrade`: the caller checks
    /// that first, as `ws::handshake` does).
    pub(crate) fn upgrade(mut self, mut response: Response, hook: UpgradeHook) -> bool {
        if let Some(ticket) = &mut self.ticket {
            ticket.transforms.clear();
        }
        let mut hook = Some(hook);
        let mut accepted = false;
        self.answer(&mut response, |lp, engine, t, response| {
            let hook = hook.take().expect("delivered once");
            accepted = engine.upgrade_start(lp, t.key as usize, t.conn_id, t.seq, response, hook);
            accepted
        });
        accepted
    }

    /// Answers 500 for a handler that panicked.
    pub(crate) fn answer_panic(mut self) {
        if let Some(engine) = &self.engine {
            engine.note_handler_panic();
        }
        let response = match &self.engine {
            Some(engine) => engine.service.error_response(500, PANICKED),
            None => Response::text(500, PANICKED),
        };
        self.finish(response);
    }

    fn finish(&mut self, mut response: Response) {
        self.answer(&mut response, |lp, engine, t, response| {
            engine.complete(lp, t.key as usize, t.conn_id, t.seq, response)
        });
        response.dispose();
    }

    /// What every answer goes through, once: the hooks, `deliver` on the
    /// loop, then the route's counters if it was delivered (an answer
    /// nobody waits for any more is not counted). Does nothing if already
    /// answered. The response is lent, not moved: it is large, and every
    /// move of it is a copy on the path of every request.
    #[inline(always)] // into `finish`, every request's way
    fn answer(
        &mut self,
        response: &mut Response,
        deliver: impl FnOnce(&Loop, &Rc<Engine<S>>, &Ticket, &Response) -> bool,
    ) {
        let (engine, mut ticket) = match (self.engine.take(), self.ticket.take()) {
            (Some(engine), Some(ticket)) => (engine, ticket),
            (None, Some(ticket)) if !ticket.transforms.is_empty() => {
                return transform_first::<S>(None, ticket, response)
            }
            (None, Some(ticket)) => return deliver_detached::<S>(ticket, response),
            _ => return,
        };
        if !ticket.hooks.is_empty() {
            if !ticket.transforms.is_empty() {
                return transform_first(Some(engine), ticket, response);
            }
            run_hooks(&mut ticket.hooks, response, &*engine);
        }
        // No loop is running only once the server's loop has returned (an
        // answer cannot leave its thread): its connections are gone, so
        // there is nothing to deliver. An answer kept in thread-local
        // state is dropped so, at thread exit, and must not panic there.
        Loop::with_current(|lp| {
            if deliver(lp, &engine, &ticket, response) {
                engine.record(
                    ticket.route,
                    response.status(),
                    lp.now_ns().saturating_sub(ticket.started_ns),
                );
            }
            if !ticket.span.is_none() {
                end_span(&mut ticket, response.status(), lp.now_ns());
            }
        });
        engine.ticket_spares.give(ticket);
    }
}

/// Runs the hooks middleware added, in order, leaving the vector empty.
/// A hook that panics turns the response into a 500 (the remaining hooks
/// still see it): the request is answered whatever its middleware does.
#[inline(never)]
fn run_hooks<S: Service>(hooks: &mut Vec<SendHook>, response: &mut Response, engine: &Engine<S>) {
    run_hooks_with(hooks, response, || {
        engine.note_handler_panic();
        engine.service.error_response(500, PANICKED)
    });
}

/// [`run_hooks`]' loop: `on_panic` makes the 500 a hook that panicked
/// leaves in the response's place.
fn run_hooks_with(
    hooks: &mut Vec<SendHook>,
    response: &mut Response,
    on_panic: impl Fn() -> Response,
) {
    for hook in hooks.drain(..) {
        if catch_unwind(AssertUnwindSafe(|| hook(response))).is_err() {
            phaseloop_core::report!(
                error,
                {},
                "phaseloop: a response hook panicked; answered 500"
            );
            *response = on_panic();
        }
    }
}

/// Hands an answer's response to its last transform, with the rest of the
/// answer (earlier transforms, hooks, delivery) to send it on. The
/// response lent here is left a placeholder for the caller to drop.
#[cold]
#[inline(never)]
fn transform_first<S: Service>(
    engine: Option<Rc<Engine<S>>>,
    mut ticket: Box<Ticket>,
    response: &mut Response,
) {
    let Some(transform) = ticket.transforms.pop() else {
        return;
    };
    let rest = Answer {
        engine,
        ticket: Some(ticket),
    };
    let taken = std::mem::replace(response, Response::new(204));
    // A transform that panics drops `send_later`, whose answer then
    // answers 500 as any dropped answer does.
    let send_later: SendLater = Box::new(move |response| rest.send(response));
    transform(taken, send_later);
}

/// Records an answered request's status and latency in its span, and
/// closes it (the recycled ticket keeps none).
#[cold]
#[inline(never)]
fn end_span(ticket: &mut Ticket, status: u16, now_ns: u64) {
    let span = std::mem::replace(&mut ticket.span, tracing::Span::none());
    span.record("status", status);
    span.record(
        "latency_us",
        now_ns.saturating_sub(ticket.started_ns) / 1_000,
    );
}

/// A detached answer: the hooks, then the response kept for whoever
/// dispatched the request.
#[cold]
#[inline(never)]
#[allow(clippy::boxed_local)] // the box is the answer's: moved, not made
fn deliver_detached<S: Service>(mut ticket: Box<Ticket>, response: &mut Response) {
    let service = ticket.detached.as_ref().map(|to| to.service.clone());
    run_hooks_with(&mut ticket.hooks, response, || {
        match service.as_ref().and_then(|s| s.downcast_ref::<S>()) {
            Some(service) => service.error_response(500, PANICKED),
            None => Response::text(500, PANICKED),
        }
    });
    if let Some(to) = ticket.detached.take() {
        *to.response.borrow_mut() = Some(response.clone());
    }
}

impl<S: Service> Engine<S> {
    /// Wakes the async handlers of connection `key` (`id`) watching for
    /// cancellation: of request `seq` only, or all (the connection closed).
    pub(crate) fn wake_cancelled(&self, key: usize, id: u64, seq: Option<u64>) {
        let woken: Vec<Waker> = {
            let mut all = self.cancel_wakers.borrow_mut();
            // Nearly always: no async handler is waiting (no hashing then).
            if all.is_empty() {
                return;
            }
            let Some(watchers) = all.get_mut(&(key, id)) else {
                return;
            };
            let mut woken = Vec::new();
            watchers.retain(|(s, waker)| {
                let hit = seq.is_none_or(|seq| seq == *s);
                if hit {
                    woken.push(waker.clone());
                }
                !hit
            });
            if watchers.is_empty() {
                all.remove(&(key, id));
            }
            woken
        };
        for waker in woken {
            waker.wake();
        }
    }
}

impl<S: Service> Drop for Answer<S> {
    fn drop(&mut self) {
        // Unanswered while it still holds its ticket.
        if self.ticket.is_none() {
            return;
        }
        let message = if std::thread::panicking() {
            if let Some(engine) = &self.engine {
                engine.note_handler_panic();
            }
            PANICKED
        } else {
            "the handler finished without responding"
        };
        let response = match &self.engine {
            Some(engine) => engine.service.error_response(500, message),
            None => Response::text(500, message),
        };
        self.finish(response);
    }
}

/// The engine's handle on a streamed body. Dropped unfinished, it cuts the
/// body short and closes the connection.
pub(crate) struct Stream<S: Service> {
    engine: Option<Rc<Engine<S>>>,
    key: usize,
    conn_id: u64,
    seq: u64,
}

impl<S: Service> Stream<S> {
    /// Which connection, and whether the stream is still open (for `Debug`).
    pub(crate) fn state(&self) -> (u64, bool) {
        (self.conn_id, self.engine.is_some())
    }

    /// Sends `data` as the next piece (see [`crate::BodyWriter::write`]).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        let Some(engine) = &self.engine else {
            return Err(StreamError::Closed);
        };
        Loop::with_current(|lp| engine.stream_write(lp, self.key, self.conn_id, self.seq, data))
            .unwrap_or(Err(StreamError::Closed))
    }

    /// True when the next write would be refused.
    pub(crate) fn congested(&self) -> bool {
        self.engine
            .as_ref()
            .is_none_or(|engine| engine.stream_congested(self.key, self.conn_id))
    }

    /// Runs `callback` once the client has taken most of what waits.
    pub(crate) fn on_drain(&self, callback: impl FnOnce(&Loop) + 'static) {
        if let Some(engine) = &self.engine {
            Loop::with_current(|lp| {
                engine.stream_on_drain(lp, self.key, self.conn_id, Box::new(callback))
            });
        }
    }

    /// Ends the body (`abort`: cut it short and close).
    pub(crate) fn end(&mut self, abort: bool) {
        if let Some(engine) = self.engine.take() {
            Loop::with_current(|lp| engine.stream_end(lp, self.key, self.conn_id, self.seq, abort));
        }
    }
}

impl<S: Service> Drop for Stream<S> {
    fn drop(&mut self) {
        self.end(true);
    }
}

impl<S: Service> Engine<S> {
    /// A handler answered: queue the response in order and write if we are
    /// not inside a read batch. False if nobody waits for it any more (the
    /// client left, or a handler timeout answered for it).
    pub(crate) fn complete(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        response: &Response,
    ) -> bool {
        // Inside a read batch (the common case: an answer given during its
        // dispatch) the batch writes at its end; nothing more to do here.
        let Some((taken, batching)) = self.with_exchange(key, id, |conn| {
            let taken = conn.complete(seq, response, &self.date.borrow(), &self.spares);
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
    fn stream_start(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        response: &Response,
    ) -> bool {
        let started = self
            .with_exchange(key, id, |conn| {
                conn.start_stream(seq, response, &self.date.borrow(), &self.spares)
            })
            .unwrap_or(false);
        if started {
            self.after_output(lp, key);
        }
        started
    }

    /// A piece of a streamed body.
    fn stream_write(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        data: &[u8],
    ) -> Result<(), StreamError> {
        let high_water = self.cfg.write_high_water;
        let result = self
            .with_exchange(key, id, |conn| conn.stream_chunk(seq, data, high_water))
            .unwrap_or(Err(StreamError::Closed));
        if result.is_ok() {
            self.after_output(lp, key);
        }
        result
    }

    /// True when a stream's next piece would be refused as congested (or
    /// the connection is gone).
    fn stream_congested(&self, key: usize, id: u64) -> bool {
        let high_water = self.cfg.write_high_water;
        self.with_exchange(key, id, |conn| conn.buffered_output() >= high_water)
            .unwrap_or(true)
    }

    /// Runs `callback` once the connection has taken most of what is
    /// buffered for it (at once, next tick, if it already has); dropped if
    /// the connection closes first.
    fn stream_on_drain(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        callback: Box<dyn FnOnce(&Loop)>,
    ) {
        let half = self.cfg.write_high_water / 2;
        let ready = self.with_exchange(key, id, |conn| {
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
    fn stream_end(self: &Rc<Self>, lp: &Loop, key: usize, id: u64, seq: u64, abort: bool) {
        if self
            .with_exchange(key, id, |conn| conn.end_stream(seq, abort))
            .is_some()
        {
            self.after_output(lp, key);
        }
    }
}
