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
}
