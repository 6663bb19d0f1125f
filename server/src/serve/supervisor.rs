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
    // Workers share their figures through files here, so each one's
    // dashboard shows every worker (`share_worker_figures`).
    let figures_dir =
        std::env::temp_dir().join(format!("phaseloop-workers-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&figures_dir);
    let command = Rc::new(move |index: usize| {
        let mut cmd = command(index);
        cmd.env(FIGURES_DIR_ENV, &figures_dir)
            .env(WORKER_INDEX_ENV, index.to_string());
        cmd
    });
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
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("phaseloop-workers-{}", std::process::id())),
    );
    Ok(report)
}

/// A worker's published figures: index, requests, open connections, loop
/// delay p99 (ns).
type WorkerFigures = (usize, u64, u64, u64);

/// The directory workers share their figures in (set by [`supervise`]).
const FIGURES_DIR_ENV: &str = "PHASELOOP_WORKER_FIGURES";
/// This worker's index (set by [`supervise`]).
const WORKER_INDEX_ENV: &str = "PHASELOOP_WORKER_INDEX";

/// In a worker started by [`supervise`] (a no-op elsewhere): publishes
/// `server`'s figures twice a second for the other workers, and shows
/// every worker's as its own series on this worker's dashboard. Files in
/// a directory the supervisor made, written and read on the thread pool's
/// fs lane, never on the loop.
pub fn share_worker_figures(lp: &Loop, server: &crate::Server) {
    let (Some(dir), Some(index)) = (
        std::env::var_os(FIGURES_DIR_ENV).map(std::path::PathBuf::from),
        std::env::var(WORKER_INDEX_ENV)
            .ok()
            .and_then(|i| i.parse::<usize>().ok()),
    ) else {
        return;
    };
    let seen: Rc<RefCell<Vec<WorkerFigures>>> = Rc::default();
    let shown = seen.clone();
    crate::api::dashboard::show_loops(Some(Box::new(move || {
        shown
            .borrow()
            .iter()
            .map(
                |&(index, requests, open, p99)| crate::api::dashboard::LoopSeries {
                    index,
                    requests,
                    open,
                    delay_p99: Duration::from_nanos(p99),
                },
            )
            .collect()
    })));
    let server = server.clone();
    let timer = lp.set_interval(Duration::from_millis(500), move |lp| {
        let stats = server.stats();
        let p99 = lp.loop_delay_at(0.99).as_nanos() as u64;
        let mine = format!("{index} {} {} {p99}", stats.requests, stats.open);
        let dir = dir.clone();
        let seen = seen.clone();
        phaseloop_core::Job::new(phaseloop_core::Lane::Fs, move || {
            // Written whole, then renamed: a reader never sees half of it.
            let tmp = dir.join(format!(".{index}.tmp"));
            let _ = std::fs::write(&tmp, mine)
                .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{index}.figures"))));
            let mut all = Vec::new();
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "figures") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let f: Vec<u64> = text.split(' ').filter_map(|v| v.parse().ok()).collect();
                    if let [i, requests, open, p99] = f[..] {
                        all.push((i as usize, requests, open, p99));
                    }
                }
            }
            all.sort_unstable();
            all
        })
        .run(lp, move |_, all| {
            if let Ok(all) = all {
                *seen.borrow_mut() = all;
            }
        });
    });
    lp.unref_timer(timer);
}
