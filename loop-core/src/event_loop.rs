//! The loop: one per thread, one tick = timers → pending → idle → prepare →
//! poll → check → close, with both microtask queues drained after every
//! callback. [`Loop::run_once`] is that sentence in code.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::clock;
use crate::guard::{BlockHook, Guard, DEFAULT_BLOCK_THRESHOLD};
use crate::hooks::{HookId, HookKind, HookList};
use crate::immediates::{ImmediateId, Immediates};
use crate::io::{IoCallback, IoEvent, IoOutcome, IoSources, IoToken, WAKER_TOKEN};
use crate::metrics::{LoopMetrics, MetricsState, Phase};
use crate::microtasks::{self, Microtasks};
use crate::oneshot;
use crate::pool::{Lane, Pool, PoolError, PoolStats};
use crate::remote::{Inbound, JobResult, LoopHandle, Remote, DEFAULT_POST_CAPACITY};
use crate::task::{self, Task, Tasks};
use crate::timers::{timer_clock, TimerCallback, TimerHeap, TimerId};

/// A one-shot loop callback (a macrotask or microtask body).
pub(crate) type Callback = Box<dyn FnOnce(&Loop)>;
/// A pool job's completion callback, type-erased.
pub(crate) type JobCallback = Box<dyn FnOnce(&Loop, JobResult)>;

/// How [`Loop::run`] runs (libuv's `uv_run_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Tick until nothing keeps the loop alive, or it is stopped.
    Default,
    /// One tick; the poll phase blocks for I/O if there is nothing else to do.
    Once,
    /// One tick; the poll phase never blocks.
    NoWait,
}

/// The default resolution of the event-loop delay monitor (Node's
/// `monitorEventLoopDelay` default is 10 ms).
pub const DEFAULT_DELAY_RESOLUTION: Duration = Duration::from_millis(10);

/// How many readiness events one poll returns at most; more wait for the
/// next tick (epoll keeps them).
pub const DEFAULT_EVENTS_CAPACITY: usize = 1024;

/// Configures a [`Loop`].
pub struct LoopBuilder {
    pool: Option<Pool>,
    block_threshold: Option<Duration>,
    block_warnings: bool,
    delay_resolution: Option<Duration>,
    post_capacity: usize,
    events_capacity: usize,
}

impl fmt::Debug for LoopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopBuilder")
            .field("block_threshold", &self.block_threshold)
            .field("delay_resolution", &self.delay_resolution)
            .finish_non_exhaustive()
    }
}

impl Default for LoopBuilder {
    fn default() -> Self {
        LoopBuilder {
            pool: None,
            block_threshold: Some(DEFAULT_BLOCK_THRESHOLD),
            block_warnings: true,
            delay_resolution: Some(DEFAULT_DELAY_RESOLUTION),
            post_capacity: DEFAULT_POST_CAPACITY,
            events_capacity: DEFAULT_EVENTS_CAPACITY,
        }
    }
}

impl LoopBuilder {
    /// Uses `pool` for this loop's jobs instead of the process-wide [`Pool::global`].
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Reports callbacks and microtask drains that hold the loop longer than
    /// this; `None` turns the starvation guard off.
    pub fn block_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.block_threshold = threshold;
        self
    }

    /// Whether guard reports are also printed to stderr (default: yes).
    pub fn block_warnings(mut self, on: bool) -> Self {
        self.block_warnings = on;
        self
    }

    /// How often the event-loop delay monitor samples; `None` turns it off.
    pub fn delay_resolution(mut self, resolution: Option<Duration>) -> Self {
        self.delay_resolution = resolution.map(|r| r.max(Duration::from_millis(1)));
        self
    }

    /// Bound on callbacks posted from other threads and not yet run.
    pub fn post_capacity(mut self, n: usize) -> Self {
        self.post_capacity = n.max(1);
        self
    }

    /// Most readiness events taken from one poll.
    pub fn events_capacity(mut self, n: usize) -> Self {
        self.events_capacity = n.max(16);
        self
    }

    /// Creates the loop (its epoll instance and waker).
    pub fn build(self) -> io::Result<Loop> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let lp = Loop {
            // On a whole millisecond of the monotonic clock: the timers'
            // millisecond grid is then the clock's own, as libuv's `uv_now`
            // (hrtime / 1e6), whenever the loop was made.
            epoch_ns: {
                let now = clock::monotonic_ns();
                now - now % 1_000_000
            },
            now_ns: Cell::new(0),
            now: Cell::new(Duration::ZERO),
            phase: Cell::new(Phase::Main),
            running: Cell::new(false),
            stop_requested: Cell::new(false),
            holds: Cell::new(0),
            catch_panics: Cell::new(false),
            timers: RefCell::new(TimerHeap::new()),
            pending: RefCell::new(VecDeque::new()),
            idle: RefCell::new(HookList::new(HookKind::Idle)),
            prepare: RefCell::new(HookList::new(HookKind::Prepare)),
            check: RefCell::new(HookList::new(HookKind::Check)),
            immediates: RefCell::new(Immediates::new()),
            closing: RefCell::new(VecDeque::new()),
            microtasks: Microtasks::new(),
            tasks: RefCell::new(Tasks::new()),
            poll: RefCell::new(poll),
            events: RefCell::new(mio::Events::with_capacity(self.events_capacity)),
            io: RefCell::new(IoSources::new()),
            dispatch: RefCell::new(Vec::new()),
            remote: Arc::new(Remote::new(waker, self.post_capacity)),
            inbox: RefCell::new(Vec::new()),
            pool: OnceCell::new(),
            jobs: RefCell::new(Slab::new()),
            metrics: MetricsState::new(),
            guard: Guard::new(self.block_threshold, self.block_warnings),
        };
        if let Some(pool) = self.pool {
            let _ = lp.pool.set(pool);
        }
        if let Some(resolution) = self.delay_resolution {
            lp.start_delay_monitor(resolution);
        }
        Ok(lp)
    }
}

