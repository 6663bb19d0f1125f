//! Helpers shared by loop-core's integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::Loop;

/// An ordered record of what ran, shared by callbacks on one loop.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.borrow().iter().any(|x| x == s)
    }
}

/// A loop with the delay monitor off, so that nothing but the test's own
/// work shapes the ticks, and guard warnings silenced.
pub fn quiet_loop() -> Loop {
    Loop::builder()
        .delay_resolution(None)
        .block_warnings(false)
        .build()
        .expect("creating a loop")
}

pub const MS: Duration = Duration::from_millis(1);

/// How much earlier than its delay a timer may run, counted from a fresh
/// clock read when it was set: Node's timers count in whole milliseconds at
/// both ends (the set moment and the tick's loop time are truncated), so a
/// timer runs after its delay less up to one millisecond.
pub const CLOCK_SLACK: Duration = Duration::from_millis(1);
