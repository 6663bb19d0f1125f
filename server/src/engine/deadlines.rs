//! Deadlines: one lazy timer per connection for whichever timeout applies
//! now (header, body, idle, send, linger); 408 or close when it passes.

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::Loop;

use crate::engine::connection::DeadlineKind;
use crate::engine::service::Service;
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
            if let Some(rate) = self.cfg.min_response_rate.filter(|_| conn.writing) {
                conn.look_at_taken(rate);
            }
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
                    if matches!(conn.reading, crate::engine::connection::Reading::Body(_)) {
                        conn.queue.pop_back();
                    }
                    let refusal = conn.refuse(crate::http::HttpError::new(408, message));
                    (refusal, conn.id)
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
                    let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
                }
                self.close_conn(lp, key)
            }
            DeadlineKind::Idle | DeadlineKind::Linger => self.close_conn(lp, key),
        }
    }
}
