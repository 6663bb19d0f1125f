//! Bounded per-thread lists of spare allocations: hot-path objects (request
//! storage, small response bodies) go back to one when dropped and are taken
//! from it when made, so a warm loop serves requests without allocating.
//! Each list lives in a `thread_local!` (a loop is one thread) and is
//! reached with `try_with`, so a drop during thread exit just frees.

use std::cell::RefCell;

/// Byte buffers that grew past this are freed rather than kept in a spare:
/// a rare large request or body must not pin its memory for good.
pub(crate) const SPARE_BUFFER_MAX: usize = 16 * 1024;

/// A bounded stack of spare `T`s.
pub(crate) struct Spares<T> {
    list: RefCell<Vec<T>>,
    max: usize,
}

impl<T> Spares<T> {
    /// An empty list keeping at most `max` spares (the rest are freed).
    pub const fn new(max: usize) -> Spares<T> {
        Spares {
            list: RefCell::new(Vec::new()),
            max,
        }
    }

    /// A spare, if there is one.
    pub fn take(&self) -> Option<T> {
        self.list.try_borrow_mut().ok()?.pop()
    }

    /// Keeps `item` for later, unless the list is full.
    pub fn give(&self, item: T) {
        if let Ok(mut list) = self.list.try_borrow_mut() {
            if list.len() < self.max {
                list.push(item);
            }
        }
    }
}
