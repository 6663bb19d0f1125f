//! The starvation guard (beyond Node): reports a single callback, or a
//! microtask drain, that holds the loop longer than a threshold.
//!
//! Node gives no warning when a recursive `process.nextTick` starves its
//! timers; the seed calls it half a day of debugging. Orderings stay exactly
//! Node's: the guard only observes. A report names the phase and, when the
//! server set one, the label (route) of the work that held the loop.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::metrics::Phase;

/// The default threshold: 100 ms is far past any healthy callback and well
/// under what a user notices as a hung request.
pub const DEFAULT_BLOCK_THRESHOLD: Duration = Duration::from_millis(100);

/// How many microtasks run between two clock reads during a drain: keeps
/// the guard's cost negligible while still catching an endless drain.
const DRAIN_CHECK_EVERY: u32 = 64;

/// How many recent reports a loop keeps for its metrics.
const RECENT_REPORTS: usize = 32;

/// What held the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// One macrotask callback ran too long.
    Callback,
    /// The microtask queues (`next_tick`, promise jobs) did not empty in time:
    /// the loop cannot reach its next phase (starvation).
    MicrotaskDrain,
}

/// One report of the loop being held past the threshold.
#[derive(Debug, Clone)]
pub struct BlockReport {
    /// What held the loop.
    pub kind: BlockKind,
    /// The phase the loop was in.
    pub phase: Phase,
    /// How long it had been held when reported.
    pub held: Duration,
    /// The label set with [`crate::Loop::set_label`] (the server sets the route).
    pub label: Option<Rc<str>>,
}

impl fmt::Display for BlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            BlockKind::Callback => "a callback",
            BlockKind::MicrotaskDrain => "the microtask queues (next_tick/promise jobs)",
        };
        write!(
            f,
            "event loop held for {:.1} ms by {} in the {} phase",
            self.held.as_secs_f64() * 1e3,
            what,
            self.phase
        )?;
        if let Some(label) = &self.label {
            write!(f, " ({label})")?;
        }
        Ok(())
    }
}

/// Observer called with every report (in addition to the counter).
pub type BlockHook = Box<dyn Fn(&BlockReport)>;

pub(crate) struct Guard {
    threshold: Option<Duration>,
    /// The threshold in the guard clock's nanoseconds, worked out once: it
    /// is compared after every callback.
    threshold_ns: u64,
    warn: bool,
    clock: GuardClock,
    /// Start of the current macrotask (the guard clock's nanoseconds), when
    /// the guard is on.
    mark: Cell<Option<u64>>,
    /// The label last set. Cleared with `set_label(None)`, it stays readable
    /// until the macrotask ends: a handler clears its label when it returns,
    /// before the guard looks at how long it took.
    label: RefCell<Option<Rc<str>>>,
    /// `label` was cleared during the current macrotask: it goes when the
    /// macrotask ends.
    label_cleared: Cell<bool>,
    /// A drain inside the current macrotask was already reported.
    drain_reported: Cell<bool>,
    reports: Cell<u64>,
    recent: RefCell<VecDeque<BlockReport>>,
    hook: RefCell<Option<BlockHook>>,
}

/// The clock the guard reads after every callback. Linux's coarse
/// monotonic clock is a memory read (no time-stamp counter, no conversion)
/// with tick resolution (1 to 10 ms); it is used when that resolution is at
/// most a tenth of the threshold, the precise clock otherwise.
#[derive(Clone, Copy)]
struct GuardClock(libc::clockid_t);

impl GuardClock {
    fn for_threshold(threshold: Option<Duration>) -> Self {
        let coarse = libc::CLOCK_MONOTONIC_COARSE;
        let mut res = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `res` is a valid timespec for the call to fill.
        let ok = unsafe { libc::clock_getres(coarse, &mut res) } == 0;
        let res = Duration::new(res.tv_sec as u64, res.tv_nsec as u32);
        match threshold {
            Some(t) if ok && res * 10 <= t => GuardClock(coarse),
            _ => GuardClock(libc::CLOCK_MONOTONIC),
        }
    }

    /// Nanoseconds on this clock.
    fn now_ns(self) -> u64 {
        crate::clock::now_ns(self.0)
    }
}

/// State of one microtask drain, for the guard.
pub(crate) struct DrainWatch {
    started: Option<u64>,
    count: u32,
    reported: bool,
}

impl Guard {
    pub fn new(threshold: Option<Duration>, warn: bool) -> Self {
        Guard {
            threshold,
            threshold_ns: threshold.map_or(u64::MAX, |t| {
                u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
            }),
            warn,
            clock: GuardClock::for_threshold(threshold),
            mark: Cell::new(None),
            label: RefCell::new(None),
            label_cleared: Cell::new(false),
            drain_reported: Cell::new(false),
            reports: Cell::new(0),
            recent: RefCell::new(VecDeque::new()),
            hook: RefCell::new(None),
        }
    }

