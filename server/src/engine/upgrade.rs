//! Switching protocols: a connection whose request asked to upgrade and
//! whose handler accepted leaves the engine once the 101 is written, with
//! its stream and the bytes that followed the request, for the new
//! protocol's code (`ws/`).

use std::net::SocketAddr;
use std::rc::Rc;

use phaseloop_core::Loop;

use crate::engine::read_buffer::ReadBuffer;
use crate::engine::service::Service;
use crate::engine::Engine;
use crate::http::response::Response;
use crate::net::transport::Transport;

/// A connection handed over after its 101: its stream (deregistered from
/// the loop: the new owner registers it), its read buffer as it is (what
/// the client sent after the upgrade request, not copied), and its peer.
pub(crate) struct Upgraded {
    pub stream: Transport,
    pub inbuf: ReadBuffer,
    pub peer: Option<SocketAddr>,
}

/// What takes an upgraded connection.
pub(crate) type UpgradeHook = Box<dyn FnOnce(&Loop, Upgraded)>;

impl<S: Service> Engine<S> {
    /// Request `seq`'s handler switches protocols: `response` (a 101) is
    /// queued in order, `hook` gets the connection once it is written.
    /// False if the request did not ask (no `Connection: upgrade`) or no
    /// longer waits.
    pub(crate) fn upgrade_start(
        self: &Rc<Self>,
        lp: &Loop,
        key: usize,
        id: u64,
        seq: u64,
        response: &Response,
        hook: UpgradeHook,
    ) -> bool {
        let accepted = self
            .with_exchange(key, id, |ex| {
                ex.accept_upgrade(seq, response, &self.date.borrow(), &self.spares, hook)
            })
            .unwrap_or(false);
        if accepted {
            self.after_output(lp, key);
        }
        accepted
    }

    /// Hands connection `key` over to its upgrade hook: out of the slab and
    /// the loop, its buffers back to the spares; counted as upgraded, not
    /// closed.
    pub(crate) fn detach(self: &Rc<Self>, lp: &Loop, key: usize) {
        let Some(mut conn) = self.conns.borrow_mut().remove(key) else {
            return;
        };
        if let Some(token) = conn.token.take() {
            let _ = lp.deregister_io(token, conn.stream.socket_mut());
        }
        let mut inbuf = ReadBuffer::default();
        let mut hook = None;
        if let Some(ex) = conn.exchange() {
            if let Some(t) = ex.timer.take() {
                lp.clear_timer(t);
            }
            // The buffer goes with the connection (an exchange without one
            // takes another from the spares when it next reads).
            inbuf = std::mem::take(&mut ex.inbuf);
            if let crate::engine::exchange::Upgrade::Accepted(h) = std::mem::take(&mut ex.upgrade) {
                hook = Some(h);
            }
            ex.release_buffers(&mut self.spares.borrow_mut());
        }
        {
            let mut stats = self.stats.borrow_mut();
            stats.open -= 1;
            stats.upgraded += 1;
        }
        self.wake_cancelled(key, conn.id, None);
        if self.shutting_down.get() && self.conns.borrow().is_empty() {
            let inner = self.clone();
            lp.next_tick(move |lp| inner.finish_shutdown(lp));
        }
        if let Some(hook) = hook {
            hook(
                lp,
                Upgraded {
                    stream: conn.stream,
                    inbuf,
                    peer: conn.peer,
                },
            );
        }
    }
}
