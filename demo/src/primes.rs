//! `/primes` on a worker thread versus `/primes-blocking` on the loop: the
//! seed's "Pitfall 1: blocking the event loop", measured.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use phaseloop::{Request, Responder, Response};
use phaseloop_core::{Loop, Worker, WorkerEvent};

/// Largest `limit` accepted: a few hundred ms of work, not minutes.
pub const MAX_LIMIT: u64 = 5_000_000;
/// Requests that may wait for the worker at once (503 beyond).
const MAX_WAITING: usize = 256;

/// Counts primes below `limit` by trial division (deliberately CPU-bound).
pub fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count() as u64
}

pub fn parse_limit(req: &Request) -> Result<u64, Response> {
    match req.query_param("limit") {
        None => Ok(100_000),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (2..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(Response::json_error(
                400,
                &format!("limit must be an integer from 2 to {MAX_LIMIT}"),
            )),
        },
    }
}

pub struct Primes {
    worker: Worker<(u64, u64)>,
    waiting: Rc<RefCell<HashMap<u64, Responder>>>,
    next: Cell<u64>,
}

impl Primes {
    pub fn start(lp: &Loop) -> std::io::Result<Primes> {
        let waiting: Rc<RefCell<HashMap<u64, Responder>>> = Rc::default();
        let w = waiting.clone();
        let worker = Worker::spawn(
            lp,
            |wlp, port| {
                let port = Rc::new(port);
                let reply = port.clone();
                port.on_message(wlp, move |_, (id, limit): (u64, u64)| {
                    let count = count_primes(limit);
                    let _ = reply.post((id, limit, count));
                });
            },
            move |_, event: WorkerEvent<(u64, u64, u64)>| match event {
                WorkerEvent::Message((id, limit, count)) => {
                    if let Some(res) = w.borrow_mut().remove(&id) {
                        res.json(200, &serde_json::json!({ "limit": limit, "primes": count, "computed_on": "worker thread" }));
                    }
                }
                WorkerEvent::Error(e) => {
                    phaseloop_core::report!(error, {}, "demo-api: primes worker failed: {e}")
                }
                WorkerEvent::Exit => {
                    for (_, res) in w.borrow_mut().drain() {
                        res.json_error(503, "primes worker stopped");
                    }
                }
            },
        )?;
        Ok(Primes {
            worker,
            waiting,
            next: Cell::new(1),
        })
    }

    pub fn stop(&self) {
        self.worker.terminate();
    }

    /// `GET /primes?limit=N`: computed on the worker; the loop stays free.
    pub fn on_worker(&self, req: Request, res: Responder) {
        let limit = match parse_limit(&req) {
            Ok(l) => l,
            Err(bad) => return res.send(bad),
        };
        if self.waiting.borrow().len() >= MAX_WAITING {
            return res.send(crate::busy("too many primes requests waiting"));
        }
        let id = self.next.get();
        self.next.set(id + 1);
        self.waiting.borrow_mut().insert(id, res);
        if self.worker.post((id, limit)).is_err() {
            if let Some(res) = self.waiting.borrow_mut().remove(&id) {
                res.send(crate::busy("primes worker is busy"));
            }
        }
    }
}

/// `GET /primes-blocking?limit=N`: computed on the loop, blocking everything.
pub fn blocking(req: Request, res: Responder) {
    match parse_limit(&req) {
        Ok(limit) => res.json(200, &serde_json::json!({ "limit": limit, "primes": count_primes(limit), "computed_on": "event loop (blocking)" })),
        Err(bad) => res.send(bad),
    }
}
