//! The WebSockets open on this thread's loop: the server-wide counters,
//! and the list a shutdown closes (1001, going away).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use phaseloop_core::Loop;

use crate::ws::socket::WebSocket;
use crate::ws::WsStats;

thread_local! {
    static OPEN: RefCell<HashMap<u64, WebSocket>> = RefCell::new(HashMap::new());
    static STATS: Cell<WsStats> = const { Cell::new(WsStats::ZERO) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

pub(crate) fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

pub(crate) fn count(f: impl FnOnce(&mut WsStats)) {
    STATS.with(|s| {
        let mut stats = s.get();
        f(&mut stats);
        s.set(stats);
    });
}

pub(crate) fn opened(ws: &WebSocket) {
    OPEN.with(|o| o.borrow_mut().insert(ws.id(), ws.clone()));
    count(|s| s.opened += 1);
}

pub(crate) fn closed(ws: &WebSocket) {
    // Dropped outside the borrow: its drop may run user code's drops.
    let gone = OPEN.with(|o| o.borrow_mut().remove(&ws.id()));
    if gone.is_some() {
        count(|s| s.closed += 1);
    }
    drop(gone);
}

/// This thread's figures.
pub(crate) fn stats() -> WsStats {
    let mut s = STATS.with(Cell::get);
    s.open = OPEN.with(|o| o.borrow().len() as u64);
    s
}

/// Closes every WebSocket of this thread with 1001 (each closes when its
/// client answers, or after its close timeout).
pub(crate) fn going_away(lp: &Loop) {
    let all: Vec<WebSocket> = OPEN.with(|o| o.borrow().values().cloned().collect());
    for ws in all {
        ws.going_away(lp);
    }
}
