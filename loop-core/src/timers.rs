//! The timers phase: `set_timeout` / `set_interval` on a min-heap.
//!
//! The heap is keyed by (due time, insertion sequence), so timers due at the
//! same instant fire in the order they were created, as in libuv. Cancelling is
//! O(1): the slot is freed and its heap entry becomes stale; stale entries are
//! skipped when they reach the top and swept out in one pass whenever they
//! outnumber the live ones, so a server that re-arms an idle timer per request
//! never grows the heap without bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::event_loop::Loop;

/// The shortest delay a timer can have: Node treats `setTimeout(f, 0)` as 1 ms,
/// which is what makes a 0 ms timer and an immediate scheduled from an I/O
/// callback order deterministically (the immediate always wins).
pub const MIN_TIMER_DELAY: Duration = Duration::from_millis(1);

/// Identifies a timer for [`Loop::clear_timer`], [`Loop::refresh_timer`] and
/// [`Loop::unref_timer`]. A stale id (timer already fired or cleared) is
/// recognised by its generation and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    generation: u32,
}

pub(crate) enum TimerCallback {
    Once(Box<dyn FnOnce(&Loop)>),
    Repeat(Box<dyn FnMut(&Loop)>),
}

struct Slot {
    generation: u32,
    /// `None` while free, or while the callback is running.
    callback: Option<TimerCallback>,
    /// Sequence number of this timer's live heap entry; 0 when it has none.
    seq: u64,
    delay_ns: u64,
    referenced: bool,
    in_use: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due_ns: u64,
    seq: u64,
    key: u32,
}

/// What the timers phase pops: a callback whose time has come.
pub(crate) struct DueTimer {
    pub id: TimerId,
    pub callback: TimerCallback,
}

/// The timer min-heap plus the slots that own the callbacks.
const MS_NS: u64 = 1_000_000;

/// The loop time timers compare against: `now_ns` in whole milliseconds,
/// as libuv's `uv_now`.
pub(crate) fn timer_clock(now_ns: u64) -> u64 {
    now_ns - now_ns % MS_NS
}

/// When a timer of `delay_ns` set at `now_ns` is due, as Node computes it:
/// from the set moment in whole milliseconds (`getLibuvNow()`, which brings
/// the loop time up to date first) plus the delay, and due once the
/// tick's millisecond loop time reaches it. So it runs no earlier than the
/// delay less one millisecond after it was set (a 3 ms timer after 2.75 ms
/// measured in Node 20 here), and two timers set in the same millisecond
/// keep their order whatever their sub-millisecond moments.
pub(crate) fn due_after(now_ns: u64, delay_ns: u64) -> u64 {
    timer_clock(now_ns)
        .saturating_add(delay_ns)
        .div_ceil(MS_NS)
        .saturating_mul(MS_NS)
}

pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    next_seq: u64,
    live: usize,
    referenced: usize,
    stale: usize,
}

/// Stale entries tolerated before a sweep is considered at all.
const STALE_SWEEP_FLOOR: usize = 1024;

