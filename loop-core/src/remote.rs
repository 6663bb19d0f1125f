//! The loop's door to other threads: a bounded inbox plus one `mio::Waker`.
//!
//! Thread-pool completions, cross-thread task wakes, worker messages and
//! [`LoopHandle::post`]ed callbacks all land in one inbox that the poll phase
//! drains in a batch. Senders wake the loop only when it is not already
//! notified, so a burst of completions costs one `eventfd` write, not one each.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::event_loop::Loop;
use crate::pool::PoolError;

/// The default bound on callbacks posted from other threads and not yet run.
pub const DEFAULT_POST_CAPACITY: usize = 65_536;

pub(crate) type JobResult = Result<Box<dyn Any + Send>, PoolError>;

pub(crate) enum Inbound {
    Post(Box<dyn FnOnce(&Loop) + Send>),
    JobDone { key: usize, result: JobResult },
    Wake { key: usize, id: u64 },
}

pub(crate) struct Remote {
    waker: mio::Waker,
    notified: AtomicBool,
    inbox: Mutex<Vec<Inbound>>,
    posts: AtomicUsize,
    post_capacity: usize,
    stop: AtomicBool,
    closed: AtomicBool,
}

/// Why [`LoopHandle::post`] refused a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// The loop's inbox holds its capacity of unrun posts: back off.
    Full,
    /// The loop has been dropped.
    Closed,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PostError::Full => "the loop's inbox is full",
            PostError::Closed => "the loop is gone",
        })
    }
}

impl std::error::Error for PostError {}

impl Remote {
    pub fn new(waker: mio::Waker, post_capacity: usize) -> Self {
        Remote {
            waker,
            notified: AtomicBool::new(false),
            inbox: Mutex::new(Vec::new()),
            posts: AtomicUsize::new(0),
            post_capacity,
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues an item and wakes the loop if nobody has yet.
    pub fn send(&self, item: Inbound) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
        self.notify();
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // A failed eventfd write leaves nothing to do: the loop is gone.
            let _ = self.waker.wake();
        }
    }

    pub fn post(&self, callback: Box<dyn FnOnce(&Loop) + Send>) -> Result<(), PostError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PostError::Closed);
        }
        if self.posts.fetch_add(1, Ordering::AcqRel) >= self.post_capacity {
            self.posts.fetch_sub(1, Ordering::AcqRel);
            return Err(PostError::Full);
        }
        self.send(Inbound::Post(callback));
        Ok(())
    }

    /// Posts past the capacity: for the few messages that must arrive (a
    /// worker's exit), each bounded by its sender's own lifetime.
    pub fn post_unbounded(&self, callback: Box<dyn FnOnce(&Loop) + Send>) {
        self.posts.fetch_add(1, Ordering::AcqRel);
        self.send(Inbound::Post(callback));
    }

    /// True when items may be waiting (cheap check before locking).
    pub fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Moves everything queued into `batch`. The flag is cleared first, so a
    /// sender that pushes after the swap always wakes the loop again.
    pub fn take_into(&self, batch: &mut Vec<Inbound>) {
        self.notified.store(false, Ordering::Release);
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *inbox, batch);
        drop(inbox);
        let posts = batch
            .iter()
            .filter(|i| matches!(i, Inbound::Post(_)))
            .count();
        if posts > 0 {
            self.posts.fetch_sub(posts, Ordering::AcqRel);
        }
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.notify();
    }

    pub fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::AcqRel)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A `Send + Sync` handle to a loop, usable from any thread: post a callback
/// into the loop, or stop it. Cloning is cheap.
///
/// # Contract
/// A posted callback runs on the loop's thread in its poll phase, as a
/// macrotask. Posting does not keep the loop alive: a loop that has nothing
/// else to do returns from `run` and later posts fail with
/// [`PostError::Closed`] once it is dropped. Use [`Loop::hold`] to keep a loop
/// alive while another thread may still post.
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) remote: Arc<Remote>,
}

impl LoopHandle {
    /// Runs `callback` on the loop's thread, in its next poll phase.
    pub fn post(&self, callback: impl FnOnce(&Loop) + Send + 'static) -> Result<(), PostError> {
        self.remote.post(Box::new(callback))
    }

    /// Asks the loop to return from `run` after its current tick.
    pub fn stop(&self) {
        self.remote.request_stop();
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle").finish_non_exhaustive()
    }
}
