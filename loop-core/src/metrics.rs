//! Loop metrics: time per phase, ticks, and event-loop delay.
//!
//! Event-loop delay is measured the way Node's `monitorEventLoopDelay` does:
//! an unreferenced interval timer notes how late it fires. Lateness is what a
//! request waiting on this loop would suffer, so it is the figure to watch.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::guard::BlockReport;

/// The phases of one tick, in the order they run (plus the main function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The main function given to [`crate::Loop::enter`] or [`crate::Loop::run_main`].
    Main,
    /// `set_timeout` / `set_interval` callbacks.
    Timers,
    /// I/O callbacks deferred from the previous tick.
    Pending,
    /// Idle hooks.
    Idle,
    /// Prepare hooks, just before polling.
    Prepare,
    /// Waiting for I/O and running I/O and thread-pool callbacks.
    Poll,
    /// `set_immediate` callbacks and check hooks.
    Check,
    /// Close callbacks.
    Close,
}

impl Phase {
    /// All phases, in tick order after `Main`.
    pub const ALL: [Phase; 8] = [
        Phase::Main,
        Phase::Timers,
        Phase::Pending,
        Phase::Idle,
        Phase::Prepare,
        Phase::Poll,
        Phase::Check,
        Phase::Close,
    ];

    /// A short lower-case name, as used in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Main => "main",
            Phase::Timers => "timers",
            Phase::Pending => "pending",
            Phase::Idle => "idle",
            Phase::Prepare => "prepare",
            Phase::Poll => "poll",
            Phase::Check => "check",
            Phase::Close => "close",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Highest loop delay the histogram tracks (larger values are clamped): an
/// hour is far beyond anything but a hung loop.
const DELAY_HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// A point-in-time copy of a loop's metrics.
#[derive(Debug, Clone)]
pub struct LoopMetrics {
    /// Ticks completed.
    pub ticks: u64,
    /// Macrotask callbacks run (timers, pending, hooks, I/O, immediates, close).
    pub callbacks: u64,
    /// Time spent running each phase's callbacks (and the microtasks they queued).
    pub phase_time: Vec<(Phase, Duration)>,
    /// Time spent blocked in the poll phase waiting for I/O: the loop's idle time.
    pub poll_wait: Duration,
    /// Event-loop delay samples in nanoseconds (empty when the monitor is off).
    pub loop_delay: Histogram<u64>,
    /// How many callbacks or microtask drains held the loop past the threshold.
    pub block_reports: u64,
    /// Callbacks and microtasks that panicked and were caught
    /// ([`crate::Loop::set_catch_panics`]).
    pub callback_panics: u64,
    /// The most recent such reports, newest last.
    pub recent_blocks: Vec<BlockReport>,
}

impl LoopMetrics {
    /// Time spent in `phase`.
    pub fn time_in(&self, phase: Phase) -> Duration {
        self.phase_time
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
            .unwrap_or_default()
    }
}

/// The loop's running counters (loop-thread only, hence `Cell`s).
pub(crate) struct MetricsState {
    pub ticks: Cell<u64>,
    pub callbacks: Cell<u64>,
    pub callback_panics: Cell<u64>,
    phase_ns: [Cell<u64>; 8],
    pub poll_wait_ns: Cell<u64>,
    pub loop_delay: RefCell<Histogram<u64>>,
}

impl MetricsState {
    pub fn new() -> Self {
        MetricsState {
            ticks: Cell::new(0),
            callbacks: Cell::new(0),
            callback_panics: Cell::new(0),
            phase_ns: Default::default(),
            poll_wait_ns: Cell::new(0),
            loop_delay: RefCell::new(
                Histogram::new_with_bounds(1_000, DELAY_HISTOGRAM_MAX_NS, 3)
                    .expect("static histogram bounds are valid"),
            ),
        }
    }

    pub fn add_phase(&self, phase: Phase, ns: u64) {
        let c = &self.phase_ns[phase.index()];
        c.set(c.get() + ns);
    }

    pub fn record_delay(&self, delay: Duration) {
        let ns = (delay.as_nanos() as u64).clamp(1_000, DELAY_HISTOGRAM_MAX_NS);
        // `saturating_record` never fails for an in-range value.
        self.loop_delay.borrow_mut().saturating_record(ns);
    }

    /// The loop delay at quantile `q` (0 to 1), read in place.
    pub fn delay_at(&self, q: f64) -> Duration {
        Duration::from_nanos(self.loop_delay.borrow().value_at_quantile(q))
    }

    pub fn snapshot(&self, block_reports: u64, recent_blocks: Vec<BlockReport>) -> LoopMetrics {
        LoopMetrics {
            ticks: self.ticks.get(),
            callbacks: self.callbacks.get(),
            phase_time: Phase::ALL
                .iter()
                .map(|p| (*p, Duration::from_nanos(self.phase_ns[p.index()].get())))
                .collect(),
            poll_wait: Duration::from_nanos(self.poll_wait_ns.get()),
            loop_delay: self.loop_delay.borrow().clone(),
            block_reports,
            callback_panics: self.callback_panics.get(),
            recent_blocks,
        }
    }
}
