//! Multi-loop mode: N loops on N threads, each with its own SO_REUSEPORT
//! listener on the same address, sharing nothing on the hot path. The
//! kernel spreads new connections across the listeners.
//!
//! An `App` holds `Rc`s and lives on one loop, so each loop builds its own
//! from a factory. Its state is said to be per loop
//! (`App::with_state_per_loop`) or shared (`App::with_shared_state`, one
//! `Arc` made outside the factory); a cluster refuses to start an app
//! whose state would be split across loops by accident.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use phaseloop_core::{Loop, LoopHandle, RunMode, Signal};

use crate::api::app::{App, StateSharing};
use crate::engine::config::ServerConfig;
use crate::engine::ServerStats;
use crate::serve::server::Server;

/// How often each loop publishes its counters for the others to read.
pub const STATS_PUBLISH_INTERVAL: Duration = Duration::from_millis(500);

/// Counters of every loop of a cluster, refreshed by each loop twice a second.
#[derive(Debug, Clone, Default)]
pub struct ClusterStats {
    per_loop: Arc<Mutex<Vec<ServerStats>>>,
    /// Each loop's delay (p99, max), nanoseconds, published with its counters.
    per_loop_delay: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl ClusterStats {
    /// The latest loop delay of each loop, by loop index: (p99, max).
    pub fn per_loop_delay(&self) -> Vec<(Duration, Duration)> {
        self.per_loop_delay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|&(p99, max)| (Duration::from_nanos(p99), Duration::from_nanos(max)))
            .collect()
    }

