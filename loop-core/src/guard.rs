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
use std::time::{Duration, Instant};

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
    warn: bool,
    /// Start of the current macrotask, when the guard is on.
    mark: Cell<Option<Instant>>,
    label: RefCell<Option<Rc<str>>>,
    /// The last label set during the current macrotask: a handler clears its
    /// label when it returns, before the guard looks at how long it took.
    macrotask_label: RefCell<Option<Rc<str>>>,
    /// A drain inside the current macrotask was already reported.
    drain_reported: Cell<bool>,
    reports: Cell<u64>,
    recent: RefCell<VecDeque<BlockReport>>,
    hook: RefCell<Option<BlockHook>>,
}

/// State of one microtask drain, for the guard.
pub(crate) struct DrainWatch {
    started: Option<Instant>,
    count: u32,
    reported: bool,
}

impl Guard {
    pub fn new(threshold: Option<Duration>, warn: bool) -> Self {
        Guard {
            threshold,
            warn,
            mark: Cell::new(None),
            label: RefCell::new(None),
            macrotask_label: RefCell::new(None),
            drain_reported: Cell::new(false),
            reports: Cell::new(0),
            recent: RefCell::new(VecDeque::new()),
            hook: RefCell::new(None),
        }
    }

    pub fn set_label(&self, label: Option<Rc<str>>) {
        if label.is_some() {
            self.macrotask_label.replace(label.clone());
        }
        self.label.replace(label);
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
    pub fn mark(&self, at: Instant) {
        if self.threshold.is_some() {
            self.mark.set(Some(at));
        }
    }

    /// Called after every macrotask (and its microtasks).
    #[inline]
    pub fn after_callback(&self, phase: Phase) {
        let Some(threshold) = self.threshold else {
            return;
        };
        let now = Instant::now();
        if let Some(start) = self.mark.get() {
            let held = now.duration_since(start);
            // One incident, one report: a starving drain already spoke.
            if held > threshold && !self.drain_reported.get() {
                self.report(BlockKind::Callback, phase, held);
            }
        }
        self.drain_reported.set(false);
        self.macrotask_label.take();
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
        let Some(threshold) = self.threshold else {
            return;
        };
        if watch.reported {
            return;
        }
        let started = *watch.started.get_or_insert_with(Instant::now);
        watch.count += 1;
        if watch.count % DRAIN_CHECK_EVERY == 0 {
            let held = started.elapsed();
            if held > threshold {
                watch.reported = true;
                self.drain_reported.set(true);
                self.report(BlockKind::MicrotaskDrain, phase, held);
            }
        }
    }

    fn report(&self, kind: BlockKind, phase: Phase, held: Duration) {
        let report = BlockReport {
            kind,
            phase,
            held,
            label: self
                .label
                .borrow()
                .clone()
                .or_else(|| self.macrotask_label.borrow().clone()),
        };
        self.reports.set(self.reports.get() + 1);
        if self.warn {
            eprintln!("phaseloop warning: {report}");
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