/// A single-threaded, libuv-style phased event loop.
///
/// # Contract
/// - One tick runs, in order: **timers** (due `set_timeout`/`set_interval`
///   callbacks, earliest first, equal due times in creation order), **pending**
///   (callbacks deferred with [`Loop::defer`] before this tick), **idle** and
///   **prepare** hooks, **poll** (wait for I/O, then run I/O callbacks and
///   completions from other threads), **check** (immediates queued before the
///   phase began, then check hooks), **close** (close callbacks).
/// - After every callback (a macrotask) the `next_tick` queue and then the
///   promise-job queue are drained completely, repeatedly, before anything
///   else runs. Spawned futures are polled as promise jobs.
/// - Loop time is read once per tick; a timer never fires before its delay
///   has passed since it was set, and a 0 ms delay counts as 1 ms.
/// - The loop stays alive while a referenced timer, immediate, hook, I/O
///   source, pending callback, closing callback, pool job or hold exists.
/// - Callbacks receive `&Loop` and may schedule anything, including on the
///   phase they run in; a callback never runs while another holds the loop.
///   A panic in a callback unwinds out of [`Loop::run`] (like an uncaught
///   exception in Node), unless the loop catches panics
///   ([`Loop::set_catch_panics`]: a server's loop does).
pub struct Loop {
    /// The monotonic clock's reading when the loop was made, in ns.
    epoch_ns: u64,
    now_ns: Cell<u64>,
    /// The same instant as a `Duration`: handlers read it per request, and
    /// converting nanoseconds to a `Duration` costs a division each time.
    now: Cell<Duration>,
    phase: Cell<Phase>,
    running: Cell<bool>,
    stop_requested: Cell<bool>,
    holds: Cell<usize>,
    /// See [`Loop::set_catch_panics`].
    catch_panics: Cell<bool>,
    timers: RefCell<TimerHeap>,
    pending: RefCell<VecDeque<Callback>>,
    idle: RefCell<HookList>,
    prepare: RefCell<HookList>,
    check: RefCell<HookList>,
    immediates: RefCell<Immediates>,
    closing: RefCell<VecDeque<Callback>>,
    pub(crate) microtasks: Microtasks,
    pub(crate) tasks: RefCell<Tasks>,
    poll: RefCell<mio::Poll>,
    events: RefCell<mio::Events>,
    io: RefCell<IoSources>,
    /// Scratch list of (source, readiness) for the current poll phase.
    dispatch: RefCell<Vec<(IoToken, IoEvent)>>,
    pub(crate) remote: Arc<Remote>,
    inbox: RefCell<Vec<Inbound>>,
    pool: OnceCell<Pool>,
    jobs: RefCell<Slab<JobCallback>>,
    metrics: MetricsState,
    pub(crate) guard: Guard,
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("phase", &self.phase.get())
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: Cell<*const Loop> = const { Cell::new(ptr::null()) };
}

/// Makes `lp` the thread's current loop for the guard's lifetime.
struct Enter {
    previous: *const Loop,
}

