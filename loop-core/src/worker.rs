//! Worker threads (Node's `worker_threads`): a closure on its own thread with
//! its own [`Loop`], and messages both ways that wake the receiving loop.
//!
//! # Contract
//! - The parent loop stays alive until the worker has exited and its
//!   [`WorkerEvent::Exit`] has been delivered.
//! - The worker's loop stays alive while its [`ParentPort`] listens for
//!   messages (as a Node worker with a `'message'` listener does), until it
//!   calls [`ParentPort::close`] or the parent calls [`Worker::terminate`].
//! - A worker that panics delivers [`WorkerEvent::Error`] with the panic
//!   message, then [`WorkerEvent::Exit`] (Node's `'error'` then `'exit'`).
//! - Messages travel through the receiving loop's bounded inbox: a full inbox
//!   is an error the sender sees, never an unbounded queue.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event_loop::Loop;
use crate::remote::{LoopHandle, PostError};

/// What a worker tells its parent.
#[derive(Debug)]
pub enum WorkerEvent<Out> {
    /// A message the worker posted.
    Message(Out),
    /// The worker panicked; the message is the panic's.
    Error(String),
    /// The worker's thread has finished. Always the last event.
    Exit,
}

type AnyEvent = WorkerEvent<Box<dyn Any + Send>>;
type ParentHandler = Rc<RefCell<dyn FnMut(&Loop, AnyEvent)>>;
type PortHandler = Box<dyn FnMut(&Loop, Box<dyn Any + Send>)>;

thread_local! {
    /// Parent side: each live worker's event handler, by worker id.
    static WORKER_HANDLERS: RefCell<HashMap<u64, ParentHandler>> = RefCell::new(HashMap::new());
    /// Worker side: the message listener of this worker thread's port.
    static PORT_HANDLER: RefCell<Option<PortHandler>> = const { RefCell::new(None) };
    /// Worker side: messages that arrived before a listener was set (a Node
    /// port queues them too). Bounded by the worker loop's post capacity:
    /// each one came through that inbox.
    static EARLY_MESSAGES: RefCell<VecDeque<Box<dyn Any + Send>>> = const { RefCell::new(VecDeque::new()) };
}

static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

/// The parent's handle to a worker thread that accepts messages of type `In`.
pub struct Worker<In> {
    id: u64,
    worker_loop: LoopHandle,
    _in: PhantomData<fn(In)>,
}

impl<In> fmt::Debug for Worker<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).finish()
    }
}

/// The worker's end: post to the parent, listen for its messages.
pub struct ParentPort<In, Out> {
    parent: LoopHandle,
    id: u64,
    _types: PhantomData<fn(In) -> Out>,
}

impl<In, Out> fmt::Debug for ParentPort<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentPort")
            .field("worker", &self.id)
            .finish()
    }
}

fn deliver(parent: &LoopHandle, id: u64, event: AnyEvent, bounded: bool) -> Result<(), PostError> {
    let call = move |lp: &Loop| {
        let exit = matches!(event, WorkerEvent::Exit);
        let handler = WORKER_HANDLERS.with(|h| {
            let mut h = h.borrow_mut();
            if exit {
                h.remove(&id)
            } else {
                h.get(&id).cloned()
            }
        });
        if let Some(handler) = handler {
            (handler.borrow_mut())(lp, event);
        }
        if exit {
            lp.release();
        }
    };
    if bounded {
        parent.post(call)
    } else {
        parent.remote.post_unbounded(Box::new(call));
        Ok(())
    }
}

