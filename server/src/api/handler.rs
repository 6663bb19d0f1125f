//! The handler API: what a library user writes.
//!
//! # Contract
//! A handler receives the loop, the request (with its whole body) and a
//! [`Responder`]. It answers exactly once, by calling one of the responder's
//! methods — at once, or later from any callback on the same loop (a timer, a
//! pool job, an immediate), like Node's `res.end()`. Async handlers return a
//! future of a [`Response`] that runs on the loop's promise-job queue.
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
use crate::http::response::Response;

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

/// Adapts an async function into a [`Handler`]: the future runs on the loop
/// (`!Send` is fine) and its response is sent when it completes.
pub(crate) fn async_handler<F, Fut>(f: F) -> impl Handler
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = Response> + 'static,
{
    move |lp: &Loop, req: Request, res: Responder| {
        let fut = f(req);
        lp.spawn(async move {
            match CatchUnwind(Box::pin(fut)).await {
                Ok(response) => res.send(response),
                Err(()) => res.answer_panic(),
            }
        });
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