    pub fn set_label(&self, label: Option<Rc<str>>) {
        if self.threshold.is_none() {
            return; // no report will ever name it
        }
        match label {
            Some(label) => {
                self.label.replace(Some(label));
                self.label_cleared.set(false);
            }
            None => self.label_cleared.set(true),
        }
    }

    pub fn set_hook(&self, hook: Option<BlockHook>) {
        *self.hook.borrow_mut() = hook;
    }

    pub fn reports(&self) -> u64 {
        self.reports.get()
    }

    pub fn recent(&self) -> Vec<BlockReport> {
        self.recent.borrow().iter().cloned().collect()
    }

    /// Marks the start of a run of callbacks (a phase beginning).
    #[inline]
    pub fn mark(&self) {
        if self.threshold.is_some() {
            self.mark.set(Some(self.clock.now_ns()));
        }
    }

    /// Called after every macrotask (and its microtasks).
    #[inline]
    pub fn after_callback(&self, phase: Phase) {
        if self.threshold.is_none() {
            return;
        }
        let now = self.clock.now_ns();
        if let Some(start) = self.mark.get() {
            // Compared in nanoseconds: a Duration is made only to report.
            let held_ns = now.saturating_sub(start);
            // One incident, one report: a starving drain already spoke.
            if held_ns > self.threshold_ns && !self.drain_reported.get() {
                self.report(BlockKind::Callback, phase, Duration::from_nanos(held_ns));
            }
        }
        self.drain_reported.set(false);
        if self.label_cleared.get() {
            self.label.take();
            self.label_cleared.set(false);
        }
        self.mark.set(Some(now));
    }

    pub fn drain_watch(&self) -> DrainWatch {
        DrainWatch {
            started: None,
            count: 0,
            reported: false,
        }
    }

    /// Called for every microtask a drain runs.
    #[inline]
    pub fn on_microtask(&self, watch: &mut DrainWatch, phase: Phase) {
        if self.threshold.is_none() || watch.reported {
            return;
        }
        let clock = self.clock;
        let started = *watch.started.get_or_insert_with(|| clock.now_ns());
        watch.count += 1;
        if watch.count % DRAIN_CHECK_EVERY == 0 {
            let held_ns = clock.now_ns().saturating_sub(started);
            if held_ns > self.threshold_ns {
                watch.reported = true;
                self.drain_reported.set(true);
                self.report(
                    BlockKind::MicrotaskDrain,
                    phase,
                    Duration::from_nanos(held_ns),
                );
            }
        }
    }

    fn report(&self, kind: BlockKind, phase: Phase, held: Duration) {
        let report = BlockReport {
            kind,
            phase,
            held,
            label: self.label.borrow().clone(),
        };
        self.reports.set(self.reports.get() + 1);
        if self.warn {
            crate::report!(
                warn,
                {
                    kind = ?report.kind,
                    phase = ?report.phase,
                    held_ms = report.held.as_millis() as u64,
                    label = report.label.as_deref().unwrap_or("")
                },
                "phaseloop warning: {report}"
            );
        }
        if let Some(hook) = &*self.hook.borrow() {
            hook(&report);
        }
        let mut recent = self.recent.borrow_mut();
        if recent.len() == RECENT_REPORTS {
            recent.pop_front();
        }
        recent.push_back(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_serves_only_thresholds_it_can_resolve() {
        let coarse = GuardClock::for_threshold(Some(DEFAULT_BLOCK_THRESHOLD)).0;
        let fine = GuardClock::for_threshold(Some(Duration::from_micros(500))).0;
        // Linux ticks at 100 to 1000 Hz: 10 ms or finer, so the default
        // threshold of 100 ms gets the coarse clock, half a millisecond
        // never does.
        assert_eq!(coarse, libc::CLOCK_MONOTONIC_COARSE);
        assert_eq!(fine, libc::CLOCK_MONOTONIC);
        assert_eq!(GuardClock::for_threshold(None).0, libc::CLOCK_MONOTONIC);
    }

    #[test]
    fn a_held_callback_is_measured_on_either_clock() {
        for threshold in [DEFAULT_BLOCK_THRESHOLD, Duration::from_millis(5)] {
            let guard = Guard::new(Some(threshold), false);
            guard.set_label(Some("GET /slow".into()));
            guard.mark();
            std::thread::sleep(threshold + threshold / 2);
            // The handler clears its label before the guard looks.
            guard.set_label(None);
            guard.after_callback(Phase::Poll);
            let reports = guard.recent();
            assert_eq!(reports.len(), 1, "threshold {threshold:?}");
            assert!(reports[0].held > threshold, "{:?}", reports[0].held);
            assert_eq!(reports[0].label.as_deref(), Some("GET /slow"));
            // The cleared label is gone once the macrotask ended.
            guard.mark();
            std::thread::sleep(threshold + threshold / 2);
            guard.after_callback(Phase::Timers);
            assert_eq!(guard.recent()[1].label, None);
        }
    }
}
