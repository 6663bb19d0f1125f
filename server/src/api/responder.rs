//! `Responder`: the handler's one way to answer, now or later.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use phaseloop_core::Loop;
use serde::Serialize;

use crate::engine::connection::StreamError;
use crate::engine::ServerInner;
use crate::http::response::{Body, Response};
use crate::http::spares::Spares;

type SendHook = Box<dyn FnOnce(&mut Response)>;

const PANICKED: &str = "Internal Server Error: the handler panicked\n";

/// Answers one request. Use it at once or move it into a callback and use it
/// later; it must be used exactly once. Dropping it unused answers 500.
pub struct Responder {
    /// Both `None` once answered. Two pointers, passed in registers: a
    /// responder is moved several times on every request's way to its
    /// handler, and one of seven words went through memory, each move a
    /// copy whose 16-byte loads of fields just stored one by one stalled
    /// store forwarding (the hottest user instruction of a pipelined load).
    inner: Option<Rc<ServerInner>>,
    ticket: Option<Box<Ticket>>,
}

/// Which request a responder answers, and what it needs to count the
/// answer. Boxes are recycled by the server ([`TicketSpares`]), so a warm
/// loop makes responders without allocating.
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
}

/// A server's spare ticket boxes (boxes, not tickets: a responder holds
/// its ticket by pointer, and a spare must be one already).
pub(crate) type TicketSpares = Spares<Box<Ticket>>;

/// Spare ticket boxes a server keeps (more are freed when given back).
pub(crate) const SPARE_TICKETS: usize = 64;

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Responder");
        if let Some(t) = &self.ticket {
            out.field("conn", &t.conn_id).field("seq", &t.seq);
        }
        out.finish()
    }
}

