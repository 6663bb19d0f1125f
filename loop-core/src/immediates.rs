//! The check phase's queue: `set_immediate` callbacks.
//!
//! A FIFO whose ids are sequence numbers, so `clear_immediate` finds its entry
//! in O(1) by offset from the front. The check phase runs only the entries
//! present when it began: an immediate queued by an immediate waits for the
//! next tick, as in Node.

use std::collections::VecDeque;

use crate::event_loop::Callback;

/// Identifies an immediate for [`Loop::clear_immediate`](crate::Loop::clear_immediate) and
/// [`Loop::unref_immediate`](crate::Loop::unref_immediate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImmediateId(u64);

struct Entry {
    callback: Option<Callback>,
    referenced: bool,
}

pub(crate) struct Immediates {
    queue: VecDeque<Entry>,
    /// Sequence number of `queue[0]`.
    front_seq: u64,
    /// Entries not yet run nor cleared.
    live: usize,
    referenced: usize,
}

impl Immediates {
    pub fn new() -> Self {
        Immediates {
            queue: VecDeque::new(),
            front_seq: 0,
            live: 0,
            referenced: 0,
        }
    }

    pub fn push(&mut self, callback: Callback) -> ImmediateId {
        let id = ImmediateId(self.front_seq + self.queue.len() as u64);
        self.queue.push_back(Entry {
            callback: Some(callback),
            referenced: true,
        });
        self.live += 1;
        self.referenced += 1;
        id
    }

    fn entry_mut(&mut self, id: ImmediateId) -> Option<&mut Entry> {
        let offset = id.0.checked_sub(self.front_seq)?;
        self.queue
            .get_mut(offset as usize)
            .filter(|e| e.callback.is_some())
    }

    pub fn clear(&mut self, id: ImmediateId) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return false;
        };
        entry.callback = None;
        let referenced = entry.referenced;
        self.live -= 1;
        if referenced {
            self.referenced -= 1;
        }
        true
    }

    pub fn set_referenced(&mut self, id: ImmediateId, referenced: bool) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return false;
        };
        if std::mem::replace(&mut entry.referenced, referenced) != referenced {
            crate::event_loop::count_reference(&mut self.referenced, referenced);
        }
        true
    }

    /// True when some immediate is waiting (the poll phase must not block).
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn referenced(&self) -> usize {
        self.referenced
    }

    /// How many entries the check phase that starts now may run.
    pub fn len_at_phase_start(&self) -> usize {
        self.queue.len()
    }

    /// Pops the front entry; `None` inside means it was cleared.
    pub fn pop(&mut self) -> Option<Option<Callback>> {
        let entry = self.queue.pop_front()?;
        self.front_seq += 1;
        if entry.callback.is_some() {
            self.live -= 1;
            if entry.referenced {
                self.referenced -= 1;
            }
        }
        Some(entry.callback)
    }
}
