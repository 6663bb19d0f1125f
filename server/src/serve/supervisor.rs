//! Process mode: a supervisor that runs N worker processes (each typically a
//! single-loop server on a shared SO_REUSEPORT port), restarts a worker that
//! dies, with backoff so a crash loop cannot spin, and forwards SIGTERM and
//! SIGINT so every worker drains. Node's `cluster.fork()` / `'exit'` pattern,
//! without a master process in the data path: the kernel hands connections
//! to the workers directly.
//!
//! The supervisor itself runs a phaseloop loop whose only work is signals:
//! SIGCHLD (a worker ended), SIGTERM/SIGINT (stop), and the restart timers.

use std::cell::RefCell;
use std::io;
use std::process::{Child, Command};
use std::rc::Rc;
use std::time::{Duration, Instant};

use phaseloop_core::{Loop, RunMode};

/// First restart delay after a worker dies.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest restart delay: a worker that keeps crashing is retried this often.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A worker that lived this long is healthy: its next restart starts over
/// at the minimum delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

struct Worker {
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restarts: u32,
}

/// What happened to the workers, reported when the supervisor returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisorReport {
    /// Restarts of each worker, by index.
    pub restarts: Vec<u32>,
}

/// Runs `workers` processes made by `command(index)` until SIGTERM or SIGINT,
/// then forwards it to every worker and returns once all have exited.
/// `on_event` is told of starts, exits and restarts (for logs).
pub fn supervise(
    workers: usize,
    command: impl Fn(usize) -> Command + 'static,
    on_event: impl Fn(&str) + 'static,
) -> io::Result<SupervisorReport> {
    let lp = Loop::builder()
        .block_threshold(None)
        .delay_resolution(None)
        .build()?;
    let command = Rc::new(command);
    let on_event = Rc::new(on_event);
    let state = Rc::new(RefCell::new(Vec::<Worker>::new()));
    let stopping = Rc::new(std::cell::Cell::new(false));

    // A worker ended: reap it; restart it after its backoff unless stopping.
    {
        let (state, command, on_event, stopping) = (
            state.clone(),
            command.clone(),
            on_event.clone(),
            stopping.clone(),
        );
        lp.on_signal(phaseloop_core::Signal::Child, move |lp, _| {
            let mut exited = Vec::new();
            for (index, w) in state.borrow_mut().iter_mut().enumerate() {
                if let Some(child) = w.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        w.child = None;
                        exited.push((index, status));
                    }
                }
            }
            for (index, status) in exited {
                if stopping.get() {
                    on_event(&format!("worker {index} exited ({status}) while stopping"));
                    continue;
                }
                let delay = {
                    let mut s = state.borrow_mut();
                    let w = &mut s[index];
                    if w.started.elapsed() >= HEALTHY_AFTER {
                        w.backoff = RESTART_BACKOFF_MIN;
                    }
                    let delay = w.backoff;
                    w.backoff = (w.backoff * 2).min(RESTART_BACKOFF_MAX);
                    delay
                };
                on_event(&format!(
                    "worker {index} exited ({status}); restarting in {} ms",
                    delay.as_millis()
                ));
                let (state, command, on_event, stopping) = (
                    state.clone(),
                    command.clone(),
                    on_event.clone(),
                    stopping.clone(),
                );
                lp.set_timeout(delay, move |_| {
                    if stopping.get() {
                        return;
                    }
                    match command(index).spawn() {
                        Ok(child) => {
                            on_event(&format!("worker {index} restarted (pid {})", child.id()));
                            let mut s = state.borrow_mut();
                            s[index].child = Some(child);
                            s[index].started = Instant::now();
                            s[index].restarts += 1;
                        }
                        Err(e) => on_event(&format!("worker {index} could not be restarted: {e}")),
                    }
                });
            }
            if stopping.get() && state.borrow().iter().all(|w| w.child.is_none()) {
                lp.release();
            }
        })?;
    }

    // SIGTERM / SIGINT: forward to every worker, then wait for them.
    for signum in [phaseloop_core::Signal::Term, phaseloop_core::Signal::Int] {
        let (state, on_event, stopping) = (state.clone(), on_event.clone(), stopping.clone());
        lp.on_signal(signum, move |lp, sig| {
            if stopping.replace(true) {
                return;
            }
            on_event(&format!("signal {sig}: asking every worker to drain"));
            let mut running = 0;
            for w in state.borrow().iter() {
                if let Some(child) = &w.child {
                    // SAFETY: kill(2) on a child we spawned and have not reaped.
                    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                    running += 1;
                }
            }
            if running == 0 {
                lp.release();
            }
        })?;
    }

    // Spawned after the handlers exist, so no early exit goes unnoticed.
    for index in 0..workers {
        let child = command(index).spawn()?;
        on_event(&format!("worker {index} started (pid {})", child.id()));
        state.borrow_mut().push(Worker {
            child: Some(child),
            started: Instant::now(),
            backoff: RESTART_BACKOFF_MIN,
            restarts: 0,
        });
    }
    lp.hold();
    lp.run(RunMode::Default);
    let report = SupervisorReport {
        restarts: state.borrow().iter().map(|w| w.restarts).collect(),
    };
    Ok(report)
}