    /// The latest counters of each loop, by loop index.
    pub fn per_loop(&self) -> Vec<ServerStats> {
        self.per_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All loops' counters added up.
    pub fn total(&self) -> ServerStats {
        let mut t = ServerStats::default();
        for s in self.per_loop() {
            t.accepted += s.accepted;
            t.open += s.open;
            t.busy += s.busy;
            t.closed += s.closed;
            t.requests += s.requests;
            for (a, b) in t.responses_by_class.iter_mut().zip(s.responses_by_class) {
                *a += b;
            }
            t.refused += s.refused;
            t.timeouts += s.timeouts;
            t.body_rate_timeouts += s.body_rate_timeouts;
            t.request_timeouts += s.request_timeouts;
            t.response_rate_closes += s.response_rate_closes;
            t.accept_errors += s.accept_errors;
            t.accept_pauses += s.accept_pauses;
            t.handler_panics += s.handler_panics;
            t.handler_timeouts += s.handler_timeouts;
            t.socket_reads += s.socket_reads;
        }
        t
    }
}

/// What a loop's app factory is told about where it runs.
#[derive(Debug, Clone)]
pub struct LoopInfo {
    /// This loop's index, 0..loops.
    pub index: usize,
    /// How many loops the cluster has.
    pub loops: usize,
    /// Every loop's counters (this one's included).
    pub stats: ClusterStats,
}

/// A running cluster of loops. Dropping it stops them.
#[derive(Debug)]
pub struct Cluster {
    addr: SocketAddr,
    handles: Vec<LoopHandle>,
    threads: Vec<JoinHandle<()>>,
    stats: ClusterStats,
}

thread_local! {
    static LOOP_SERVER: std::cell::RefCell<Option<Server>> = const { std::cell::RefCell::new(None) };
}

impl Cluster {
    /// Starts `loops` loops (at least 1) serving apps from `make_app` on
    /// `addr` (port 0: one free port, shared by all). `prepare` runs on each
    /// loop before it serves (signal handlers, timers).
    ///
    /// Fails, before serving, if the loops' apps were made with
    /// [`App::with_state`] (one state each: requests would see a different
    /// state by the loop that took their connection), or with
    /// [`App::with_shared_state`] of different `Arc`s.
    pub fn start<F, S: 'static>(
        addr: SocketAddr,
        loops: usize,
        cfg: ServerConfig,
        make_app: F,
    ) -> io::Result<Cluster>
    where
        F: Fn(&Loop, &LoopInfo) -> App<S> + Send + Sync + 'static,
    {
        let loops = loops.max(1);
        let make_app = Arc::new(make_app);
        let stats = ClusterStats {
            per_loop: Arc::new(Mutex::new(vec![ServerStats::default(); loops])),
            per_loop_delay: Arc::new(Mutex::new(vec![(0, 0); loops])),
        };
        let cfg = ServerConfig {
            reuse_port: true,
            ..cfg
        };
        let mut addr = addr;
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        let mut shared_at = None;
        for index in 0..loops {
            let (tx, rx) = mpsc::sync_channel::<io::Result<(SocketAddr, LoopHandle)>>(1);
            let (sharing_tx, sharing_rx) = mpsc::sync_channel::<StateSharing>(1);
            let (go_tx, go_rx) = mpsc::sync_channel::<bool>(1);
            let (make_app, cfg, stats) = (make_app.clone(), cfg.clone(), stats.clone());
            let bind_to = addr;
            let thread = std::thread::Builder::new()
                .name(format!("phaseloop-loop-{index}"))
                .spawn(move || {
                    let started = (|| {
                        let lp = Loop::new()?;
                        let info = LoopInfo {
                            index,
                            loops,
                            stats: stats.clone(),
                        };
                        let app = lp.enter(|lp| make_app(lp, &info));
                        // Checked by the starting thread before serving.
                        let _ = sharing_tx.send(app.sharing);
                        if go_rx.recv() != Ok(true) {
                            return Err(io::Error::other("the cluster did not start"));
                        }
                        let server = Server::bind(&lp, bind_to, app, cfg)?;
                        Ok((lp, server))
                    })();
                    let (lp, server) = match started {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok((server.local_addr(), lp.handle())));
                    // Publish this loop's counters for the others.
                    let publisher = server.clone();
                    let shown = stats.clone();
                    let timer = lp.set_interval(STATS_PUBLISH_INTERVAL, move |lp| {
                        stats.per_loop.lock().unwrap_or_else(|e| e.into_inner())[index] =
                            publisher.stats();
                        // Read in place: a metrics snapshot would copy the
                        // delay histogram every half second.
                        let nanos = |d: Duration| d.as_nanos() as u64;
                        stats
                            .per_loop_delay
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())[index] =
                            (nanos(lp.loop_delay_at(0.99)), nanos(lp.loop_delay_at(1.0)));
                    });
                    lp.unref_timer(timer);
                    // The dashboard (if mounted) shows every loop as its own series.
                    crate::api::dashboard::show_loops(Some(Box::new(move || {
                        let delays = shown.per_loop_delay();
                        shown
                            .per_loop()
                            .iter()
                            .zip(delays)
                            .enumerate()
                            .map(|(index, (s, (p99, _)))| crate::api::dashboard::LoopSeries {
                                index,
                                requests: s.requests,
                                open: s.open,
                                delay_p99: p99,
                            })
                            .collect()
                    })));
                    LOOP_SERVER.with(|s| *s.borrow_mut() = Some(server));
                    lp.run(RunMode::Default);
                    crate::api::dashboard::show_loops(None);
                    LOOP_SERVER.with(|s| s.borrow_mut().take());
                })?;
            let verdict = match sharing_rx.recv() {
                Ok(sharing) => check_sharing(sharing, loops, &mut shared_at),
                Err(_) => Ok(()), // the thread failed first: `rx` says why
            };
            let _ = go_tx.send(verdict.is_ok());
            if let Err(e) = verdict {
                let _ = thread.join();
                Self::stop_all(&handles, threads);
                return Err(e);
            }
            match rx.recv() {
                Ok(Ok((bound, handle))) => {
                    addr = bound; // the next loops share the port the first one got
                    handles.push(handle);
                    threads.push(thread);
                }
                Ok(Err(e)) => {
                    let _ = thread.join();
                    Self::stop_all(&handles, threads);
                    return Err(e);
                }
                Err(_) => {
                    Self::stop_all(&handles, threads);
                    return Err(io::Error::other("a loop thread died while starting"));
                }
            }
        }
        Ok(Cluster {
            addr,
            handles,
            threads,
            stats,
        })
    }

    /// One loop per available core: the default number of loops.
    pub fn default_loops() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn stop_all(handles: &[LoopHandle], threads: Vec<JoinHandle<()>>) {
        for h in handles {
            h.stop();
        }
        for t in threads {
            let _ = t.join();
        }
    }

    /// The address every loop listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of loops.
    pub fn loops(&self) -> usize {
        self.handles.len()
    }

    /// Every loop's counters.
    pub fn stats(&self) -> ClusterStats {
        self.stats.clone()
    }

    /// Graceful shutdown of every loop (see [`Server::shutdown`]); returns
    /// when all loops have finished.
    pub fn shutdown(mut self, deadline: Duration) {
        for h in &self.handles {
            let posted = h.post(move |lp| {
                LOOP_SERVER.with(|s| {
                    if let Some(server) = s.borrow().as_ref() {
                        server.shutdown(lp, deadline, |lp| lp.stop());
                    }
                })
            });
            if posted.is_err() {
                h.stop();
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Blocks this thread until SIGINT or SIGTERM, then drains every loop
    /// (see [`Cluster::shutdown`]) and returns once they have all stopped.
    /// A loop on this thread only waits for the signals: one loop per
    /// process receives them, so none of the cluster's may have asked.
    pub fn run_until_signal(self, deadline: Duration) -> io::Result<()> {
        // It blocks on purpose while the loops drain: the starvation guard
        // has nothing to report here.
        let main_loop = Loop::builder()
            .block_threshold(None)
            .delay_resolution(None)
            .build()?;
        main_loop.hold();
        let cluster = Rc::new(RefCell::new(Some(self)));
        for signal in [Signal::Int, Signal::Term] {
            let cluster = cluster.clone();
            main_loop.on_signal(signal, move |lp, signal| {
                if let Some(c) = cluster.borrow_mut().take() {
                    let loops = c.loops();
                    phaseloop_core::report!(
                        info,
                        {},
                        "phaseloop: {signal}: draining {loops} loops"
                    );
                    c.shutdown(deadline);
                    lp.release();
                }
            })?;
        }
        main_loop.run(RunMode::Default);
        Ok(())
    }

    /// Waits until every loop has stopped (after a shutdown or a stop).
    pub fn join(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The server of the cluster loop running on this thread, if any (for a
    /// handler that wants its own loop's counters).
    pub fn server_on_this_thread() -> Option<Server> {
        LOOP_SERVER.with(|s| s.borrow().clone())
    }

    /// A handle to each loop, by index.
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }
}

/// Whether one loop's app may serve in a cluster of `loops` (see
/// [`Cluster::start`]); `shared_at` is the first loop's shared state.
fn check_sharing(
    sharing: StateSharing,
    loops: usize,
    shared_at: &mut Option<usize>,
) -> io::Result<()> {
    match sharing {
        StateSharing::One if loops > 1 => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "App::with_state on {loops} loops would give each loop its own state; \
                 use App::with_shared_state(Arc) for one state shared by all loops, \
                 or App::with_state_per_loop to say one per loop is meant"
            ),
        )),
        StateSharing::Shared(at) => match shared_at {
            Some(first) if *first != at => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "App::with_shared_state got a different Arc on each loop: create the \
                 Arc once, outside the cluster's app factory, and clone it in",
            )),
            _ => {
                *shared_at = Some(at);
                Ok(())
            }
        },
        _ => Ok(()),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let threads = std::mem::take(&mut self.threads);
        Self::stop_all(&self.handles, threads);
    }
}
