//! The bounded thread pool (libuv's threadpool, with lanes).
//!
//! A fixed set of OS threads runs blocking or CPU-heavy jobs (file system,
//! crypto, DNS, compression) off the loop. A job's result goes back to the
//! loop that submitted it through that loop's inbox, and its callback (or the
//! future awaiting it) runs in the loop's poll phase.
//!
//! # Contract
//! - The queue is bounded: submitting to a full queue fails at once with
//!   [`PoolError::QueueFull`] (the HTTP layer answers 503); nothing waits in an
//!   unbounded backlog.
//! - Lanes (beyond libuv): every job belongs to a [`Lane`]. Each lane may
//!   occupy at most its cap of threads at once, so a flood of slow file or
//!   DNS jobs cannot take every thread and starve crypto (the seed's
//!   "authentication latency skyrockets" pitfall). Each lane also keeps a
//!   share (default one thread) the others cannot take while it is in use
//!   (a job of it queued, running, or finished within [`SHARE_HOLD`]), so a
//!   hash flood cannot starve file reads either: a lane under its share
//!   never waits behind another lane's backlog. A lane past its share
//!   borrows only threads no other busy lane's share needs. Lanes under
//!   their share go first, then the oldest job. Queue-wait time is
//!   recorded per lane.
//! - Waking: each submit signals one sleeping thread, under the lock, as
//!   libuv does. When the woken threads then run is the kernel's choice:
//!   on a machine with fewer cores than busy threads they start at its
//!   scheduler ticks (`pool-waves` measures it beside Node).
//! - A job that panics completes with [`PoolError::Panicked`]; its thread
//!   lives on.
//! - Dropping the last handle to a pool stops its threads after their
//!   current jobs; jobs still queued are dropped.

mod job;

pub mod crypto;
pub mod dns;
pub mod fs;
pub mod zlib;

pub use job::{Job, JobFuture};

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::remote::{Inbound, Remote};

/// Threads in the default pool, as libuv's `UV_THREADPOOL_SIZE` default.
pub const DEFAULT_THREADS: usize = 4;

/// The environment variable that sizes the default pool.
pub const THREADS_ENV: &str = "PHASELOOP_THREADPOOL_SIZE";

/// Threads each lane keeps while it is in use: one, so that no lane's
/// next job waits behind another lane's backlog, and a hash flood loses at
/// most a thread per other busy lane.
pub const DEFAULT_LANE_SHARE: usize = 1;

/// How long a lane's share stays kept after its last job was queued or
/// finished: a lane serving a steady trickle (a file read per request)
/// keeps its thread between jobs instead of finding it taken each time.
pub const SHARE_HOLD: Duration = Duration::from_millis(100);

/// Most threads a pool may have (libuv's cap is 1024 too).
pub const MAX_THREADS: usize = 1024;

/// Jobs that may wait in the default pool's queue before submissions fail:
/// deep enough to absorb a burst, small enough that a job never waits behind
/// minutes of work.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// How many times an idle pool thread yields the CPU, checking for new work,
/// before it blocks.
const IDLE_SPINS: usize = 16;

/// The class of a job; each class has its own concurrency cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// File-system calls (can be slow on a busy or network disk).
    Fs,
    /// Name resolution (can hang for seconds on a bad resolver).
    Dns,
    /// Hashing, key derivation, random bytes.
    Crypto,
    /// gzip and gunzip.
    Compression,
    /// Any other CPU-bound work submitted by the application.
    Cpu,
}

impl Lane {
    /// Every lane, in index order.
    pub const ALL: [Lane; 5] = [
        Lane::Fs,
        Lane::Dns,
        Lane::Crypto,
        Lane::Compression,
        Lane::Cpu,
    ];

    /// A short lower-case name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Fs => "fs",
            Lane::Dns => "dns",
            Lane::Crypto => "crypto",
            Lane::Compression => "compression",
            Lane::Cpu => "cpu",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The default cap for a pool of `threads`: slow I/O lanes get a part,
    /// CPU lanes may use every thread.
    fn default_cap(self, threads: usize) -> usize {
        match self {
            Lane::Fs => (threads / 2).max(1),
            Lane::Dns => (threads / 4).max(1),
            Lane::Crypto | Lane::Compression | Lane::Cpu => threads,
        }
    }
}

