//! Closing: a connection's end (its close-phase callback), and the graceful
//! shutdown of the whole server.

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::Loop;

use crate::engine::exchange::Reading;
use crate::engine::service::Service;
use crate::engine::Engine;

/// What runs once a shutdown has closed every connection.
pub(crate) type ShutdownCallback = Box<dyn FnOnce(&Loop)>;

impl<S: Service> Engine<S> {
    pub(crate) fn close_conn(self: &Rc<Self>, lp: &Loop, key: usize) {
        let Some(mut conn) = self.conns.borrow_mut().remove(key) else {
            return;
        };
        if let Some(token) = conn.token.take() {
            let _ = lp.deregister_io(token, conn.stream.socket_mut());
        }
        if let Some(ex) = conn.exchange() {
            if let Some(t) = ex.timer.take() {
                lp.clear_timer(t);
            }
            ex.inbuf.clear();
            ex.out_pos = 0;
            ex.outbuf.clear();
            ex.release_buffers(&mut self.spares.borrow_mut());
        }
        let id = conn.id;
        drop(conn); // closes the socket
        self.stats.borrow_mut().open -= 1;
        self.wake_cancelled(key, id, None);
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

    pub(crate) fn begin_shutdown(
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
        let grace = self.cfg.drain_idle_grace;
        let keys: Vec<usize> = self.conns.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.mark_draining(key, !grace.is_zero()) && grace.is_zero() {
                self.close_conn(lp, key);
            }
        }
        if !grace.is_zero() {
            // Idle connections get the grace: requests on them are still
            // answered (with close); those idle when it ends are closed.
            let inner = self.clone();
            let timer = lp.set_timeout(grace, move |lp| {
                let keys: Vec<usize> = inner.conns.borrow().iter().map(|(k, _)| k).collect();
                for key in keys {
                    if inner.mark_draining(key, false) {
                        inner.close_conn(lp, key);
                    }
                }
            });
            lp.unref_timer(timer);
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

    /// Marks connection `key` to close after what it has in flight (its
    /// last response says close), and unless `keep_reading` to take no
    /// new request; true if it is idle now (nothing in flight, nothing
    /// unsent, no body arriving).
    fn mark_draining(&self, key: usize, keep_reading: bool) -> bool {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key) else {
            return false;
        };
        match conn.exchange() {
            None => true,
            Some(ex) => {
                // In-flight requests finish; their last response says close.
                ex.close_after_queue = true;
                let body = matches!(ex.reading, Reading::Body(_));
                if !keep_reading && !body {
                    ex.reading = Reading::Stopped;
                }
                !ex.in_flight() && ex.unsent() == 0 && !body
            }
        }
    }

    pub(crate) fn finish_shutdown(&self, lp: &Loop) {
        let callbacks = std::mem::take(&mut *self.on_shutdown.borrow_mut());
        for cb in callbacks {
            cb(lp);
        }
    }
}
