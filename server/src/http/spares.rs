//! Bounded per-thread lists of spare allocations: hot-path objects (request
//! storage, small response bodies, responders' tickets) go back to one when
//! dropped and are taken from it when made, so a warm loop serves requests
//! without allocating. A list lives in a `thread_local!` (a loop is one
//! thread), reached with `try_with` so a drop during thread exit just
//! frees, or in the server that owns what it keeps (the tickets).

use std::cell::{Cell, RefCell};

/// Byte buffers that grew past this are freed rather than kept in a spare:
/// a rare large request or body must not pin its memory for good.
pub(crate) const SPARE_BUFFER_MAX: usize = 16 * 1024;

/// A bounded stack of spare `T`s.
pub(crate) struct Spares<T> {
    /// The last one given back: on a warm loop a request's storage is
    /// given back before the next request takes one, so this one place
    /// serves nearly every take without touching the list.
    last: Cell<Option<T>>,
    list: RefCell<Vec<T>>,
    max: usize,
}

impl<T> Spares<T> {
    /// An empty list keeping at most `max` spares (the rest are freed).
    pub const fn new(max: usize) -> Spares<T> {
        Spares {
            last: Cell::new(None),
            list: RefCell::new(Vec::new()),
            max,
        }
    }

    /// A spare, if there is one.
    pub fn take(&self) -> Option<T> {
        match self.last.take() {
            Some(item) => Some(item),
            None => self.list.try_borrow_mut().ok()?.pop(),
        }
    }

    /// Keeps `item` for later, unless the list is full. The common case
    /// (the one-item slot was empty) inline, the list out of line: on
    /// every answer's way, its call cost more than its work (measured: 11
    /// instructions a request when the answer path grew and LLVM stopped
    /// inlining it whole).
    #[inline(always)]
    pub fn give(&self, item: T) {
        let Some(older) = self.last.replace(Some(item)) else {
            return;
        };
        self.give_to_list(older);
    }

    #[inline(never)]
    fn give_to_list(&self, older: T) {
        if let Ok(mut list) = self.list.try_borrow_mut() {
            // `max` in all, the one in `last` included.
            if list.len() + 1 < self.max {
                list.push(older);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_max_and_hands_back_the_last_given_first() {
        let spares = Spares::new(3);
        assert_eq!(spares.take(), None);
        for i in 0..5 {
            spares.give(i);
        }
        // 4 in hand, then the list: 0 and 1 (2 and 3 were over the bound).
        assert_eq!(spares.take(), Some(4));
        assert_eq!(spares.take(), Some(1));
        assert_eq!(spares.take(), Some(0));
        assert_eq!(spares.take(), None);
        // Given and taken in turn, as on a warm loop.
        spares.give(7);
        assert_eq!(spares.take(), Some(7));
        assert_eq!(spares.take(), None);
    }
}
