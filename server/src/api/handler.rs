//! The handler API: what a library user writes.
//!
//! # Contract
//! Three kinds, one [`Handler`] underneath:
//! - returning: `Fn(&mut Request, &S) -> impl IntoResponse`, answered with
//!   what it returns (so `?` works);
//! - async: `Fn(Request, Rc<S>) -> impl Future<Output = impl IntoResponse>`,
//!   run on the loop's promise-job queue;
//! - loop-native: `Fn(&Loop, Request, Responder)`, which answers exactly
//!   once through the [`Responder`], at once or later from any callback on
//!   the same loop (a timer, a pool job, an immediate), like Node's
//!   `res.end()`.
//!
//! A handler that panics, or drops its responder without answering, produces
//! a 500 for that request; the connection and the loop go on.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use phaseloop_core::Loop;

use crate::api::responder::Responder;
use crate::http::request::Request;
use crate::http::IntoResponse;

/// Something that answers requests.
pub trait Handler: 'static {
    /// Handles one request; must eventually answer through `res`.
    fn call(&self, lp: &Loop, req: Request, res: Responder);
}

impl<F> Handler for F
where
    F: Fn(&Loop, Request, Responder) + 'static,
{
    fn call(&self, lp: &Loop, req: Request, res: Responder) {
        self(lp, req, res)
    }
}

/// Wraps every request: may inspect or change it, answer it itself, or pass
/// it on with [`Next::run`].
pub trait Middleware: 'static {
    /// Handles one request on its way to the route's handler.
    fn call(&self, lp: &Loop, req: Request, res: Responder, next: Next);
}

impl<F> Middleware for F
where
    F: Fn(&Loop, Request, Responder, Next) + 'static,
{
    fn call(&self, lp: &Loop, req: Request, res: Responder, next: Next) {
        self(lp, req, res, next)
    }
}

/// The rest of the middleware chain, ending at the route's handler.
pub struct Next {
    pub(crate) chain: Rc<[Rc<dyn Middleware>]>,
    pub(crate) index: usize,
    pub(crate) endpoint: Rc<dyn Handler>,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next").field("index", &self.index).finish()
    }
}

impl Next {
    /// Passes the request on.
    pub fn run(self, lp: &Loop, req: Request, res: Responder) {
        match self.chain.get(self.index).cloned() {
            Some(mw) => {
                let next = Next {
                    chain: self.chain,
                    index: self.index + 1,
                    endpoint: self.endpoint,
                };
                mw.call(lp, req, res, next)
            }
            None => self.endpoint.call(lp, req, res),
        }
    }
}

/// A handler that returns its answer: called with the request and the
/// app's state, what it returns ([`IntoResponse`]) is sent at once, an
/// error's body rendered for what the request accepts.
pub(crate) fn returning<S, F, R>(state: Rc<S>, f: F) -> impl Handler
where
    S: 'static,
    F: Fn(&mut Request, &S) -> R + 'static,
    R: IntoResponse,
{
    move |_: &Loop, mut req: Request, res: Responder| {
        let value = f(&mut req, &state);
        res.reply(&req, value);
    }
}

/// Adapts an async function into a [`Handler`]: the future runs on the loop
/// (`!Send` is fine) and what it returns is sent when it completes.
pub(crate) fn async_handler<S, F, Fut, R>(state: Rc<S>, f: F) -> impl Handler
where
    S: 'static,
    F: Fn(Request, Rc<S>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    move |lp: &Loop, req: Request, res: Responder| {
        // Learnt now: the future owns the request.
        let wants_json = req.accepts_json();
        let fut = f(req, state.clone());
        lp.spawn(async move {
            let run = UntilCancelled {
                inner: CatchUnwind(Box::pin(fut)),
                res: &res,
                watching: false,
            };
            match run.await {
                Some(Ok(value)) => res.send_rendering(value.into_response(), wants_json),
                Some(Err(())) => res.answer_panic(),
                // Nobody waits: the future is dropped here, and what it
                // awaited with it (a bridged tokio task is aborted).
                None => {}
            }
        });
    }
}

/// Polls a handler's future while its request still waits for it; `None`
/// once the client has left or a handler timeout answered instead (the
/// engine wakes it then).
struct UntilCancelled<'a, F> {
    inner: F,
    res: &'a Responder,
    watching: bool,
}

impl<F: Future + Unpin> Future for UntilCancelled<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.res.is_awaited() {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll(cx);
        match polled {
            Poll::Ready(value) => Poll::Ready(Some(value)),
            Poll::Pending => {
                if !this.watching {
                    this.res.watch_cancel(cx.waker());
                    this.watching = true;
                }
                Poll::Pending
            }
        }
    }
}

impl<F> Drop for UntilCancelled<'_, F> {
    fn drop(&mut self) {
        if self.watching {
            self.res.forget_cancel();
        }
    }
}

/// Runs a group's own middleware before `handler` (a nested app's routes).
pub(crate) fn behind(chain: Rc<[Rc<dyn Middleware>]>, handler: Rc<dyn Handler>) -> impl Handler {
    move |lp: &Loop, req: Request, res: Responder| {
        Next {
            chain: chain.clone(),
            index: 0,
            endpoint: handler.clone(),
        }
        .run(lp, req, res)
    }
}

/// Polls a future, turning a panic into `Err` instead of unwinding into the
/// loop.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