impl Enter {
    fn new(lp: &Loop) -> Enter {
        let previous = CURRENT.with(|c| c.replace(lp as *const Loop));
        Enter { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Keeps a count of referenced handles in step when one handle's
/// `referenced` flag flips (timers, immediates, hooks and I/O all keep one).
pub(crate) fn count_reference(count: &mut usize, now_referenced: bool) {
    if now_referenced {
        *count += 1;
    } else {
        *count -= 1;
    }
}

/// Runs `f` with the thread's current loop, if one is running.
pub(crate) fn with_current_ptr<R>(f: impl FnOnce(&Loop) -> R) -> Option<R> {
    let ptr = CURRENT.with(|c| c.get());
    if ptr.is_null() {
        return None;
    }
    // SAFETY: CURRENT is set only by `Enter`, which lives inside a `&self`
    // borrow of the loop (in `run` or `enter`) and restores the previous
    // value when dropped, unwinding included. So a non-null pointer always
    // refers to a loop that is borrowed, hence alive and not moved, on this
    // very thread.
    Some(f(unsafe { &*ptr }))
}

impl Loop {
    /// A loop with default settings.
    pub fn new() -> io::Result<Loop> {
        LoopBuilder::default().build()
    }

    /// A builder for a loop with non-default settings.
    pub fn builder() -> LoopBuilder {
        LoopBuilder::default()
    }

    /// Runs `f` with the loop running on this thread, if there is one. This is
    /// how futures and library code reach the loop without a `&Loop` in hand.
    pub fn with_current<R>(f: impl FnOnce(&Loop) -> R) -> Option<R> {
        with_current_ptr(f)
    }

    // ----- the tick -------------------------------------------------------

    /// Runs the loop in `mode`. Returns true if the loop is still alive (it
    /// was stopped, or the mode ran only one tick).
    ///
    /// # Panics
    /// If called from inside a callback of this same loop.
    pub fn run(&self, mode: RunMode) -> bool {
        assert!(
            !self.running.get(),
            "Loop::run called from inside its own callback"
        );
        self.running.set(true);
        let _enter = Enter::new(self);
        struct NotRunning<'a>(&'a Cell<bool>);
        impl Drop for NotRunning<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _reset = NotRunning(&self.running);

        let mut alive = self.is_alive();
        let mut reading = None;
        while alive && !self.stop_pending() {
            reading = Some(self.run_once(mode, reading));
            alive = self.is_alive();
            if mode != RunMode::Default {
                break;
            }
        }
        self.stop_requested.set(false);
        self.remote.take_stop();
        alive
    }

    /// Runs `main` as the program's first macrotask (draining the microtasks
    /// it queues), then runs the loop until nothing keeps it alive: the shape
    /// of a Node program.
    pub fn run_main(&self, main: impl FnOnce(&Loop)) {
        self.enter(main);
        self.run(RunMode::Default);
    }

    /// Runs `f` as a macrotask on this loop without ticking: the loop is
    /// current inside it, and the microtasks it queues are drained after it.
    pub fn enter<R>(&self, f: impl FnOnce(&Loop) -> R) -> R {
        let _enter = Enter::new(self);
        let previous = self.phase.replace(Phase::Main);
        let start = clock::monotonic_ns();
        self.guard.mark();
        // Not caught even when panics are: there is no value to go on with,
        // and `main`'s panic is the program's own (as in Node).
        let r = f(self);
        self.after_macrotask();
        self.metrics
            .add_phase(Phase::Main, clock::monotonic_ns().saturating_sub(start));
        self.phase.set(previous);
        r
    }

    /// One tick: the phases in libuv's order.
    ///
    /// Each clock reading serves twice: the one that ends a phase starts
    /// the next (only cheap checks run between them), and the last one of
    /// a tick is the next tick's time within the same `run` (`reading`;
    /// the tick returns its own). A clock read costs tens of nanoseconds on
    /// some machines (a virtual time-stamp counter), and a busy server's
    /// tick is mostly one poll: two reads a tick, not four.
    fn run_once(&self, mode: RunMode, reading: Option<u64>) -> u64 {
        let mut now = reading.unwrap_or_else(clock::monotonic_ns);
        self.set_time(now);
        // A phase with nothing to run is skipped without reading the clock
        // for its timing: a busy server's tick is mostly poll, and two clock
        // reads per empty phase would cost more than the phase.
        if self.timers_due() {
            now = self.timed(Phase::Timers, now, || self.run_timers()).1;
        }
        let mut ran_pending = false;
        if !self.pending.borrow().is_empty() {
            (ran_pending, now) = self.timed(Phase::Pending, now, || self.run_pending());
        }
        if self.idle.borrow().slot_count() > 0 {
            now = self
                .timed(Phase::Idle, now, || self.run_hooks(&self.idle))
                .1;
        }
        if self.prepare.borrow().slot_count() > 0 {
            now = self
                .timed(Phase::Prepare, now, || self.run_hooks(&self.prepare))
                .1;
        }
        let timeout = match mode {
            RunMode::NoWait => Some(Duration::ZERO),
            RunMode::Once if ran_pending => Some(Duration::ZERO),
            _ => self.poll_timeout(now),
        };
        now = self.run_poll(timeout, now);
        if !self.immediates.borrow().is_empty() || self.check.borrow().slot_count() > 0 {
            now = self
                .timed(Phase::Check, now, || {
                    self.run_immediates();
                    self.run_hooks(&self.check);
                })
                .1;
        }
        if !self.closing.borrow().is_empty() {
            now = self.timed(Phase::Close, now, || self.run_closing()).1;
        }
        self.metrics.ticks.set(self.metrics.ticks.get() + 1);
        now
    }

    /// A timer is due at the loop time of this tick.
    fn timers_due(&self) -> bool {
        let now = timer_clock(self.now_ns.get());
        self.timers
            .borrow_mut()
            .next_due()
            .is_some_and(|due| due <= now)
    }

    /// Runs a phase that began at the clock reading `start`; returns its
    /// result and the reading that ends it.
    fn timed<R>(&self, phase: Phase, start: u64, f: impl FnOnce() -> R) -> (R, u64) {
        self.phase.set(phase);
        self.guard.mark();
        let r = f();
        let end = clock::monotonic_ns();
        self.metrics.add_phase(phase, end.saturating_sub(start));
        (r, end)
    }

    /// Runs one macrotask and then the microtasks it queued. If panics are
    /// caught and `f` panics, the result is `fallback`.
    #[inline]
    fn macrotask<R>(&self, fallback: R, f: impl FnOnce() -> R) -> R {
        let r = if self.catch_panics.get() {
            // The closure owns nothing the loop reads afterwards: what it
            // leaves half-done is the callback's own state.
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(_) => {
                    self.note_panic();
                    fallback
                }
            }
        } else {
            f()
        };
        self.after_macrotask();
        r
    }

    /// What follows every macrotask: its microtasks, its counts.
    #[inline]
    fn after_macrotask(&self) {
        self.drain_microtasks();
        self.metrics.callbacks.set(self.metrics.callbacks.get() + 1);
        self.guard.after_callback(self.phase.get());
    }

    /// Drains the microtask queues; if panics are caught, a panicking
    /// microtask ends alone and the rest still run now.
    #[inline]
    fn drain_microtasks(&self) {
        if self.microtasks.is_empty() {
            return;
        }
        if self.catch_panics.get() {
            while catch_unwind(AssertUnwindSafe(|| microtasks::drain(self))).is_err() {
                self.note_panic();
                if self.microtasks.is_empty() {
                    break;
                }
            }
        } else {
            microtasks::drain(self);
        }
    }

    #[cold]
    fn note_panic(&self) {
        let count = self.metrics.callback_panics.get() + 1;
        self.metrics.callback_panics.set(count);
        let phase = self.phase.get();
        crate::report!(
            error,
            { phase = ?phase, panics = count },
            "phaseloop: a callback panicked in the {phase:?} phase (panic {count} on this loop); the loop goes on"
        );
    }

    /// Whether a callback that panics only ends itself: the panic (already
    /// printed by the panic hook) is counted in
    /// [`LoopMetrics::callback_panics`], values the callback owned are
    /// dropped (a server's responder answers 500 as it goes), and the loop
    /// goes on with the next callback, as Node does with an
    /// `uncaughtException` handler. Off by default: the panic unwinds out of
    /// [`Loop::run`] and ends the loop, as an uncaught exception ends a Node
    /// program (in a worker, the parent hears of it). A server turns it on
    /// for its loop: a handler's deferred callback must not take every
    /// other connection down with it. `main`'s closure in [`Loop::enter`]
    /// is never caught.
    pub fn set_catch_panics(&self, on: bool) {
        self.catch_panics.set(on);
    }

    /// Sets the loop's cached time to the monotonic clock's reading `at_ns`.
    fn set_time(&self, at_ns: u64) {
        let now = at_ns.saturating_sub(self.epoch_ns);
        self.now_ns.set(now);
        self.now.set(Duration::from_nanos(now));
    }

    fn elapsed_ns(&self) -> u64 {
        clock::monotonic_ns().saturating_sub(self.epoch_ns)
    }

    fn stop_pending(&self) -> bool {
        self.stop_requested.get() || self.remote.stop_requested()
    }

    /// True while anything referenced keeps the loop alive.
    pub fn is_alive(&self) -> bool {
        self.timers.borrow().referenced() > 0
            || self.immediates.borrow().referenced() > 0
            || self.io.borrow().referenced() > 0
            || !self.jobs.borrow().is_empty()
            || self.idle.borrow().referenced() > 0
            || self.prepare.borrow().referenced() > 0
            || self.check.borrow().referenced() > 0
            || !self.pending.borrow().is_empty()
            || !self.closing.borrow().is_empty()
            || self.holds.get() > 0
    }

    /// How long the poll phase may block: not at all when other work is
    /// waiting, until the next timer, or forever when only I/O is alive.
    /// `at_ns` is a fresh monotonic clock reading.
    fn poll_timeout(&self, at_ns: u64) -> Option<Duration> {
        if self.stop_pending()
            || !self.is_alive()
            || !self.pending.borrow().is_empty()
            || !self.immediates.borrow().is_empty()
            || !self.closing.borrow().is_empty()
            || self.idle.borrow().active() > 0
            || self.io.borrow().has_again()
        {
            return Some(Duration::ZERO);
        }
        let due = self.timers.borrow_mut().next_due()?;
        let now = at_ns.saturating_sub(self.epoch_ns);
        // epoll counts whole milliseconds: round up, so the loop never wakes
        // just before a timer and spins.
        let wait_ns = due.saturating_sub(now);
        Some(Duration::from_millis(wait_ns.div_ceil(1_000_000)))
    }

    // ----- timers -----------------------------------------------------------

    fn run_timers(&self) {
        let now = timer_clock(self.now_ns.get());
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            let Some(due) = due else { break };
            // An interval's next run counts from when this one was called
            // (Node takes `getLibuvNow()` before the callback).
            let called = self.elapsed_ns();
            let callback = match due.callback {
                TimerCallback::Once(f) => {
                    self.macrotask((), || f(self));
                    None
                }
                TimerCallback::Repeat(mut f) => {
                    self.macrotask((), || f(self));
                    Some(TimerCallback::Repeat(f))
                }
            };
            self.timers.borrow_mut().finish(due.id, callback, called);
        }
    }