/// Why a job did not produce its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The pool's queue was full: retry later (HTTP 503).
    QueueFull,
    /// The job panicked; the message is the panic's.
    Panicked(String),
    /// A job future was polled outside any running loop.
    NoLoop,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::QueueFull => f.write_str("thread pool queue is full"),
            PoolError::Panicked(msg) => write!(f, "thread pool job panicked: {msg}"),
            PoolError::NoLoop => f.write_str("job future polled outside a phaseloop loop"),
        }
    }
}

impl std::error::Error for PoolError {}

/// Builds a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    threads: usize,
    queue_capacity: usize,
    caps: [Option<usize>; 5],
    shares: [Option<usize>; 5],
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolBuilder {
    /// A builder with [`DEFAULT_THREADS`] threads and [`DEFAULT_QUEUE_CAPACITY`].
    pub fn new() -> Self {
        PoolBuilder {
            threads: DEFAULT_THREADS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            caps: [None; 5],
            shares: [None; 5],
        }
    }

    /// A builder sized from `PHASELOOP_THREADPOOL_SIZE` when it is set to a
    /// number from 1 to [`MAX_THREADS`], else the default.
    pub fn from_env() -> Self {
        let mut b = Self::new();
        if let Some(n) = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=MAX_THREADS).contains(n))
        {
            b.threads = n;
        }
        b
    }

    /// Number of threads (clamped to 1..=[`MAX_THREADS`]).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, MAX_THREADS);
        self
    }

    /// How many jobs may wait before submissions fail (at least 1).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Most threads `lane` may occupy at once (clamped to 1..=threads).
    pub fn lane_cap(mut self, lane: Lane, cap: usize) -> Self {
        self.caps[lane.index()] = Some(cap);
        self
    }

    /// Threads kept for `lane` while it is in use, which other lanes may
    /// not borrow (default [`DEFAULT_LANE_SHARE`]; clamped to its cap; 0
    /// keeps none).
    pub fn lane_share(mut self, lane: Lane, share: usize) -> Self {
        self.shares[lane.index()] = Some(share);
        self
    }

    /// Starts the threads.
    pub fn build(self) -> Pool {
        let threads = self.threads;
        let caps = Lane::ALL.map(|lane| {
            self.caps[lane.index()]
                .unwrap_or_else(|| lane.default_cap(threads))
                .clamp(1, threads)
        });
        let shares = Lane::ALL.map(|lane| {
            self.shares[lane.index()]
                .unwrap_or(DEFAULT_LANE_SHARE)
                .min(caps[lane.index()])
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lanes: Lane::ALL.map(|_| LaneQueue::new()),
                sleepers: 0,
                running: 0,
                queued: 0,
                next_seq: 0,
                shutdown: false,
                rejected: 0,
            }),
            work: Condvar::new(),
            queued_hint: AtomicUsize::new(0),
            caps,
            shares,
            threads,
            capacity: self.queue_capacity,
        });
        let handles = (0..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("phaseloop-pool-{i}"))
                    .spawn(move || shared.work_loop())
                    .expect("spawning a thread-pool thread")
            })
            .collect();
        Pool {
            inner: Arc::new(PoolOwner {
                shared,
                threads: Mutex::new(handles),
                size: threads,
            }),
        }
    }
}

/// A handle to a thread pool. Clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolOwner>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.inner.size)
            .finish_non_exhaustive()
    }
}