impl TimerHeap {
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 1,
            live: 0,
            referenced: 0,
            stale: 0,
        }
    }

    /// Number of timers that keep the loop alive.
    pub fn referenced(&self) -> usize {
        self.referenced
    }

    /// Number of timers scheduled (referenced or not).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Stores a timer set at `now_ns` (a fresh clock reading: see
    /// [`due_after`]).
    pub fn insert(&mut self, now_ns: u64, delay: Duration, callback: TimerCallback) -> TimerId {
        let delay_ns = delay
            .max(MIN_TIMER_DELAY)
            .as_nanos()
            .min(u64::MAX as u128 / 2) as u64;
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    callback: None,
                    seq: 0,
                    delay_ns: 0,
                    referenced: false,
                    in_use: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[key as usize];
        slot.callback = Some(callback);
        slot.delay_ns = delay_ns;
        slot.referenced = true;
        slot.in_use = true;
        let generation = slot.generation;
        self.live += 1;
        self.referenced += 1;
        self.push_entry(key, due_after(now_ns, delay_ns));
        TimerId { key, generation }
    }

    fn push_entry(&mut self, key: u32, due_ns: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots[key as usize].seq = seq;
        self.heap.push(Reverse(Entry { due_ns, seq, key }));
    }

    fn slot_of(&self, id: TimerId) -> Option<&Slot> {
        self.slots
            .get(id.key as usize)
            .filter(|s| s.in_use && s.generation == id.generation)
    }

    fn slot_of_mut(&mut self, id: TimerId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.key as usize)
            .filter(|s| s.in_use && s.generation == id.generation)
    }

    /// Cancels a timer. Returns false if it had already fired or been cleared.
    pub fn clear(&mut self, id: TimerId) -> bool {
        let Some(slot) = self.slot_of_mut(id) else {
            return false;
        };
        let had_entry = slot.seq != 0;
        let referenced = slot.referenced;
        self.release(id.key, referenced);
        if had_entry {
            self.stale += 1;
            self.maybe_sweep();
        }
        true
    }

    fn release(&mut self, key: u32, referenced: bool) {
        let slot = &mut self.slots[key as usize];
        slot.callback = None;
        slot.in_use = false;
        slot.seq = 0;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key);
        self.live -= 1;
        if referenced {
            self.referenced -= 1;
        }
    }

    /// Re-arms a timer with its original delay counted from `now_ns`
    /// (Node's `timeout.refresh()`): the cheap way to push back an idle timeout.
    pub fn refresh(&mut self, id: TimerId, now_ns: u64) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        let due = due_after(now_ns, slot.delay_ns);
        if slot.seq != 0 {
            self.stale += 1;
        }
        self.push_entry(id.key, due);
        self.maybe_sweep();
        true
    }

    pub fn set_referenced(&mut self, id: TimerId, referenced: bool) -> bool {
        let Some(slot) = self.slot_of_mut(id) else {
            return false;
        };
        if std::mem::replace(&mut slot.referenced, referenced) != referenced {
            crate::event_loop::count_reference(&mut self.referenced, referenced);
        }
        true
    }

    fn is_current(&self, entry: &Entry) -> bool {
        let slot = &self.slots[entry.key as usize];
        slot.in_use && slot.seq == entry.seq
    }

    fn maybe_sweep(&mut self) {
        if self.stale > STALE_SWEEP_FLOOR && self.stale > self.heap.len() / 2 {
            let slots = &self.slots;
            self.heap.retain(|Reverse(e)| {
                let s = &slots[e.key as usize];
                s.in_use && s.seq == e.seq
            });
            self.stale = 0;
        }
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_current(top) {
                return;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
    }

    /// Due time of the earliest live timer, if any.
    pub fn next_due(&mut self) -> Option<u64> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(e)| e.due_ns)
    }

    /// Pops the earliest timer if it is due at `now_ns`. Its callback is taken
    /// out of the slot; the caller runs it and then calls [`Self::finish`].
    pub fn pop_due(&mut self, now_ns: u64) -> Option<DueTimer> {
        self.drop_stale_top();
        let due = matches!(self.heap.peek(), Some(Reverse(e)) if e.due_ns <= now_ns);
        if !due {
            return None;
        }
        let Reverse(entry) = self.heap.pop()?;
        let slot = &mut self.slots[entry.key as usize];
        slot.seq = 0;
        let id = TimerId {
            key: entry.key,
            generation: slot.generation,
        };
        let callback = slot.callback.take()?;
        Some(DueTimer { id, callback })
    }

    /// Called after a popped timer's callback ran. A one-shot timer is freed;
    /// an interval goes back on the heap unless it was cleared (or re-armed)
    /// from inside its own callback.
    pub fn finish(&mut self, id: TimerId, callback: Option<TimerCallback>, now_ns: u64) {
        let Some(slot) = self.slot_of(id) else {
            return; // cleared from inside its own callback
        };
        let referenced = slot.referenced;
        let rearmed = slot.seq != 0;
        match callback {
            Some(cb @ TimerCallback::Repeat(_)) => {
                let delay = slot.delay_ns;
                self.slots[id.key as usize].callback = Some(cb);
                if !rearmed {
                    self.push_entry(id.key, due_after(now_ns, delay));
                }
            }
            Some(cb @ TimerCallback::Once(_)) if rearmed => {
                // Unreachable in practice (a once callback is consumed), kept
                // so a refreshed one-shot is never lost.
                self.slots[id.key as usize].callback = Some(cb);
            }
            _ if rearmed => {
                // A one-shot timer refreshed from its own callback has nothing
                // left to run: free it.
                self.stale += 1;
                self.release(id.key, referenced);
            }
            _ => self.release(id.key, referenced),
        }
    }
}