impl Responder {
    #[inline]
    pub(crate) fn new(
        inner: Rc<ServerInner>,
        key: usize,
        conn_id: u64,
        seq: u64,
        route: u32,
        started_ns: u64,
    ) -> Responder {
        let ticket = match inner.ticket_spares.take() {
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
            }),
        };
        Responder {
            inner: Some(inner),
            ticket: Some(ticket),
        }
    }

    /// Registers `hook` to see (and may change) the response before it is
    /// written: how middleware adds headers or logs the status.
    pub fn on_send(&mut self, hook: impl FnOnce(&mut Response) + 'static) {
        if let Some(ticket) = &mut self.ticket {
            ticket.hooks.push(Box::new(hook));
        }
    }

    /// Sends `response`. If the client has gone, it is dropped quietly.
    pub fn send(mut self, response: Response) {
        self.finish(response);
        // Answered: both parts are taken, so there is nothing to drop, and
        // skipping `Drop` saves every request its check.
        debug_assert!(self.inner.is_none() && self.ticket.is_none());
        std::mem::forget(self);
    }

    /// Sends a `text/plain` response.
    pub fn text(self, status: u16, body: impl Into<Body>) {
        self.send(Response::text(status, body));
    }

    /// Sends an `application/json` response.
    pub fn json<T: Serialize + ?Sized>(self, status: u16, value: &T) {
        self.send(Response::json(status, value));
    }

    /// Sends `{"error": message}`.
    pub fn json_error(self, status: u16, message: &str) {
        self.send(Response::json_error(status, message));
    }

    /// True while the connection that asked is still open.
    pub fn is_connected(&self) -> bool {
        match (&self.inner, &self.ticket) {
            (Some(inner), Some(t)) => inner.conn_alive(t.key as usize, t.conn_id),
            _ => false,
        }
    }

    /// Starts a streamed response: `response`'s status and headers go out
    /// now with `Transfer-Encoding: chunked` (HTTP/1.0 clients get the body
    /// delimited by the connection's end), its body (if any) as the first
    /// piece; the rest follows through the returned [`BodyWriter`].
    pub fn stream(mut self, mut response: Response) -> BodyWriter {
        let mut writer = BodyWriter {
            inner: None,
            key: 0,
            conn_id: 0,
            seq: 0,
        };
        self.answer(&mut response, |lp, inner, t, response| {
            let (key, conn_id, seq) = (t.key as usize, t.conn_id, t.seq);
            let started = inner.stream_start(lp, key, conn_id, seq, response);
            if started {
                writer = BodyWriter {
                    inner: Some(inner.clone()),
                    key,
                    conn_id,
                    seq,
                };
            }
            started
        });
        writer
    }

    /// Answers 500 for a handler that panicked.
    pub(crate) fn answer_panic(mut self) {
        if let Some(inner) = &self.inner {
            inner.note_handler_panic();
        }
        self.finish(Response::text(500, PANICKED));
    }

    fn finish(&mut self, mut response: Response) {
        self.answer(&mut response, |lp, inner, t, response| {
            inner.complete(lp, t.key as usize, t.conn_id, t.seq, response)
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
        deliver: impl FnOnce(&Loop, &Rc<ServerInner>, &Ticket, &Response) -> bool,
    ) {
        let (Some(inner), Some(mut ticket)) = (self.inner.take(), self.ticket.take()) else {
            return;
        };
        if !ticket.hooks.is_empty() {
            run_hooks(&mut ticket.hooks, response, &inner);
        }
        // No loop is running only once the server's loop has returned (a
        // responder cannot leave its thread): its connections are gone, so
        // there is nothing to deliver. A responder kept in thread-local
        // state is dropped so, at thread exit, and must not panic there.
        Loop::with_current(|lp| {
            if deliver(lp, &inner, &ticket, response) {
                inner.record(
                    ticket.route,
                    response.status(),
                    lp.now_ns().saturating_sub(ticket.started_ns),
                );
            }
        });
        inner.ticket_spares.give(ticket);
    }
}

/// Runs the hooks middleware added, in order, leaving the vector empty.
/// A hook that panics turns the response into a 500 (the remaining hooks
/// still see it): the request is answered whatever its middleware does.
#[inline(never)]
fn run_hooks(hooks: &mut Vec<SendHook>, response: &mut Response, inner: &ServerInner) {
    for hook in hooks.drain(..) {
        if catch_unwind(AssertUnwindSafe(|| hook(response))).is_err() {
            inner.note_handler_panic();
            eprintln!("phaseloop: a response hook panicked; answered 500");
            *response = Response::text(500, PANICKED);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.inner.is_none() {
            return;
        }
        let message = if std::thread::panicking() {
            if let Some(inner) = &self.inner {
                inner.note_handler_panic();
            }
            PANICKED
        } else {
            "Internal Server Error: the handler finished without responding\n"
        };
        self.finish(Response::text(500, message));
    }
}

/// The body of a streamed response, written piece by piece from any callback
/// on the loop. [`BodyWriter::finish`] ends it; dropping it unfinished cuts
/// the body short (the client sees it incomplete) and closes the connection.
pub struct BodyWriter {
    inner: Option<Rc<ServerInner>>,
    key: usize,
    conn_id: u64,
    seq: u64,
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("conn", &self.conn_id)
            .field("open", &self.inner.is_some())
            .finish()
    }
}

impl BodyWriter {
    /// Sends `data` as the next piece. `Err(Congested)` means the client
    /// has not taken the earlier pieces yet (nothing was queued: retry from a
    /// later callback); `Err(Closed)` that it is gone.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        let Some(inner) = &self.inner else {
            return Err(StreamError::Closed);
        };
        Loop::with_current(|lp| inner.stream_write(lp, self.key, self.conn_id, self.seq, data))
            .unwrap_or(Err(StreamError::Closed))
    }

    /// True when the next [`BodyWriter::write`] would be refused: check it
    /// before producing the next piece (reading it from disk, say), and wait
    /// with [`BodyWriter::on_drain`] instead.
    pub fn congested(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.stream_congested(self.key, self.conn_id))
    }

    /// Runs `callback` when the client has taken most of what is waiting
    /// for it: the way to resume after [`StreamError::Congested`] without
    /// polling. Dropped unrun if the client goes away.
    pub fn on_drain(&self, callback: impl FnOnce(&Loop) + 'static) {
        if let Some(inner) = &self.inner {
            Loop::with_current(|lp| {
                inner.stream_on_drain(lp, self.key, self.conn_id, Box::new(callback))
            });
        }
    }

    /// Ends the body.
    pub fn finish(mut self) {
        self.end(false);
    }

    fn end(&mut self, abort: bool) {
        if let Some(inner) = self.inner.take() {
            Loop::with_current(|lp| inner.stream_end(lp, self.key, self.conn_id, self.seq, abort));
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.end(true);
    }
}
