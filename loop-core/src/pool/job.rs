//! A typed pool job: run it with a callback, or `.await` it.

use std::any::Any;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Lane, PoolError};
use crate::event_loop::{JobCallback, Loop};
use crate::oneshot;

/// Work for the thread pool that produces a `T`.
///
/// Each job is defined once and used either way:
/// `job.run(lp, |lp, result| ...)` runs the callback in the loop's poll
/// phase (every outcome, a full queue included, reaches the callback);
/// `job.await` (inside [`Loop::spawn`]) resumes the task there.
/// [`Job::submit`] is the variant that reports a full queue at once.
pub struct Job<T> {
    lane: Lane,
    work: Box<dyn FnOnce() -> T + Send>,
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Job<T> {
    /// A job running `work` in `lane`.
    pub fn new(lane: Lane, work: impl FnOnce() -> T + Send + 'static) -> Self {
        Job {
            lane,
            work: Box::new(work),
        }
    }

    /// The lane the job runs in.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// Queues the job on `lp`'s pool; `callback` runs in `lp`'s poll phase
    /// with the result. A full queue fails here, at once, and the callback is
    /// dropped unrun: for a caller that answers the refusal itself.
    pub fn submit(
        self,
        lp: &Loop,
        callback: impl FnOnce(&Loop, Result<T, PoolError>) + 'static,
    ) -> Result<(), PoolError> {
        self.queue(lp, callback).map_err(|(e, _)| e)
    }

    /// Queues the job on `lp`'s pool; `callback` always runs exactly once:
    /// with the result, in the poll phase, or, when the queue is full, with
    /// [`PoolError::QueueFull`] in this tick's check phase (never from inside
    /// this call). One place to handle every outcome.
    pub fn run(self, lp: &Loop, callback: impl FnOnce(&Loop, Result<T, PoolError>) + 'static) {
        if let Err((e, callback)) = self.queue(lp, callback) {
            lp.set_immediate(move |lp| callback(lp, Err(e)));
        }
    }

    /// Queues the job, or hands the callback back with the reason.
    fn queue(
        self,
        lp: &Loop,
        callback: impl FnOnce(&Loop, Result<T, PoolError>) + 'static,
    ) -> Result<(), (PoolError, JobCallback)> {
        let work = self.work;
        lp.submit_work(
            self.lane,
            Box::new(move || Box::new(work()) as Box<dyn Any + Send>),
            Box::new(move |lp, result| {
                let typed = result.map(|any| {
                    *any.downcast::<T>()
                        .expect("a job's result has the job's type")
                });
                callback(lp, typed)
            }),
        )
    }
}

impl<T: Send + 'static> IntoFuture for Job<T> {
    type Output = Result<T, PoolError>;
    type IntoFuture = JobFuture<T>;

    fn into_future(self) -> JobFuture<T> {
        JobFuture {
            state: State::Unsubmitted(Some(self)),
        }
    }
}

/// The future of a [`Job`]: submits on first poll, resolves in the poll phase.
pub struct JobFuture<T> {
    state: State<T>,
}

enum State<T> {
    Unsubmitted(Option<Job<T>>),
    Waiting(oneshot::Receiver<Result<T, PoolError>>),
}

impl<T> fmt::Debug for JobFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture").finish_non_exhaustive()
    }
}

impl<T> Unpin for JobFuture<T> {}

impl<T: Send + 'static> Future for JobFuture<T> {
    type Output = Result<T, PoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let State::Unsubmitted(job) = &mut self.state {
            let Some(job) = job.take() else {
                return Poll::Ready(Err(PoolError::NoLoop));
            };
            let (tx, rx) = oneshot::channel();
            let submitted =
                Loop::with_current(|lp| job.submit(lp, move |_, result| tx.send(result)));
            match submitted {
                None => return Poll::Ready(Err(PoolError::NoLoop)),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(())) => self.state = State::Waiting(rx),
            }
        }
        match &mut self.state {
            State::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Some(result)) => Poll::Ready(result),
                // The loop dropped the callback (it is shutting down).
                Poll::Ready(None) => Poll::Ready(Err(PoolError::NoLoop)),
                Poll::Pending => Poll::Pending,
            },
            State::Unsubmitted(_) => unreachable!("submitted above"),
        }
    }
}
