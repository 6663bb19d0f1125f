//! Rust futures as promise jobs.
//!
//! A task spawned with [`Loop::spawn`] is first polled at once, in the
//! caller (as calling an async function runs its body up to the first
//! `await`), then in the promise-job microtask queue whenever woken, so the
//! code after an `.await` runs exactly where Node would run the
//! continuation of an `await`: right after the current macrotask, before the
//! loop moves on. A wake on the loop's own thread queues the task directly; a
//! wake from another thread (a pool thread) goes through the loop's inbox and
//! `mio::Waker`. A task is queued at most once however often it is woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use crate::event_loop::{with_current_ptr, Loop};
use crate::oneshot;
use crate::remote::{Inbound, Remote};

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

pub(crate) struct TaskWaker {
    key: usize,
    id: u64,
    queued: AtomicBool,
    remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = with_current_ptr(|lp| {
            if Arc::ptr_eq(&lp.remote, &self.remote) {
                lp.microtasks.push_poll(self.key, self.id);
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            self.remote.send(Inbound::Wake {
                key: self.key,
                id: self.id,
            });
        }
    }
}

struct TaskSlot {
    id: u64,
    /// `None` while the task is being polled.
    future: Option<LocalFuture>,
    waker: Arc<TaskWaker>,
}

/// The loop's spawned futures.
pub(crate) struct Tasks {
    slots: Slab<TaskSlot>,
    next_id: u64,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            slots: Slab::new(),
            next_id: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Stores a future; returns (key, id) to queue its first poll.
    pub fn insert(&mut self, future: LocalFuture, remote: &Arc<Remote>) -> (usize, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let entry = self.slots.vacant_entry();
        let key = entry.key();
        entry.insert(TaskSlot {
            id,
            future: Some(future),
            waker: Arc::new(TaskWaker {
                key,
                id,
                queued: AtomicBool::new(true),
                remote: remote.clone(),
            }),
        });
        (key, id)
    }

    fn take(&mut self, key: usize, id: u64) -> Option<(LocalFuture, Arc<TaskWaker>)> {
        let slot = self.slots.get_mut(key).filter(|s| s.id == id)?;
        let future = slot.future.take()?;
        Some((future, slot.waker.clone()))
    }

    fn finish(&mut self, key: usize, id: u64, future: Option<LocalFuture>) {
        if self.slots.get(key).is_some_and(|s| s.id == id) {
            match future {
                Some(f) => self.slots[key].future = Some(f),
                None => {
                    self.slots.remove(key);
                }
            }
        }
    }

    pub fn clear(&mut self) -> Vec<LocalFuture> {
        self.slots.drain().filter_map(|s| s.future).collect()
    }
}

/// Polls one task (a promise job).
pub(crate) fn poll_task(lp: &Loop, key: usize, id: u64) {
    let Some((mut future, waker_arc)) = lp.tasks.borrow_mut().take(key, id) else {
        return; // finished meanwhile, or a stale wake
    };
    // Cleared before polling: a wake during the poll queues it again.
    waker_arc.queued.store(false, Ordering::Release);
    let waker = Waker::from(waker_arc);
    let mut cx = Context::from_waker(&waker);
    // A poll that panics (caught by a loop that catches panics) ends the
    // task: its slot is freed as the unwinding passes, and the future is
    // dropped after it.
    let unfinished = Unfinished { lp, key, id };
    let result = future.as_mut().poll(&mut cx);
    std::mem::forget(unfinished);
    let keep = match result {
        Poll::Ready(()) => None,
        Poll::Pending => Some(future),
    };
    lp.tasks.borrow_mut().finish(key, id, keep);
}

/// Frees a task's slot if its poll unwinds.
struct Unfinished<'a> {
    lp: &'a Loop,
    key: usize,
    id: u64,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.lp.tasks.borrow_mut().finish(self.key, self.id, None);
    }
}

/// The output of a future started with [`Loop::spawn_task`]: JS's promise
/// of an async call. Awaiting it resumes one microtask turn after the
/// future completes, as `await` of a promise does; `None` if the future
/// panicked, or was dropped unfinished when its loop was.
#[must_use = "a Task does nothing unless awaited; drop it to ignore the output"]
pub struct Task<T>(pub(crate) oneshot::Receiver<T>);

impl<T> Future for Task<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Task")
    }
}

/// A future that gives way once: it wakes itself and waits one microtask
/// turn (the promise jobs queued before it run first). JS's `await null`.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.yielded, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