    /// Runs `callback` once, `delay` from now (0 counts as 1 ms), in whole
    /// milliseconds as Node does: no earlier than `delay` less 1 ms (see
    /// the timer contract in `docs/ARCHITECTURE.md`).
    pub fn set_timeout(&self, delay: Duration, callback: impl FnOnce(&Loop) + 'static) -> TimerId {
        let now = self.elapsed_ns();
        self.timers
            .borrow_mut()
            .insert(now, delay, TimerCallback::Once(Box::new(callback)))
    }

    /// Runs `callback` every `period` (0 counts as 1 ms), each run counted
    /// from when the previous one was called (as Node's `setInterval`),
    /// until cleared.
    pub fn set_interval(&self, period: Duration, callback: impl FnMut(&Loop) + 'static) -> TimerId {
        let now = self.elapsed_ns();
        self.timers
            .borrow_mut()
            .insert(now, period, TimerCallback::Repeat(Box::new(callback)))
    }

    /// Cancels a timeout or interval; its callback will not run. Returns false
    /// if it already ran (timeout) or was cleared.
    pub fn clear_timer(&self, id: TimerId) -> bool {
        self.timers.borrow_mut().clear(id)
    }

    /// Restarts a timer's countdown from now with its original delay (Node's
    /// `timeout.refresh()`). Returns false if the timer is gone.
    pub fn refresh_timer(&self, id: TimerId) -> bool {
        let now = self.elapsed_ns();
        self.timers.borrow_mut().refresh(id, now)
    }

