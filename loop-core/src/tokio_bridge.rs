//! A bridge to tokio (feature `tokio`): await a tokio-based future
//! (reqwest, sqlx, tonic, `tokio::time`, …) from code on the loop.
//!
//! [`on_tokio`] starts the future on a side runtime (a multi-threaded
//! tokio runtime with [`set_tokio_threads`] workers, 1 by default, started
//! on first use) and returns a future for the loop: its result comes back
//! as a promise job, the way a pool job's does. A panic in the bridged
//! future is an [`BridgeError::Panicked`], not a crash; dropping the loop's
//! future (a client that left, a handler timeout) aborts the tokio task.
//!
//! Use it for crates that need tokio's reactor. Work the loop does itself
//! (its timers, its pool, its own clients) needs no bridge and costs a
//! thread hop less.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use crate::event_loop::Loop;

/// Worker threads of the side runtime, read once when it starts.
static THREADS: AtomicUsize = AtomicUsize::new(1);
/// The side runtime, or why it could not start.
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Sets how many worker threads the side runtime gets (at least 1).
/// Returns false once the runtime has started: it keeps its count.
pub fn set_tokio_threads(threads: usize) -> bool {
    THREADS.store(threads.max(1), Ordering::Relaxed);
    RUNTIME.get().is_none()
}

/// The side runtime's handle, starting it if need be: for code that must
/// `spawn` onto it or enter its context itself.
pub fn tokio_handle() -> Result<tokio::runtime::Handle, BridgeError> {
    runtime().map(|rt| rt.handle().clone())
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, BridgeError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(THREADS.load(Ordering::Relaxed))
                .thread_name("phaseloop-tokio")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| BridgeError::Runtime(e.clone()))
}

/// Why a bridged future gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeError {
    /// It panicked; the panic's message.
    Panicked(String),
    /// Its task was cancelled (the runtime is shutting down).
    Cancelled,
    /// The side runtime could not start (no threads left, say).
    Runtime(String),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Panicked(m) => write!(f, "the tokio task panicked: {m}"),
            BridgeError::Cancelled => f.write_str("the tokio task was cancelled"),
            BridgeError::Runtime(m) => write!(f, "the tokio runtime could not start: {m}"),
        }
    }
}

impl std::error::Error for BridgeError {}

/// Runs `future` on the side tokio runtime; the returned future, awaited
/// on the loop, yields its output. It keeps the loop alive while the
/// task runs; dropped before then, it aborts the task.
pub fn on_tokio<F>(future: F) -> Bridged<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let state = match runtime() {
        Ok(rt) => {
            // Held like a pool job: a loop waiting for nothing else must
            // not end while the answer is on its way.
            let held = Loop::with_current(Loop::hold).is_some();
            State::Running {
                task: rt.spawn(future),
                held,
            }
        }
        Err(e) => State::Failed(Some(e)),
    };
    Bridged { state }
}

/// A future on the loop for a task on the side runtime (see [`on_tokio`]).
pub struct Bridged<T> {
    state: State<T>,
}

enum State<T> {
    Running {
        task: tokio::task::JoinHandle<T>,
        held: bool,
    },
    Failed(Option<BridgeError>),
    Done,
}

impl<T> fmt::Debug for Bridged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Running { .. } => "running",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct("Bridged").field("state", &state).finish()
    }
}

impl<T> Bridged<T> {
    /// Ends the task's hold on the loop, once.
    fn unhold(&mut self) {
        if let State::Running { held, .. } = &mut self.state {
            if std::mem::take(held) {
                Loop::with_current(Loop::release);
            }
        }
    }
}

impl<T> Future for Bridged<T> {
    type Output = Result<T, BridgeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match &mut this.state {
            State::Running { task, held } => match Pin::new(task).poll(cx) {
                Poll::Pending => {
                    // Made outside a running loop: held from the first
                    // poll on one.
                    if !*held {
                        *held = Loop::with_current(Loop::hold).is_some();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(value)) => Ok(value),
                Poll::Ready(Err(e)) if e.is_panic() => {
                    let panic = e.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into());
                    Err(BridgeError::Panicked(message))
                }
                Poll::Ready(Err(_)) => Err(BridgeError::Cancelled),
            },
            State::Failed(e) => Err(e.take().unwrap_or(BridgeError::Cancelled)),
            State::Done => panic!("Bridged polled after it completed"),
        };
        this.unhold();
        this.state = State::Done;
        Poll::Ready(result)
    }
}

impl<T> Drop for Bridged<T> {
    fn drop(&mut self) {
        self.unhold();
        if let State::Running { task, .. } = &self.state {
            task.abort();
        }
    }
}

/// The tokio crate the bridge runs (its `time`, `net` and `io-util`
/// parts), for code that has no `tokio` dependency of its own.
pub use tokio;
