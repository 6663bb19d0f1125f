//! Cancelling a running statement: PostgreSQL's CancelRequest, sent on a
//! fresh socket (the busy connection cannot carry it), with the backend's
//! process id and secret key from its start-up.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use phaseloop_core::{report, IoOutcome, IoToken, Loop};
use postgres_protocol::message::frontend;

use super::socket::{Socket, Target};

/// How long a cancel request may take before it is given up (the query's
/// own deadline then closes its connection).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The request's socket, what is left to write, and its registration,
/// until it is closed.
type Slot = Rc<RefCell<Option<(Socket, BytesMut, IoToken)>>>;

/// Sends a CancelRequest for backend `pid` to `target`, in the poll phase;
/// nothing comes back (the server closes the socket), so failures are
/// only reported.
pub(crate) fn send(lp: &Loop, target: &Target, pid: i32, secret: i32) {
    let mut out = BytesMut::with_capacity(16);
    frontend::cancel_request(pid, secret, &mut out);
    let socket = match Socket::connect(target) {
        Ok(s) => s,
        Err(e) => {
            report!(warn, {}, "pg: cannot send a cancel request: {e}");
            return;
        }
    };
    let cell: Slot = Rc::new(RefCell::new(None));
    let weak = Rc::downgrade(&cell);
    let mut socket = socket;
    let token = lp.register_io(
        &mut socket,
        mio::Interest::WRITABLE | mio::Interest::READABLE,
        move |lp, event| {
            let Some(cell) = weak.upgrade() else {
                return IoOutcome::Drained;
            };
            let finished = {
                let mut slot = cell.borrow_mut();
                match slot.as_mut() {
                    None => return IoOutcome::Drained,
                    Some((socket, out, _)) => step(socket, out, event.error),
                }
            };
            if finished {
                close(lp, &cell);
            }
            IoOutcome::Drained
        },
    );
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            report!(warn, {}, "pg: cannot register a cancel request: {e}");
            return;
        }
    };
    *cell.borrow_mut() = Some((socket, out, token));
    let cell_for_timer = cell.clone();
    let timer = lp.set_timeout(CANCEL_TIMEOUT, move |lp| close(lp, &cell_for_timer));
    lp.unref_timer(timer);
}

/// Writes what is left; true when the request is out or the socket failed.
fn step(socket: &mut Socket, out: &mut BytesMut, error: bool) -> bool {
    if error {
        return true;
    }
    match socket.connected() {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            report!(warn, {}, "pg: a cancel request's connect failed: {e}");
            return true;
        }
    }
    while !out.is_empty() {
        match socket.write(out) {
            Ok(0) => return true,
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                report!(warn, {}, "pg: a cancel request's write failed: {e}");
                return true;
            }
        }
    }
    true
}

fn close(lp: &Loop, cell: &Slot) {
    let taken = cell.borrow_mut().take();
    if let Some((mut socket, _, token)) = taken {
        let _ = lp.deregister_io(token, &mut socket);
    }
}