    /// Lets the loop exit even though this timer is pending.
    pub fn unref_timer(&self, id: TimerId) -> bool {
        self.timers.borrow_mut().set_referenced(id, false)
    }

    /// Undoes [`Loop::unref_timer`].
    pub fn ref_timer(&self, id: TimerId) -> bool {
        self.timers.borrow_mut().set_referenced(id, true)
    }

    /// Number of timers scheduled.
    pub fn timer_count(&self) -> usize {
        self.timers.borrow().live()
    }

    /// The loop's cached time for this tick, since the loop was created.
    pub fn now(&self) -> Duration {
        self.now.get()
    }

    /// [`Loop::now`] in nanoseconds: for arithmetic on a hot path (a
    /// `Duration` subtraction is a dozen instructions, a `u64` one is one).
    pub fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }

    // ----- pending --------------------------------------------------------

    /// Runs `callback` in the next pending phase: this tick's when deferred
    /// from the timers phase, else the next tick's (libuv's deferred I/O
    /// callbacks: a write retried after EAGAIN, an error reported later).
    pub fn defer(&self, callback: impl FnOnce(&Loop) + 'static) {
        self.pending.borrow_mut().push_back(Box::new(callback));
    }

    fn run_pending(&self) -> bool {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        let ran = !batch.is_empty();
        for callback in batch {
            self.macrotask((), || callback(self));
        }
        ran
    }

    // ----- idle / prepare / check hooks -------------------------------------

    /// Adds a hook that runs every tick in its phase until removed.
    pub fn add_hook(&self, kind: HookKind, callback: impl FnMut(&Loop) + 'static) -> HookId {
        self.hook_list(kind).borrow_mut().add(Box::new(callback))
    }

    /// Removes a hook. Returns false if it was already removed.
    pub fn remove_hook(&self, id: HookId) -> bool {
        self.hook_list(id.kind()).borrow_mut().remove(id)
    }

    /// Lets the loop exit even though this hook is active.
    pub fn unref_hook(&self, id: HookId) -> bool {
        self.hook_list(id.kind())
            .borrow_mut()
            .set_referenced(id, false)
    }

    fn hook_list(&self, kind: HookKind) -> &RefCell<HookList> {
        match kind {
            HookKind::Idle => &self.idle,
            HookKind::Prepare => &self.prepare,
            HookKind::Check => &self.check,
        }
    }

    fn run_hooks(&self, list: &RefCell<HookList>) {
        let count = list.borrow().slot_count();
        for index in 0..count {
            let taken = list.borrow_mut().take(index);
            if let Some((id, mut callback)) = taken {
                self.macrotask((), || callback(self));
                list.borrow_mut().put_back(id, callback);
            }
        }
    }

    // ----- check: immediates ----------------------------------------------

    /// Runs `callback` in the check phase of this tick (or the next one, if
    /// called from the check phase), after I/O callbacks.
    pub fn set_immediate(&self, callback: impl FnOnce(&Loop) + 'static) -> ImmediateId {
        self.immediates.borrow_mut().push(Box::new(callback))
    }

    /// Cancels an immediate. Returns false if it already ran or was cleared.
    pub fn clear_immediate(&self, id: ImmediateId) -> bool {
        self.immediates.borrow_mut().clear(id)
    }

    /// Lets the loop exit even though this immediate is queued.
    pub fn unref_immediate(&self, id: ImmediateId) -> bool {
        self.immediates.borrow_mut().set_referenced(id, false)
    }

    fn run_immediates(&self) {
        let count = self.immediates.borrow().len_at_phase_start();
        for _ in 0..count {
            let next = self.immediates.borrow_mut().pop();
            match next {
                Some(Some(callback)) => self.macrotask((), || callback(self)),
                Some(None) => {} // cleared
                None => break,
            }
        }
    }

    // ----- close --------------------------------------------------------------

    /// Runs `callback` in this tick's close phase (libuv's close callbacks:
    /// the last word of a handle, after its I/O is deregistered).
    pub fn on_close(&self, callback: impl FnOnce(&Loop) + 'static) {
        self.closing.borrow_mut().push_back(Box::new(callback));
    }

    fn run_closing(&self) {
        let batch = std::mem::take(&mut *self.closing.borrow_mut());
        for callback in batch {
            self.macrotask((), || callback(self));
        }
    }

    // ----- microtasks and futures -------------------------------------------

    /// Queues `callback` on the next-tick queue (Node's `process.nextTick`):
    /// it runs right after the current callback, before promise jobs.
    pub fn next_tick(&self, callback: impl FnOnce(&Loop) + 'static) {
        self.microtasks.push_next_tick(Box::new(callback));
    }

    /// Queues `callback` as a promise job (Node's `queueMicrotask` /
    /// `Promise.resolve().then`): after the next-tick queue is empty.
    pub fn queue_microtask(&self, callback: impl FnOnce(&Loop) + 'static) {
        self.microtasks.push_promise_job(Box::new(callback));
    }

    /// Starts a future on this loop as Node calls an async function: its
    /// first poll runs at once, here, before `spawn` returns (the body up to
    /// its first `.await` that must wait), and each later poll runs as a
    /// promise job when it is woken. Futures may be `!Send`. A pending
    /// future does not keep the loop alive by itself (as a pending promise
    /// does not in Node): what it awaits does. A panic in the first poll is
    /// one in a promise job: it ends the future; with
    /// [`Loop::set_catch_panics`] it is counted and the caller goes on, as
    /// a throw before an async function's first `await` rejects its promise
    /// instead of reaching the caller. To start it after the current
    /// macrotask instead, queue the spawn: `lp.queue_microtask(|lp|
    /// lp.spawn(f))`.
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) {
        let (key, id) = self
            .tasks
            .borrow_mut()
            .insert(Box::pin(future), &self.remote);
        if self.catch_panics.get() {
            if catch_unwind(AssertUnwindSafe(|| task::poll_task(self, key, id))).is_err() {
                self.note_panic();
            }
        } else {
            task::poll_task(self, key, id);
        }
    }

    /// [`Loop::spawn`] with a handle to the future's output: JS's
    /// `const p = asyncFn()`. Awaiting the [`Task`] is JS's `await p`: it
    /// resumes one microtask turn after the future completes (or at once
    /// if it never does: `None` when it panicked or the loop dropped it).
    pub fn spawn_task<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Task<T> {
        let (tx, rx) = oneshot::channel();
        self.spawn(async move { tx.send(future.await) });
        Task(rx)
    }

    /// Number of spawned futures not yet finished.
    pub fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    // ----- poll: I/O and the inbox ----------------------------------------

    /// Registers an I/O source; `callback` runs in the poll phase with each
    /// readiness event (see the contract in [`crate::io`]).
    pub fn register_io<S>(
        &self,
        source: &mut S,
        interest: mio::Interest,
        callback: impl FnMut(&Loop, IoEvent) -> IoOutcome + 'static,
    ) -> io::Result<IoToken>
    where
        S: mio::event::Source + ?Sized,
    {
        let token = self
            .io
            .borrow_mut()
            .insert(Box::new(callback) as IoCallback);
        let registered = self
            .poll
            .borrow()
            .registry()
            .register(source, token.token(), interest);
        if let Err(e) = registered {
            self.io.borrow_mut().remove(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Changes the interest of a registered source.
    pub fn reregister_io<S>(
        &self,
        token: IoToken,
        source: &mut S,
        interest: mio::Interest,
    ) -> io::Result<()>
    where
        S: mio::event::Source + ?Sized,
    {
        self.poll
            .borrow()
            .registry()
            .reregister(source, token.token(), interest)
    }

    /// Deregisters a source and drops its callback (also when called from
    /// inside that callback). Pending events for it are discarded.
    pub fn deregister_io<S>(&self, token: IoToken, source: &mut S) -> io::Result<()>
    where
        S: mio::event::Source + ?Sized,
    {
        if !self.io.borrow_mut().remove(token) {
            return Ok(());
        }
        self.poll.borrow().registry().deregister(source)
    }

    /// Lets the loop exit even though this source is registered.
    pub fn unref_io(&self, token: IoToken) -> bool {
        self.io.borrow_mut().set_referenced(token, false)
    }

    /// Undoes [`Loop::unref_io`].
    pub fn ref_io(&self, token: IoToken) -> bool {
        self.io.borrow_mut().set_referenced(token, true)
    }

    /// The poll phase, waiting from the clock reading `wait_start`.
    /// Returns the reading that ends the phase.
    fn run_poll(&self, timeout: Option<Duration>, wait_start: u64) -> u64 {
        self.phase.set(Phase::Poll);
        let woken = {
            let mut events = self.events.borrow_mut();
            match self.poll.borrow_mut().poll(&mut events, timeout) {
                Ok(()) => {}
                // A signal interrupted the wait: it is an empty poll.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
                Err(e) => panic!("epoll_wait failed: {e}"),
            }
            self.io.borrow_mut().collect(&events)
        };
        let start = clock::monotonic_ns();
        // As libuv does after its wait: the callbacks of this poll see the
        // time they run at, not the time the tick began (the wait may have
        // blocked for seconds, and deadlines they set count from now).
        self.set_time(start);
        self.metrics
            .poll_wait_ns
            .set(self.metrics.poll_wait_ns.get() + start.saturating_sub(wait_start));
        self.guard.mark();

        let mut ready = std::mem::take(&mut *self.dispatch.borrow_mut());
        self.io.borrow_mut().take_ready(&mut ready);
        for &(token, event) in &ready {
            self.dispatch_io(token, event);
        }
        ready.clear();
        *self.dispatch.borrow_mut() = ready;

        if woken || self.remote.is_notified() {
            self.drain_inbox();
        }
        let end = clock::monotonic_ns();
        self.metrics
            .add_phase(Phase::Poll, end.saturating_sub(start));
        end
    }

    fn dispatch_io(&self, token: IoToken, event: IoEvent) {
        let callback = self.io.borrow_mut().take_callback(token);
        let Some(mut callback) = callback else {
            return; // deregistered by an earlier callback of this poll
        };
        // A callback that panicked waits for its source's next readiness.
        let outcome = self.macrotask(IoOutcome::Drained, || callback(self, event));
        self.io
            .borrow_mut()
            .put_back(token, callback, outcome, event);
    }

    fn drain_inbox(&self) {
        let mut batch = std::mem::take(&mut *self.inbox.borrow_mut());
        self.remote.take_into(&mut batch);
        for item in batch.drain(..) {
            match item {
                Inbound::Post(callback) => self.macrotask((), || callback(self)),
                Inbound::JobDone { key, result } => {
                    let callback = self.jobs.borrow_mut().try_remove(key);
                    if let Some(callback) = callback {
                        self.macrotask((), || callback(self, result));
                    }
                }
                Inbound::Wake { key, id } => {
                    self.microtasks.push_poll(key, id);
                    self.drain_microtasks();
                }
            }
        }
        *self.inbox.borrow_mut() = batch;
    }

    /// A `Send` handle for other threads: post callbacks, stop the loop.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            remote: self.remote.clone(),
        }
    }

    /// Makes [`Loop::run`] return after the current tick.
    pub fn stop(&self) {
        self.stop_requested.set(true);
    }

    /// Keeps the loop alive until a matching [`Loop::release`] (libuv's
    /// referenced async handle): for work arriving from other threads.
    pub fn hold(&self) {
        self.holds.set(self.holds.get() + 1);
    }

    /// Undoes one [`Loop::hold`].
    pub fn release(&self) {
        self.holds.set(self.holds.get().saturating_sub(1));
    }

    // ----- the thread pool ------------------------------------------------

    /// The pool this loop submits to (the process-wide one unless the builder
    /// named another); started on first use.
    pub fn pool(&self) -> &Pool {
        self.pool.get_or_init(Pool::global)
    }

    /// The pool's statistics, if this loop has used it.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        self.pool.get().map(Pool::stats)
    }

    pub(crate) fn submit_work(
        &self,
        lane: Lane,
        work: crate::pool::Work,
        callback: JobCallback,
    ) -> Result<(), (PoolError, JobCallback)> {
        let key = self.jobs.borrow_mut().insert(callback);
        match self.pool().submit(lane, work, self.remote.clone(), key) {
            Ok(()) => Ok(()),
            // Refused: the caller gets its callback back.
            Err(e) => Err((e, self.jobs.borrow_mut().remove(key))),
        }
    }

    /// Number of pool jobs submitted by this loop and not yet called back.
    pub fn pending_jobs(&self) -> usize {
        self.jobs.borrow().len()
    }

    // ----- metrics and the guard ------------------------------------------

    /// The phase running now.
    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Names the work now running (the server sets the route) so a guard
    /// report can say what held the loop. `None` clears it.
    pub fn set_label(&self, label: Option<Rc<str>>) {
        self.guard.set_label(label);
    }

    /// Calls `hook` with every starvation-guard report.
    pub fn on_block(&self, hook: impl Fn(&crate::guard::BlockReport) + 'static) {
        self.guard.set_hook(Some(Box::new(hook) as BlockHook));
    }

    /// A snapshot of the loop's metrics.
    pub fn metrics(&self) -> LoopMetrics {
        self.metrics
            .snapshot(self.guard.reports(), self.guard.recent())
    }

    /// The loop delay at quantile `q` (0 to 1; `1.0`: the longest), read
    /// in place: what [`Loop::metrics`] gives without copying its
    /// histogram and reports (for figures published every half second).
    pub fn loop_delay_at(&self, q: f64) -> Duration {
        self.metrics.delay_at(q)
    }

    fn start_delay_monitor(&self, resolution: Duration) {
        let expected = Cell::new(Instant::now() + resolution);
        let id = self.set_interval(resolution, move |lp| {
            let fired = Instant::now();
            lp.metrics
                .record_delay(fired.saturating_duration_since(expected.get()));
            expected.set(fired + resolution);
        });
        self.unref_timer(id);
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.remote.close();
        // Drop user callbacks while the loop is still whole: a callback's
        // destructor may touch the loop through `Loop::with_current`.
        let _enter = Enter::new(self);
        let tasks = self.tasks.borrow_mut().clear();
        drop(tasks);
        self.microtasks.clear();
    }
}
