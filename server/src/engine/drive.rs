//! Driving a connection: its readiness events, the read batch that parses
//! and dispatches requests, the one write at the batch's end, lingering,
//! handler timeouts, and output produced outside a batch.

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{IoEvent, IoOutcome, Loop};

use crate::engine::answer::Answer;
use crate::engine::connection::Conn;
use crate::engine::exchange::{Exchange, Lifecycle, ReadBudget, Refusal, Step};
use crate::engine::service::Service;
use crate::engine::service::Target;
use crate::engine::waiting::Which;
use crate::engine::Engine;
use crate::http::request::Request;
use crate::http::Error;

/// Requests dispatched per connection event before yielding.
const REQUESTS_PER_EVENT: u64 = 64;

/// What one drive of a connection did: its reads and what it dispatched.
#[derive(Default)]
struct DriveTally {
    budget: ReadBudget,
    dispatched: u64,
    refused: u64,
}

/// Where a flush left a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flushed {
    /// Closed, or handed over (an upgrade).
    Gone,
    /// Idle: its exchange went back to the spares.
    Asleep,
    /// Still holding its exchange (output waits, or requests are in flight).
    Awake,
}

/// No route label is set (requests that matched no route have none).
const UNLABELLED: u32 = u32::MAX;

impl<S: Service> Engine<S> {
    /// Gives a connection asleep an exchange to read with. During a
    /// drain (a grace for idle connections, `ServerConfig::drain_idle_grace`)
    /// what it reads is answered and its response says close.
    #[inline]
    fn wake_to_read(&self, conn: &mut Conn) {
        conn.wake(&mut self.spares.borrow_mut());
        if self.shutting_down.get() {
            if let Some(ex) = conn.exchange() {
                ex.close_after_queue = true;
            }
        }
    }

