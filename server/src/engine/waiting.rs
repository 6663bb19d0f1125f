//! Waiting lists: the deadlines of idle connections without a timer each.
//!
//! An idle connection waits for one thing, bytes, under one timeout that is
//! the same for every connection in its state: the header timeout for a
//! connection accepted that has sent nothing, the keep-alive timeout
//! between requests. So, as Node keeps one list per timer duration, each
//! state has one list, linked through the connections themselves (two slab
//! keys each) in the order they joined, and one loop timer armed for its
//! head does for all of them.
//!
//! The lists are kept lazily, so that a busy keep-alive connection, which
//! goes idle after every response, costs no list work per request:
//! - a connection that wakes stays where it is; the sweep drops it when
//!   it reaches the head;
//! - one that goes idle again soon after it joined (within [`regroup_ns`])
//!   keeps its place and only moves its idle time (`since`) on; later, it
//!   joins again at the tail.
//!
//! So each member's deadline is at most `regroup_ns` behind the deadline
//! its place implies, and the sweep, which waits at a head not yet due
//! before looking further, closes none more than that late.
//!
//! The engine arms, fires and sweeps the lists (`Engine::on_waiting_due`);
//! [`Conns`](crate::engine::connection::Conns) links and unlinks.

use phaseloop_core::TimerId;

/// No connection: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// Which list a connection is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Accepted, nothing received yet: the header timeout.
    Fresh,
    /// Between requests: the keep-alive timeout.
    Idle,
}

/// How long after joining the idle list a connection that goes idle again
/// keeps its place (nanoseconds): a sixteenth of the keep-alive timeout,
/// at most a quarter of a second. The longest an idle connection may
/// outlive its keep-alive timeout.
pub(crate) fn regroup_ns(keep_alive_ns: u64) -> u64 {
    (keep_alive_ns / 16).min(250_000_000)
}

/// A connection's place in a waiting list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    pub list: Option<Which>,
    pub prev: u32,
    pub next: u32,
    /// When it joined (loop nanoseconds): the list is in this order.
    pub joined: u64,
}

impl Waiting {
    /// In no list.
    pub const NONE: Waiting = Waiting {
        list: None,
        prev: NIL,
        next: NIL,
        joined: 0,
    };
}

/// One waiting list: its ends and its timer.
pub(crate) struct WaitList {
    pub head: u32,
    pub tail: u32,
    /// Armed for the head's deadline as it was when armed; lazy: a head
    /// that left makes it fire early, and it re-arms for the new head.
    pub timer: Option<TimerId>,
}

impl WaitList {
    pub fn new() -> Self {
        WaitList {
            head: NIL,
            tail: NIL,
            timer: None,
        }
    }
}
