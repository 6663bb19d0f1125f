//! `sleep`: a timer as a future (Node's `timers/promises.setTimeout`).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::event_loop::Loop;
use crate::timers::TimerId;

/// A future that completes `delay` after it is first polled, on the timers
/// phase of the loop running it.
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        delay,
        timer: None,
        state: Rc::new(SleepState {
            done: Cell::new(false),
            waker: Cell::new(None),
        }),
    }
}

struct SleepState {
    done: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// The future returned by [`sleep`].
pub struct Sleep {
    delay: Duration,
    timer: Option<TimerId>,
    state: Rc<SleepState>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("delay", &self.delay).finish()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.done.get() {
            return Poll::Ready(());
        }
        self.state.waker.set(Some(cx.waker().clone()));
        if self.timer.is_none() {
            let state = self.state.clone();
            let delay = self.delay;
            let timer = Loop::with_current(|lp| {
                lp.set_timeout(delay, move |_| {
                    state.done.set(true);
                    if let Some(w) = state.waker.take() {
                        w.wake();
                    }
                })
            })
            .expect("sleep() polled outside a running phaseloop loop");
            self.timer = Some(timer);
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(timer), false) = (self.timer, self.state.done.get()) {
            Loop::with_current(|lp| lp.clear_timer(timer));
        }
    }
}
