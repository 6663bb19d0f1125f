//! Deadlines: one lazy timer per busy connection (its exchange's) for
//! whichever timeout applies now (header, body, idle, send, linger), and
//! one per waiting list for the idle ones (`waiting.rs`); 408 or close
//! when a deadline passes.

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::Loop;

use crate::engine::exchange::{kernel_unsent, nanos, DeadlineKind, Reading};
use crate::engine::service::Service;
use crate::engine::waiting::{Which, NIL};
use crate::engine::Engine;

impl<S: Service> Engine<S> {
    /// Arms the connection's single timer for its current deadline. The timer
    /// is lazy: moving a deadline later costs nothing; when the timer fires
    /// early it re-arms for the new time.
    pub(crate) fn update_deadline(self: &Rc<Self>, lp: &Loop, key: usize) {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let id = conn.id;
        let Some(conn) = conn.exchange() else {
            return; // idle: its waiting list keeps its deadline
        };
        let Some(due) = conn.deadline_to_arm(&self.cfg) else {
            return;
        };
        if let Some(t) = conn.timer.take() {
            lp.clear_timer(t);
        }
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
            let stream = conn.stream.socket();
            let Some(ex) = conn.ex.as_deref_mut() else {
                return; // idle since: its waiting list has its deadline
            };
            ex.timer = None;
            if let Some(rate) = self.cfg.min_response_rate.filter(|_| ex.writing) {
                ex.look_at_taken(stream, rate);
            }
            match ex.deadline(&self.cfg) {
                None => return,
                Some((due, _)) if due > now => None,
                Some((_, kind)) => Some(kind),
            }
        };
        let Some(kind) = kind else {
            self.update_deadline(lp, key);
            return;
        };
        self.time_out(lp, key, kind);
    }

    /// Deadline `kind` of connection `key` (which has an exchange) passed.
    fn time_out(self: &Rc<Self>, lp: &Loop, key: usize, kind: DeadlineKind) {
        self.stats.borrow_mut().timeouts += 1;
        match kind {
            DeadlineKind::Header
            | DeadlineKind::Body
            | DeadlineKind::BodyRate
            | DeadlineKind::Request => {
                let message = match kind {
                    DeadlineKind::BodyRate => {
                        self.stats.borrow_mut().body_rate_timeouts += 1;
                        "request body arrived too slowly"
                    }
                    DeadlineKind::Request => {
                        self.stats.borrow_mut().request_timeouts += 1;
                        "request not received in time"
                    }
                    _ => "request not received in time",
                };
                // RFC 9110 §15.5.9: 408, then close.
                let (refusal, id) = {
                    let mut conns = self.conns.borrow_mut();
                    let conn = &mut conns[key];
                    let id = conn.id;
                    let Some(ex) = conn.exchange() else {
                        return;
                    };
                    if matches!(ex.reading, Reading::Body(_)) {
                        ex.queue.pop_back();
                    }
                    let refusal = ex.refuse(crate::http::HttpError::new(408, message));
                    (refusal, id)
                };
                self.answer_refusal(lp, key, id, *refusal);
                self.flush(lp, key);
            }
            DeadlineKind::SendRate | DeadlineKind::Send => {
                if kind == DeadlineKind::SendRate {
                    self.stats.borrow_mut().response_rate_closes += 1;
                }
                // Aborted (RST), not closed: the kernel would otherwise go
                // on holding, and trickling out, what it already took for
                // a client that will not read it.
                if let Some(conn) = self.conns.borrow().get(key) {
                    let _ = socket2::SockRef::from(conn.stream.socket())
                        .set_linger(Some(Duration::ZERO));
                }
                self.close_conn(lp, key)
            }
            DeadlineKind::Idle | DeadlineKind::Linger => self.close_conn(lp, key),
        }
    }

    /// Arms list `which`'s timer for its head's deadline, unless it is
    /// armed or the list is empty. A list with members always has its
    /// timer armed.
    pub(crate) fn arm_waiting(self: &Rc<Self>, lp: &Loop, which: Which) {
        let due = {
            let mut conns = self.conns.borrow_mut();
            let head = conns.list(which).head;
            if conns.list(which).timer.is_some() || head == NIL {
                return;
            }
            conns[head as usize]
                .since
                .saturating_add(self.waiting_timeout(which))
        };
        let weak = Rc::downgrade(self);
        let delay = Duration::from_nanos(due.saturating_sub(Self::now(lp)));
        let timer = lp.set_timeout(delay, move |lp| {
            if let Some(inner) = weak.upgrade() {
                inner.on_waiting_due(lp, which);
            }
        });
        // Idle connections never keep the loop alive by their deadlines.
        lp.unref_timer(timer);
        self.conns.borrow_mut().list(which).timer = Some(timer);
    }

    /// How long a connection may wait in list `which`, nanoseconds.
    fn waiting_timeout(&self, which: Which) -> u64 {
        match which {
            Which::Fresh => nanos(self.cfg.header_timeout.min(self.cfg.request_timeout)),
            Which::Idle => self.keep_alive_ns,
        }
    }

    /// List `which`'s timer fired. From its head: a member that woke
    /// leaves (its exchange's timer has its deadline now); one whose
    /// deadline passed times out (an idle one closes; a fresh one is
    /// answered 408, as any late head); the first still waiting has the
    /// timer re-armed for it. Members behind it wait for its turn: the
    /// list is in the order they joined, and each went idle again at most
    /// [`crate::engine::waiting::regroup_ns`] after it joined, so none is
    /// closed more than that late.
    fn on_waiting_due(self: &Rc<Self>, lp: &Loop, which: Which) {
        let now = Self::now(lp);
        let timeout = self.waiting_timeout(which);
        self.conns.borrow_mut().list(which).timer = None;
        loop {
            let key = {
                let mut conns = self.conns.borrow_mut();
                let head = conns.list(which).head;
                if head == NIL {
                    return;
                }
                let conn = &conns[head as usize];
                if conn.ex.is_some() {
                    conns.unlink(head as usize);
                    continue;
                }
                if conn.since.saturating_add(timeout) > now {
                    break;
                }
                head as usize
            };
            match which {
                Which::Idle => {
                    self.stats.borrow_mut().timeouts += 1;
                    // A client that has not taken what the kernel holds
                    // for it is below any rate: reset, as a slow reader's
                    // deadline does, so the kernel lets go of it too.
                    if self.cfg.min_response_rate.is_some() {
                        let conns = self.conns.borrow();
                        let stream = conns[key].stream.socket();
                        if kernel_unsent(stream) > 0 {
                            self.stats.borrow_mut().response_rate_closes += 1;
                            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
                        }
                    }
                    self.close_conn(lp, key);
                }
                Which::Fresh => {
                    {
                        let mut conns = self.conns.borrow_mut();
                        conns[key].wake(&mut self.spares.borrow_mut());
                        conns.unlink(key);
                    }
                    self.time_out(lp, key, DeadlineKind::Header);
                }
            }
        }
        self.arm_waiting(lp, which);
    }
}