impl<In: Send + 'static> Worker<In> {
    /// Starts `body` on a new thread with its own loop. `on_event` runs on
    /// `lp` for each message, error and the final exit of the worker.
    pub fn spawn<Out: Send + 'static>(
        lp: &Loop,
        body: impl FnOnce(&Loop, ParentPort<In, Out>) + Send + 'static,
        mut on_event: impl FnMut(&Loop, WorkerEvent<Out>) + 'static,
    ) -> io::Result<Worker<In>> {
        let id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        let parent = lp.handle();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<LoopHandle>>(1);
        let handler: ParentHandler = Rc::new(RefCell::new(move |lp: &Loop, event: AnyEvent| {
            let typed = match event {
                WorkerEvent::Message(any) => match any.downcast::<Out>() {
                    Ok(msg) => WorkerEvent::Message(*msg),
                    Err(_) => return,
                },
                WorkerEvent::Error(e) => WorkerEvent::Error(e),
                WorkerEvent::Exit => WorkerEvent::Exit,
            };
            on_event(lp, typed)
        }));
        WORKER_HANDLERS.with(|h| h.borrow_mut().insert(id, handler));
        lp.hold();

        let spawned = std::thread::Builder::new()
            .name(format!("phaseloop-worker-{id}"))
            .spawn(move || {
                // A worker exists to run long computations: the starvation
                // guard would only report what it is for.
                let worker_loop = match Loop::builder().block_threshold(None).build() {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        deliver(&parent, id, WorkerEvent::Exit, false).ok();
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(worker_loop.handle()));
                let port = ParentPort {
                    parent: parent.clone(),
                    id,
                    _types: PhantomData,
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    worker_loop.run_main(|lp| body(lp, port));
                }));
                PORT_HANDLER.with(|p| p.borrow_mut().take());
                drop(worker_loop);
                if let Err(panic) = outcome {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_string());
                    deliver(&parent, id, WorkerEvent::Error(msg), false).ok();
                }
                deliver(&parent, id, WorkerEvent::Exit, false).ok();
            });
        let thread_started = spawned.is_ok();
        let started = spawned.and_then(|_| {
            ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread died before starting")))
        });
        match started {
            Ok(worker_loop) => Ok(Worker {
                id,
                worker_loop,
                _in: PhantomData,
            }),
            Err(e) => {
                // A started thread still delivers Exit, which releases the
                // hold; without a thread, undo it here.
                if !thread_started {
                    WORKER_HANDLERS.with(|h| h.borrow_mut().remove(&id));
                    lp.release();
                }
                Err(e)
            }
        }
    }

    /// Sends a message to the worker's listener (see [`ParentPort::on_message`]).
    pub fn post(&self, msg: In) -> Result<(), PostError> {
        self.worker_loop.post(move |lp| {
            let handler = PORT_HANDLER.with(|p| p.borrow_mut().take());
            let Some(mut handler) = handler else {
                if !CLOSED.with(|c| c.get()) {
                    EARLY_MESSAGES.with(|q| q.borrow_mut().push_back(Box::new(msg)));
                }
                return;
            };
            {
                handler(lp, Box::new(msg));
                PORT_HANDLER.with(|p| {
                    let mut slot = p.borrow_mut();
                    if slot.is_none() && LISTENING.with(|l| l.get()) {
                        *slot = Some(handler);
                    }
                });
            }
        })
    }

    /// Stops the worker's loop after its current tick; its thread then exits
    /// and the parent receives [`WorkerEvent::Exit`].
    pub fn terminate(&self) {
        self.worker_loop.stop();
    }

    /// This worker's id (unique in the process).
    pub fn id(&self) -> u64 {
        self.id
    }
}

thread_local! {
    /// Worker side: whether the port is listening (it holds the loop).
    static LISTENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Worker side: the port was closed; later messages are dropped.
    static CLOSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<In: Send + 'static, Out: Send + 'static> ParentPort<In, Out> {
    /// Sends a message to the parent's `on_event`.
    pub fn post(&self, msg: Out) -> Result<(), PostError> {
        deliver(
            &self.parent,
            self.id,
            WorkerEvent::Message(Box::new(msg)),
            true,
        )
    }

    /// Listens for the parent's messages; keeps this worker's loop alive until
    /// [`ParentPort::close`].
    pub fn on_message(&self, lp: &Loop, mut handler: impl FnMut(&Loop, In) + 'static) {
        let boxed: PortHandler = Box::new(move |lp, any| {
            if let Ok(msg) = any.downcast::<In>() {
                handler(lp, *msg)
            }
        });
        PORT_HANDLER.with(|p| *p.borrow_mut() = Some(boxed));
        if !LISTENING.with(|l| l.replace(true)) {
            lp.hold();
        }
        // Deliver what came early, in order, each as its own macrotask.
        let early = EARLY_MESSAGES.with(|q| std::mem::take(&mut *q.borrow_mut()));
        for msg in early {
            lp.set_immediate(move |lp| {
                let handler = PORT_HANDLER.with(|p| p.borrow_mut().take());
                if let Some(mut handler) = handler {
                    handler(lp, msg);
                    PORT_HANDLER.with(|p| {
                        let mut slot = p.borrow_mut();
                        if slot.is_none() && LISTENING.with(|l| l.get()) {
                            *slot = Some(handler);
                        }
                    });
                }
            });
        }
    }

    /// Stops listening, so the worker's loop can finish.
    pub fn close(&self, lp: &Loop) {
        PORT_HANDLER.with(|p| p.borrow_mut().take());
        CLOSED.with(|c| c.set(true));
        EARLY_MESSAGES.with(|q| q.borrow_mut().clear());
        if LISTENING.with(|l| l.replace(false)) {
            lp.release();
        }
    }

    /// A handle to the parent's loop.
    pub fn parent(&self) -> &LoopHandle {
        &self.parent
    }
}
