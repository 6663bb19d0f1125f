//! A client connection as the engine keeps it: what it needs to wake up
//! (its socket, its id, its place in a waiting list) and, only while it
//! has work, its [`Exchange`] (buffers, parsing state, in-flight
//! responses, its deadline timer).
//!
//! An idle connection gives its exchange back to the loop's spares and
//! waits in a [`WaitList`]: no buffer, no timer of its own. This is how an
//! idle connection costs about what nginx's does (see `docs/ARCHITECTURE.md`,
//! "A connection's memory").

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use phaseloop_core::{IoToken, TimerId};
use slab::Slab;

use crate::engine::exchange::Exchange;
use crate::engine::spares::Spares;
use crate::engine::waiting::{WaitList, Waiting, Which, NIL};
use crate::net::transport::Transport;

/// One client connection.
pub(crate) struct Conn {
    pub id: u64,
    pub stream: Transport,
    pub token: Option<IoToken>,
    pub peer: Option<SocketAddr>,
    /// The next request's sequence number while the connection has no
    /// exchange (the exchange has it meanwhile).
    pub next_seq: u64,
    /// When it was accepted or went idle (loop nanoseconds): its waiting
    /// list's deadline counts from here.
    pub since: u64,
    /// Its place in a waiting list, while it has no exchange.
    pub waiting: Waiting,
    /// Its work in progress: `None` while it is idle.
    pub ex: Option<Box<Exchange>>,
}

impl Conn {
    /// A connection just accepted: no exchange until bytes arrive.
    pub fn new(id: u64, stream: Transport, peer: Option<SocketAddr>, now: u64) -> Conn {
        Conn {
            id,
            stream,
            token: None,
            peer,
            next_seq: 0,
            since: now,
            waiting: Waiting::NONE,
            ex: None,
        }
    }

    /// Takes an exchange from `spares` (it has none: it was asleep). It
    /// stays in its waiting list (lazily: see `waiting.rs`).
    #[inline(always)]
    pub fn wake(&mut self, spares: &mut Spares) {
        let fresh = self.waiting.list == Some(Which::Fresh);
        let mut ex = spares.take_exchange();
        ex.wake(self.peer, self.next_seq, fresh, self.since);
        self.ex = Some(ex);
    }

    /// Gives its exchange back to `spares` (it must be
    /// [`Exchange::may_sleep`]): it is idle from `now`. Returns the
    /// exchange's timer, for the caller to clear, and whether it kept its
    /// place in the idle list (having joined it within `regroup_ns`); if
    /// not, it must join it again.
    #[inline(always)]
    pub fn sleep(
        &mut self,
        spares: &mut Spares,
        now: u64,
        regroup_ns: u64,
    ) -> (Option<TimerId>, bool) {
        let Some(mut ex) = self.ex.take() else {
            return (None, true);
        };
        let (next_seq, timer) = ex.sleep(spares);
        self.next_seq = next_seq;
        spares.give_exchange(ex);
        self.since = now;
        let placed = self.waiting.list == Some(Which::Idle)
            && now.saturating_sub(self.waiting.joined) < regroup_ns;
        (timer, placed)
    }

    /// Its exchange, if it has work.
    #[inline(always)]
    pub fn exchange(&mut self) -> Option<&mut Exchange> {
        self.ex.as_deref_mut()
    }

    /// Whether it is idle: no exchange, or one with nothing in it.
    pub fn is_idle(&self) -> bool {
        self.ex.as_deref().is_none_or(Exchange::is_idle)
    }

    /// Output not yet written to the socket (none while idle).
    pub fn unsent(&self) -> usize {
        self.ex.as_deref().map_or(0, Exchange::unsent)
    }

    /// Bytes of buffers it holds (none while idle).
    pub fn buffered_bytes(&self) -> usize {
        self.ex.as_deref().map_or(0, Exchange::buffered_bytes)
    }

    /// A read batch is running on it.
    pub fn batching(&self) -> bool {
        self.ex.as_deref().is_some_and(|ex| ex.batching)
    }
}

/// The connections of one server on one loop, by slab key, with the
/// waiting lists of those that are idle.
pub(crate) struct Conns {
    slab: Slab<Conn>,
    /// Accepted, no byte yet: under the header timeout from the accept.
    pub fresh: WaitList,
    /// Between requests: under the keep-alive timeout.
    pub idle: WaitList,
}

impl Deref for Conns {
    type Target = Slab<Conn>;
    fn deref(&self) -> &Slab<Conn> {
        &self.slab
    }
}

impl DerefMut for Conns {
    fn deref_mut(&mut self) -> &mut Slab<Conn> {
        &mut self.slab
    }
}

impl Conns {
    pub fn new() -> Self {
        Conns {
            slab: Slab::new(),
            fresh: WaitList::new(),
            idle: WaitList::new(),
        }
    }

    pub fn list(&mut self, which: Which) -> &mut WaitList {
        match which {
            Which::Fresh => &mut self.fresh,
            Which::Idle => &mut self.idle,
        }
    }

    /// Appends connection `key` to list `which` at `now`, waiting since
    /// then. Returns whether the list was empty (its timer is then to arm).
    pub fn link(&mut self, key: usize, which: Which, now: u64) -> bool {
        let k = key as u32;
        let tail = self.list(which).tail;
        {
            let conn = &mut self.slab[key];
            conn.since = now;
            conn.waiting = Waiting {
                list: Some(which),
                prev: tail,
                next: NIL,
                joined: now,
            };
        }
        if tail == NIL {
            self.list(which).head = k;
        } else {
            self.slab[tail as usize].waiting.next = k;
        }
        self.list(which).tail = k;
        tail == NIL
    }

    /// Takes connection `key` out of its waiting list, if it is in one;
    /// returns which it was.
    pub fn unlink(&mut self, key: usize) -> Option<Which> {
        let Waiting {
            list, prev, next, ..
        } = std::mem::replace(&mut self.slab[key].waiting, Waiting::NONE);
        let which = list?;
        if prev == NIL {
            self.list(which).head = next;
        } else {
            self.slab[prev as usize].waiting.next = next;
        }
        if next == NIL {
            self.list(which).tail = prev;
        } else {
            self.slab[next as usize].waiting.prev = prev;
        }
        Some(which)
    }

    /// [`Conn::sleep`]'s rarer way: connection `key` leaves its list for
    /// the idle one's tail, joining at `now`. Returns whether the idle
    /// list was empty (its timer is then to arm).
    #[inline(never)]
    pub fn rejoin_idle(&mut self, key: usize, now: u64) -> bool {
        self.unlink(key);
        self.link(key, Which::Idle, now)
    }

    /// Removes connection `key` (out of its waiting list first).
    pub fn remove(&mut self, key: usize) -> Option<Conn> {
        if !self.slab.contains(key) {
            return None;
        }
        self.unlink(key);
        Some(self.slab.remove(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget of `docs/ARCHITECTURE.md` ("A connection's memory"): an
    /// idle connection is its `Conn` in the slab, its loop registration
    /// (24 bytes and a 32-byte callback), and nothing else. Whatever is
    /// added here is paid by every idle connection: it belongs in the
    /// exchange unless a sleeping connection needs it.
    #[test]
    fn an_idle_connection_fits_its_budget() {
        assert!(
            std::mem::size_of::<Conn>() <= 120,
            "{}",
            std::mem::size_of::<Conn>()
        );
        assert!(std::mem::size_of::<Waiting>() <= 24);
    }
}
