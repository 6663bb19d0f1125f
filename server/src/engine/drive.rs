//! Driving a connection: its readiness events, the read batch that parses
//! and dispatches requests, the one write at the batch's end, lingering,
//! handler timeouts, and output produced outside a batch.

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{IoEvent, IoOutcome, Loop};

use crate::engine::answer::Answer;
use crate::engine::connection::{Conn, Lifecycle, ReadBudget, Refusal, Step};
use crate::engine::service::Service;
use crate::engine::service::Target;
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

/// No route label is set (requests that matched no route have none).
const UNLABELLED: u32 = u32::MAX;

impl<S: Service> Engine<S> {
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
                conn.batching = true;
                let step = conn.next_step(&mut ctx, &mut tally.budget);
                (step, conn.id, conn.dispatched_seq, conn.dispatched_target)
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
            conn.batching = false;
            // The batch may have ended right after a dispatch.
            conn.settle();
            // Once per batch, not per request: what is still unanswered
            // now is all in the queue.
            if let Some(limit) = self.cfg.handler_timeout {
                self.watch_answers(lp, key, conn, limit);
            }
            if conn.read_eof {
                peer_gone = Some(conn.id);
            }
        }
        // The client closed its side: async handlers still at work for it
        // stop (as Go cancels a request's context on EOF).
        if let Some(id) = peer_gone {
            self.wake_cancelled(key, id, None);
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
    pub(crate) fn flush(self: &Rc<Self>, lp: &Loop, key: usize) -> bool {
        let now = Self::now(lp);
        let result = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else {
                return false;
            };
            conn.flush(now, self.rate_grace_ns).map(|()| {
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
        let Some(route) = self.with_conn(key, id, |conn| conn.awaiting(seq)).flatten() else {
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
}
