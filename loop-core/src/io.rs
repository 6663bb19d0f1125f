//! The poll phase's I/O sources: mio registrations with a callback each.
//!
//! # Contract
//! mio is edge-triggered: a callback must read (or write) until the source
//! would block, or it will not hear from that source again. To keep one busy
//! connection from starving the others, a callback may stop early, after its
//! fair share of work, and return [`IoOutcome::Again`]: the loop then calls it
//! again in the next tick's poll phase (without blocking in between), after
//! every other ready source has had its turn.

use mio::{event::Event, Token};

use crate::event_loop::Loop;
use crate::handle_slots::{HandleSlots, SlotId};

/// The token reserved for the loop's cross-thread waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// Readiness reported for an I/O source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoEvent {
    /// The source may be read without blocking (or has hit end of stream).
    pub readable: bool,
    /// The source may be written without blocking.
    pub writable: bool,
    /// The peer closed its writing half (read would return end of stream).
    pub read_closed: bool,
    /// The peer closed its reading half (writes would fail).
    pub write_closed: bool,
    /// An error is pending on the source.
    pub error: bool,
}

impl IoEvent {
    fn from_mio(event: &Event) -> Self {
        IoEvent {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
        }
    }

    fn merge(&mut self, other: IoEvent) {
        self.readable |= other.readable;
        self.writable |= other.writable;
        self.read_closed |= other.read_closed;
        self.write_closed |= other.write_closed;
        self.error |= other.error;
    }
}

/// What an I/O callback tells the loop when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOutcome {
    /// The source would block: wait for its next readiness event.
    Drained,
    /// The callback stopped before the source would block (its budget ran
    /// out): call it again next tick with the same readiness.
    Again,
}

/// Identifies a registered I/O source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoToken(Token);

impl IoToken {
    /// The mio token this source is registered with.
    pub fn token(self) -> Token {
        self.0
    }

    fn slot_id(self) -> SlotId {
        SlotId {
            key: (self.0 .0 & 0xFFFF_FFFF) as u32,
            generation: (self.0 .0 >> 32) as u32,
        }
    }
}

/// The callback type of an I/O source.
pub type IoCallback = Box<dyn FnMut(&Loop, IoEvent) -> IoOutcome>;

/// The registry of I/O callbacks, by token.
pub(crate) struct IoSources {
    slots: HandleSlots<IoCallback>,
    /// Sources that asked to be called again next tick.
    again: Vec<(IoToken, IoEvent)>,
    /// Scratch buffer the poll phase copies ready events into.
    ready: Vec<(IoToken, IoEvent)>,
}

impl IoSources {
    pub fn new() -> Self {
        IoSources {
            slots: HandleSlots::new(),
            again: Vec::new(),
            ready: Vec::new(),
        }
    }

    pub fn referenced(&self) -> usize {
        self.slots.referenced()
    }

    pub fn has_again(&self) -> bool {
        !self.again.is_empty()
    }

    pub fn insert(&mut self, callback: IoCallback) -> IoToken {
        let SlotId { key, generation } = self.slots.insert(callback);
        // Generations live in the token's upper 32 bits (usize is 64-bit on
        // every target we build for); wrapping is harmless after 4 billion
        // reuses of one slot.
        IoToken(Token(((generation as usize) << 32) | key as usize))
    }

    pub fn remove(&mut self, token: IoToken) -> bool {
        self.slots.remove(token.slot_id())
    }

    pub fn set_referenced(&mut self, token: IoToken, referenced: bool) -> bool {
        self.slots.set_referenced(token.slot_id(), referenced)
    }

    /// Copies mio's events into the reusable ready list; returns whether the
    /// waker fired.
    pub fn collect(&mut self, events: &mio::Events) -> bool {
        let mut woken = false;
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                woken = true;
            } else {
                self.ready
                    .push((IoToken(event.token()), IoEvent::from_mio(event)));
            }
        }
        woken
    }

    /// Takes the sources to revisit plus the fresh events, revisits first.
    pub fn take_ready(&mut self, out: &mut Vec<(IoToken, IoEvent)>) {
        out.clear();
        if self.again.is_empty() {
            // Nearly every tick: the fresh events change hands whole (each
            // vector keeps its capacity), no event is copied.
            std::mem::swap(&mut self.ready, out);
            return;
        }
        out.append(&mut self.again);
        let revisits = out.len();
        for (token, event) in self.ready.drain(..) {
            // A source both revisited and freshly ready gets one call.
            if let Some(existing) = out[..revisits].iter_mut().find(|(t, _)| *t == token) {
                existing.1.merge(event);
            } else {
                out.push((token, event));
            }
        }
    }

    pub fn take_callback(&mut self, token: IoToken) -> Option<IoCallback> {
        self.slots.take(token.slot_id())
    }

    /// Puts a callback back after it ran, unless its source was deregistered
    /// meanwhile; queues a revisit when asked.
    pub fn put_back(
        &mut self,
        token: IoToken,
        callback: IoCallback,
        outcome: IoOutcome,
        event: IoEvent,
    ) {
        if self.slots.put_back(token.slot_id(), callback) && outcome == IoOutcome::Again {
            self.again.push((token, event));
        }
    }
}
