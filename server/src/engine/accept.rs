//! Accepting: the listener's readiness callback takes connections until the
//! backlog is empty (or a budget is spent), pausing on descriptor exhaustion.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use mio::Interest;
use phaseloop_core::{IoOutcome, Loop};

use crate::engine::connection::Conn;
use crate::engine::limits::open_files_limit;
use crate::engine::service::Service;
use crate::engine::waiting::Which;
use crate::engine::Engine;
#[cfg(feature = "tls")]
use crate::net::tls::TlsStream;
use crate::net::transport::Transport;

/// Connections accepted per listener event before yielding to the others.
const ACCEPTS_PER_EVENT: usize = 128;

impl<S: Service> Engine<S> {
    pub(crate) fn accept(self: Rc<Self>, lp: &Loop) -> IoOutcome {
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
                        phaseloop_core::report!(
                            warn,
                            {
                                error = %e,
                                open_files_limit = open_files_limit(),
                                pause_ms = self.cfg.accept_pause.as_millis() as u64
                            },
                            "phaseloop: out of file descriptors ({e}; open files limit {}): accepting paused for {} ms",
                            open_files_limit(),
                            self.cfg.accept_pause.as_millis()
                        );
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
        let Some(stream) = self.transport(stream) else {
            return;
        };
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
                conn.stream.socket_mut(),
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
                // It waits for its first bytes under the header timeout.
                let first = self
                    .conns
                    .borrow_mut()
                    .link(key, Which::Fresh, Self::now(lp));
                if first {
                    self.arm_waiting(lp, Which::Fresh);
                }
            }
            Err(_) => {
                self.conns.borrow_mut().remove(key);
            }
        }
    }
}

impl<S: Service> Engine<S> {
    /// The stream a new connection speaks through: TLS over the socket
    /// when the server has a certificate.
    #[inline(always)]
    fn transport(&self, stream: mio::net::TcpStream) -> Option<Transport> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.cfg.tls {
            return match tls.session() {
                Ok(session) => Some(Transport::Tls(Box::new(TlsStream::new(
                    stream,
                    session,
                    self.tls_counters.clone(),
                )))),
                Err(_) => {
                    self.tls_counters
                        .handshake_errors
                        .set(self.tls_counters.handshake_errors.get() + 1);
                    None
                }
            };
        }
        Some(Transport::Plain(stream))
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