struct PoolOwner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    size: usize,
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let me = std::thread::current().id();
        for t in threads {
            // A pool dropped by one of its own jobs cannot join itself.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

pub(crate) type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

struct QueuedJob {
    seq: u64,
    enqueued: Instant,
    work: Work,
    remote: Arc<Remote>,
    key: usize,
}

struct LaneQueue {
    jobs: VecDeque<QueuedJob>,
    running: usize,
    /// The last submit or completion of one of its jobs.
    last_active: Option<Instant>,
    completed: u64,
    panicked: u64,
    wait_ns: Histogram<u64>,
}

/// Longest queue wait the histograms track (larger values are clamped).
const WAIT_HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

impl LaneQueue {
    fn new() -> Self {
        LaneQueue {
            jobs: VecDeque::new(),
            running: 0,
            last_active: None,
            completed: 0,
            panicked: 0,
            wait_ns: Histogram::new_with_bounds(1_000, WAIT_HISTOGRAM_MAX_NS, 2)
                .expect("static histogram bounds are valid"),
        }
    }
}

struct State {
    lanes: [LaneQueue; 5],
    /// Threads blocked on the condvar: submit skips the wake-up syscall when
    /// none sleeps.
    sleepers: usize,
    /// Jobs running, all lanes.
    running: usize,
    queued: usize,
    next_seq: u64,
    shutdown: bool,
    rejected: u64,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    /// Jobs queued (mirrors `State::queued`) so idle threads can spin on it
    /// without the lock.
    queued_hint: AtomicUsize,
    caps: [usize; 5],
    shares: [usize; 5],
    threads: usize,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock only means a panic in
        // our own bookkeeping; the state is still consistent enough to go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lane whose front job may start now, if any: lanes under their
    /// share first, then lanes that may borrow a thread no other busy
    /// lane's share needs; the oldest job among them.
    fn runnable_lane(&self, state: &State, now: Instant) -> Option<usize> {
        let in_use = |lane: &LaneQueue| {
            !lane.jobs.is_empty()
                || lane.running > 0
                || lane
                    .last_active
                    .is_some_and(|t| now.saturating_duration_since(t) < SHARE_HOLD)
        };
        // Threads the busy lanes' unused shares keep free.
        let kept: usize = state
            .lanes
            .iter()
            .zip(self.shares)
            .filter(|(lane, _)| in_use(lane))
            .map(|(lane, share)| share.saturating_sub(lane.running))
            .sum();
        let free = self.threads.saturating_sub(state.running);
        let mut best: Option<(bool, u64, usize)> = None;
        for (i, lane) in state.lanes.iter().enumerate() {
            let Some(front) = lane.jobs.front() else {
                continue;
            };
            if lane.running >= self.caps[i] {
                continue;
            }
            let own = lane.running < self.shares[i];
            // Borrowing: one thread taken, the others' kept ones still free.
            let others_kept = kept - self.shares[i].saturating_sub(lane.running);
            if !own && free <= others_kept {
                continue;
            }
            let better = match best {
                None => true,
                Some((best_own, seq, _)) => {
                    (own && !best_own) || (own == best_own && front.seq < seq)
                }
            };
            if better {
                best = Some((own, front.seq, i));
            }
        }
        best.map(|(_, _, i)| i)
    }

    /// Takes the front job of the lane [`Shared::runnable_lane`] names.
    fn next_runnable(&self, state: &mut State) -> Option<(usize, QueuedJob)> {
        let now = Instant::now();
        let i = self.runnable_lane(state, now)?;
        let lane = &mut state.lanes[i];
        let job = lane.jobs.pop_front()?;
        lane.running += 1;
        lane.last_active = Some(now);
        state.running += 1;
        state.queued -= 1;
        self.queued_hint.store(state.queued, Ordering::Relaxed);
        let waited = now.saturating_duration_since(job.enqueued).as_nanos() as u64;
        lane.wait_ns
            .saturating_record(waited.clamp(1_000, WAIT_HISTOGRAM_MAX_NS));
        Some((i, job))
    }

    fn work_loop(&self) {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return;
            }
            let Some((lane, job)) = self.next_runnable(&mut state) else {
                if state.queued > 0 {
                    // Jobs wait only for a share kept for a lane in use:
                    // look again when that keeping may have lapsed.
                    state.sleepers += 1;
                    state = self
                        .work
                        .wait_timeout(state, SHARE_HOLD)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    state.sleepers -= 1;
                    continue;
                }
                // Before sleeping, yield the CPU a few times: a loop that
                // submits its next job right after a completion (a request
                // handler chaining pool calls) then finds a thread awake,
                // saving a futex wake-up and a context switch.
                drop(state);
                for _ in 0..IDLE_SPINS {
                    std::thread::yield_now();
                    if self.queued_hint.load(Ordering::Relaxed) > 0 {
                        break;
                    }
                }
                state = self.lock();
                if state.shutdown || state.queued > 0 {
                    continue;
                }
                state.sleepers += 1;
                state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                state.sleepers -= 1;
                continue;
            };
            drop(state);
            let QueuedJob {
                work, remote, key, ..
            } = job;
            let result = catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                PoolError::Panicked(msg)
            });
            let panicked = result.is_err();
            state = self.lock();
            state.running -= 1;
            let lane = &mut state.lanes[lane];
            lane.running -= 1;
            lane.completed += 1;
            lane.last_active = Some(Instant::now());
            if panicked {
                lane.panicked += 1;
            }
            // Counted before the loop hears of it, so a callback that reads
            // the pool's stats sees its own job done. Sent without the lock.
            drop(state);
            remote.send(Inbound::JobDone { key, result });
            state = self.lock();
        }
    }
}

