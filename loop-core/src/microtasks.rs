//! The two microtask queues: `next_tick` and promise jobs.
//!
//! After every macrotask the loop drains them the way Node does
//! (`processTicksAndRejections`): the whole next-tick queue, then the whole
//! promise-job queue (including jobs queued while it drains), and again from
//! the top while next-ticks were queued by promise jobs. Only when both are
//! empty does the next macrotask run.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::event_loop::{Callback, Loop};
use crate::task::poll_task;

pub(crate) enum PromiseJob {
    Callback(Callback),
    Poll { key: usize, id: u64 },
}

pub(crate) struct Microtasks {
    next_ticks: RefCell<VecDeque<Callback>>,
    promise_jobs: RefCell<VecDeque<PromiseJob>>,
}

impl Microtasks {
    pub fn new() -> Self {
        Microtasks {
            next_ticks: RefCell::new(VecDeque::new()),
            promise_jobs: RefCell::new(VecDeque::new()),
        }
    }

    pub fn push_next_tick(&self, callback: Callback) {
        self.next_ticks.borrow_mut().push_back(callback);
    }

    pub fn push_promise_job(&self, callback: Callback) {
        self.promise_jobs
            .borrow_mut()
            .push_back(PromiseJob::Callback(callback));
    }

    pub fn push_poll(&self, key: usize, id: u64) {
        self.promise_jobs
            .borrow_mut()
            .push_back(PromiseJob::Poll { key, id });
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.next_ticks.borrow().is_empty() && self.promise_jobs.borrow().is_empty()
    }

    pub fn clear(&self) {
        let ticks = std::mem::take(&mut *self.next_ticks.borrow_mut());
        let jobs = std::mem::take(&mut *self.promise_jobs.borrow_mut());
        drop(ticks);
        drop(jobs);
    }
}

/// Drains both queues until they are empty. Called by the loop once it
/// has seen them non-empty (after every macrotask: the check is its).
pub(crate) fn drain(lp: &Loop) {
    let phase = lp.phase();
    let mut watch = lp.guard.drain_watch();
    loop {
        loop {
            let next = lp.microtasks.next_ticks.borrow_mut().pop_front();
            let Some(callback) = next else { break };
            callback(lp);
            lp.guard.on_microtask(&mut watch, phase);
        }
        loop {
            let next = lp.microtasks.promise_jobs.borrow_mut().pop_front();
            match next {
                Some(PromiseJob::Callback(callback)) => callback(lp),
                Some(PromiseJob::Poll { key, id }) => poll_task(lp, key, id),
                None => break,
            }
            lp.guard.on_microtask(&mut watch, phase);
        }
        if lp.microtasks.next_ticks.borrow().is_empty() {
            break;
        }
    }
}