    pub(crate) fn on_event(
        self: Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        ev: IoEvent,
    ) -> IoOutcome {
        let output_waiting = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key).filter(|c| c.id == id) else {
                return IoOutcome::Drained;
            };
            if conn.ex.is_none() {
                if !(ev.readable || ev.read_closed || ev.error) {
                    return IoOutcome::Drained; // asleep, and only writable
                }
                // Bytes (or the end) arrived for a connection asleep: it
                // takes an exchange to read them with.
                self.wake_to_read(conn);
            }
            let Some(ex) = conn.exchange() else {
                return IoOutcome::Drained;
            };
            if ev.read_closed || ev.error {
                ex.peer_shut = true;
            }
            // Most events report the socket writable (epoll gives the whole
            // readiness mask); only output that waited for room needs a
            // flush: unsent bytes, or streams waiting for room.
            ev.writable && (ex.output_waiting() || !ex.drain_waiters.is_empty())
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
    pub(crate) fn drive(self: &Rc<Self>, lp: &Loop, key: usize) -> IoOutcome {
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
        // Whether requests get `tracing` spans: asked once a batch, so a
        // program without a subscriber wanting them pays one check of a
        // level per batch, not per request.
        let traced = tracing::level_enabled!(tracing::Level::DEBUG);
        let outcome = loop {
            let step = {
                let mut conns = self.conns.borrow_mut();
                let Some(conn) = conns.get_mut(key) else {
                    return IoOutcome::Drained;
                };
                let id = conn.id;
                let Some(ex) = conn.ex.as_deref_mut() else {
                    return IoOutcome::Drained; // asleep again: nothing to read
                };
                ex.batching = true;
                let step = ex.next_step(&mut conn.stream, &mut ctx, &mut tally.budget);
                (step, id, ex.dispatched_seq, ex.dispatched_target)
            };
            match step {
                (Step::Dispatch(req), id, seq, target) => {
                    tally.dispatched += 1;
                    let route = target.route_index();
                    if route != *labelled {
                        lp.set_label(self.service.label(target));
                        *labelled = route;
                    }
                    let answer = Answer::new(self.clone(), key, id, seq, route, now);
                    // With a subscriber that wants debug spans, each request
                    // has one (`dispatch_traced`).
                    let ok = if traced {
                        self.dispatch_traced(lp, target, req, answer)
                    } else {
                        self.service.dispatch(lp, target, req, answer)
                    };
                    if !ok {
                        self.report_handler_panic(target);
                    }
                    if tally.dispatched >= REQUESTS_PER_EVENT {
                        break IoOutcome::Again;
                    }
                }
                (Step::Refused(refusal), id, ..) => {
                    tally.refused += 1;
                    self.answer_refusal(lp, key, id, *refusal);
                    if self.finish_batch(lp, key) {
                        continue;
                    }
                    return IoOutcome::Drained;
                }
                (Step::Wait, ..) => {
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

    /// Dispatches a request inside its `tracing` span: entered while its
    /// handler runs (the handler's events nest in it), closed with status
    /// and latency when it is answered (`Answer::trace`).
    #[cold]
    #[inline(never)]
    fn dispatch_traced(
        self: &Rc<Self>,
        lp: &Loop,
        target: Target,
        req: Request,
        mut answer: Answer<S>,
    ) -> bool {
        let span = tracing::debug_span!(
            target: "phaseloop",
            "request",
            method = req.method_str(),
            route = self.service.label(target).as_deref().unwrap_or("unmatched"),
            status = tracing::field::Empty,
            latency_us = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        answer.trace(span.clone());
        let _entered = span.entered();
        self.service.dispatch(lp, target, req, answer)
    }

    /// Reports a handler that panicked (it was answered 500), naming its
    /// route.
    #[cold]
    #[inline(never)]
    fn report_handler_panic(&self, target: Target) {
        let label = self.service.label(target);
        let route = label.as_deref().unwrap_or("unmatched");
        phaseloop_core::report!(
            error,
            { route = route },
            "phaseloop: a handler panicked ({route}); answered 500"
        );
    }

    /// Answers a request the connection refused, as one with no route.
    pub(crate) fn answer_refusal(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        refusal: Refusal,
    ) {
        let Refusal { seq, error, req } = refusal;
        self.answer_refused(lp, key, id, seq, UNLABELLED, req, Error::from(error));
    }

    /// Answers request `seq` with `error` (a refusal, a handler timeout)
    /// through the service: its middleware and error renderer, for `req`
    /// (the request or its stand-in), counted under `route`.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)] // one call site each, all facts of the answer
    pub(crate) fn answer_refused(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        route: u32,
        req: Request,
        error: Error,
    ) {
        let answer = Answer::new(self.clone(), key, id, seq, route, Self::now(lp));
        if !self.service.refuse(lp, req, error, answer) {
            phaseloop_core::report!(
                error,
                {},
                "phaseloop: middleware panicked answering an error; answered 500"
            );
        }
    }

    /// Ends a read batch: writes the batch's responses in one go. Returns
    /// true if the connection was paused and may now read again.
    fn finish_batch(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        let mut peer_gone = None;
        if let Some(conn) = self.conns.borrow_mut().get_mut(key) {
            let id = conn.id;
            if let Some(ex) = conn.exchange() {
                ex.batching = false;
                // The batch may have ended right after a dispatch.
                ex.settle();
                // Once per batch, not per request: what is still unanswered
                // now is all in the queue.
                if let Some(limit) = self.cfg.handler_timeout {
                    self.watch_answers(lp, key, id, ex, limit);
                }
                if ex.read_eof {
                    peer_gone = Some(id);
                }
            }
        }
        // The client closed its side: async handlers still at work for it
        // stop (as Go cancels a request's context on EOF).
        if let Some(id) = peer_gone {
            self.wake_cancelled(key, id, None);
        }
        // Asleep (the usual end of a keep-alive exchange): nothing paused.
        if self.flush_to(lp, key) != Flushed::Awake {
            return false;
        }
        let mut conns = self.conns.borrow_mut();
        let Some(ex) = conns.get_mut(key).and_then(Conn::exchange) else {
            return false;
        };
        if ex.may_resume(&self.cfg) {
            ex.paused = false;
            return true;
        }
        false
    }

    /// Writes pending output; handles closing after the last response.
    /// Returns false if the connection is gone.
    #[inline]
    pub(crate) fn flush(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        self.flush_to(lp, key) != Flushed::Gone
    }

    /// [`Engine::flush`], telling whether the connection fell asleep.
    fn flush_to(self: &Rc<Self>, lp: &Loop, key: usize) -> Flushed {
        let now = Self::now(lp);
        let result = {
            let mut guard = self.conns.borrow_mut();
            let conns = &mut *guard;
            let Some(conn) = conns.get_mut(key) else {
                return Flushed::Gone;
            };
            let Some(ex) = conn.ex.as_deref_mut() else {
                return Flushed::Asleep; // nothing to write
            };
            let flushed = ex.flush(&mut conn.stream, now, self.rate_grace_ns);
            if flushed.is_ok() && ex.may_sleep() {
                // Idle: the exchange goes back to the spares, the
                // connection waits in the idle list.
                let (timer, placed) =
                    conn.sleep(&mut self.spares.borrow_mut(), now, self.regroup_ns);
                let first = !placed && conns.rejoin_idle(key, now);
                drop(guard);
                if let Some(t) = timer {
                    lp.clear_timer(t);
                }
                if first {
                    self.arm_waiting(lp, Which::Idle);
                }
                return Flushed::Asleep;
            }
            // A connection switching protocols is never idle (its reading
            // has stopped): looked at only here, off the idle way.
            if flushed.is_ok() && ex.upgrade_ready() {
                drop(guard);
                self.detach(lp, key);
                return Flushed::Gone;
            }
            flushed.map(|()| {
                let done = ex.done_after_flush() && ex.lifecycle == Lifecycle::Open;
                if done {
                    ex.start_linger(&mut conn.stream, now);
                }
                if ex.is_idle() {
                    ex.idle_since = now;
                    ex.release_buffers(&mut self.spares.borrow_mut());
                }
                // Streams waiting for room get it back below half the mark.
                let drained = if !ex.drain_waiters.is_empty()
                    && ex.buffered_output() < self.cfg.write_high_water / 2
                {
                    std::mem::take(&mut ex.drain_waiters)
                } else {
                    Vec::new()
                };
                // Usually the armed timer still covers the deadline: seen
                // here, that costs no second look-up of the connection.
                let timer_ok =
                    !done && drained.is_empty() && ex.deadline_to_arm(&self.cfg).is_none();
                (done, drained, timer_ok)
            })
        };
        match result {
            Err(_) => {
                self.close_conn(lp, key);
                Flushed::Gone
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
                    return Flushed::Gone; // the client had already closed: done
                }
                if !timer_ok {
                    self.update_deadline(lp, key);
                }
                Flushed::Awake
            }
        }
    }

    fn drive_linger(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        let step = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else {
                return false;
            };
            let Some(ex) = conn.ex.as_deref_mut() else {
                return true;
            };
            ex.next_step(
                &mut conn.stream,
                &mut self.ctx(Self::now(lp)),
                &mut ReadBudget::default(),
            )
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
    fn watch_answers(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        ex: &mut Exchange,
        limit: Duration,
    ) {
        for seq in ex.unwatched_answers() {
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
    /// place, which [`Engine::complete`] takes only if its handler
    /// has not answered meanwhile (the one look for the waiting request).
    fn answer_timed_out(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        limit: Duration,
    ) {
        let Some(route) = self
            .with_exchange(key, id, |conn| conn.awaiting(seq))
            .flatten()
        else {
            return; // answered meanwhile, or the client left
        };
        self.stats.borrow_mut().handler_timeouts += 1;
        // Through the middleware like any answer, for a stand-in request
        // whose path is the route's pattern (the request is the handler's).
        let label = self.service.label(Target::Route { index: route });
        let line = format!("{} HTTP/1.1\r\n\r\n", label.as_deref().unwrap_or("- /"));
        let req = Request::stand_in(line.as_bytes(), None);
        let error = Error::unavailable(format!(
            "the handler did not answer within {} ms",
            limit.as_millis()
        ));
        self.answer_refused(lp, key, id, seq, route, req, error);
        // An async handler still at work is told to stop.
        self.wake_cancelled(key, id, Some(seq));
    }

    /// After a handler produced output outside a read batch: write it now,
    /// and let a paused connection read again if that drained it.
    pub(crate) fn after_output(self: &Rc<Self>, lp: &Loop, key: usize) {
        let batching = self.conns.borrow().get(key).is_some_and(Conn::batching);
        if batching || !self.flush(lp, key) {
            return;
        }
        let resume = {
            let mut conns = self.conns.borrow_mut();
            conns
                .get_mut(key)
                .and_then(Conn::exchange)
                .is_some_and(|ex| {
                    let r = ex.may_resume(&self.cfg) || ex.upgrade_declined();
                    if r {
                        ex.paused = false;
                    }
                    r
                })
        };
        if resume && self.drive(lp, key) == IoOutcome::Again {
            // Budget spent: the socket may still hold requests, and no new
            // edge will say so. Come back in the next tick.
            // (The batch's end may have put it to sleep: nothing was
            // buffered, but the socket may hold more.)
            let inner = self.clone();
            lp.defer(move |lp| {
                let mut conns = inner.conns.borrow_mut();
                if conns.contains(key) {
                    if conns[key].ex.is_none() {
                        inner.wake_to_read(&mut conns[key]);
                    }
                    drop(conns);
                    inner.drive(lp, key);
                }
            });
        }
    }
}