/// A snapshot of one lane.
#[derive(Debug, Clone)]
pub struct LaneStats {
    /// Which lane.
    pub lane: Lane,
    /// Most threads it may occupy.
    pub cap: usize,
    /// Threads kept for it while it is in use.
    pub share: usize,
    /// Jobs waiting.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs finished (including panicked ones).
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Time jobs waited in the queue, in nanoseconds.
    pub queue_wait_ns: Histogram<u64>,
}

/// A snapshot of a pool.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Number of threads.
    pub threads: usize,
    /// Queue capacity (all lanes together).
    pub capacity: usize,
    /// Submissions refused because the queue was full.
    pub rejected: u64,
    /// Per-lane figures.
    pub lanes: Vec<LaneStats>,
}

impl Pool {
    /// A new pool with `threads` threads and default settings.
    pub fn new(threads: usize) -> Pool {
        PoolBuilder::new().threads(threads).build()
    }

    /// A builder for a pool with non-default settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The process-wide default pool, started on first use and sized from
    /// `PHASELOOP_THREADPOOL_SIZE` (default 4), like libuv's.
    pub fn global() -> Pool {
        static GLOBAL: OnceLock<Pool> = OnceLock::new();
        GLOBAL
            .get_or_init(|| PoolBuilder::from_env().build())
            .clone()
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.inner.size
    }

    pub(crate) fn submit(
        &self,
        lane: Lane,
        work: Work,
        remote: Arc<Remote>,
        key: usize,
    ) -> Result<(), PoolError> {
        let shared = &self.inner.shared;
        let mut state = shared.lock();
        if state.queued >= shared.capacity {
            state.rejected += 1;
            return Err(PoolError::QueueFull);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queued += 1;
        shared.queued_hint.store(state.queued, Ordering::Relaxed);
        let now = Instant::now();
        let queue = &mut state.lanes[lane.index()];
        queue.last_active = Some(now);
        queue.jobs.push_back(QueuedJob {
            seq,
            enqueued: now,
            work,
            remote,
            key,
        });
        // Signalled under the lock, as libuv does: the woken thread finds
        // the job however the scheduler orders the two threads.
        if state.sleepers > 0 {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Queue depths, caps, counters and queue-wait histograms.
    pub fn stats(&self) -> PoolStats {
        let shared = &self.inner.shared;
        let state = shared.lock();
        PoolStats {
            threads: self.inner.size,
            capacity: shared.capacity,
            rejected: state.rejected,
            lanes: Lane::ALL
                .iter()
                .map(|&lane| {
                    let q = &state.lanes[lane.index()];
                    LaneStats {
                        lane,
                        cap: shared.caps[lane.index()],
                        share: shared.shares[lane.index()],
                        queued: q.jobs.len(),
                        running: q.running,
                        completed: q.completed,
                        panicked: q.panicked,
                        queue_wait_ns: q.wait_ns.clone(),
                    }
                })
                .collect(),
        }
    }
}

impl PoolStats {
    /// The figures of one lane.
    pub fn lane(&self, lane: Lane) -> &LaneStats {
        &self.lanes[lane.index()]
    }

    /// Jobs waiting in all lanes.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(|l| l.queued).sum()
    }
}

impl LaneStats {
    /// Queue wait at quantile `q` (0.0..=1.0).
    pub fn wait_at(&self, q: f64) -> Duration {
        Duration::from_nanos(self.queue_wait_ns.value_at_quantile(q))
    }
}
