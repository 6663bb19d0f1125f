//! A single-value channel for the loop's own thread (no atomics, no locks):
//! the bridge from a callback-style API to a future.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// The sending half; dropping it unsent resolves the receiver to `None`.
pub struct Sender<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

/// The receiving half: a future of `Some(value)`, or `None` if the sender
/// was dropped without sending. Awaited after it was settled, it resumes one
/// microtask turn later, as JS's `await` of a settled promise.
pub struct Receiver<T> {
    shared: Rc<RefCell<Shared<T>>>,
    /// Polled before: a value found on the first poll waits one turn.
    polled: bool,
}

/// A connected sender/receiver pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            polled: false,
        },
    )
}

impl<T> Sender<T> {
    /// Delivers the value and wakes the receiver's task.
    pub fn send(self, value: T) {
        let waker = {
            let mut s = self.shared.borrow_mut();
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.shared.borrow_mut();
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Settled before it was first awaited: resume after one microtask
        // turn, as JS's `await` of a settled promise does (the wake queues
        // this task behind the promise jobs already queued).
        if !std::mem::replace(&mut self.polled, true) {
            let s = self.shared.borrow();
            if s.value.is_some() || s.sender_gone {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let mut s = self.shared.borrow_mut();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.sender_gone {
            return Poll::Ready(None);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Sender")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Receiver")
    }
}
