//! The connection pool (the seed's `pg.Pool`): up to `max` connections
//! per loop, idle ones kept for `idle_timeout`, callers waiting in a
//! bounded queue for at most `acquire_timeout`, broken connections
//! dropped and replaced, and a connection handed back in a bad state
//! (a transaction left open, statements still queued) settled first:
//! its queue drained, an open transaction rolled back, never handed to
//! the next caller as it was.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::rc::{Rc, Weak};
use std::time::Duration;

use hdrhistogram::Histogram;
use phaseloop_core::{oneshot, Loop, TimerId};

use super::connection::{self, OpenOptions, Outcome, Shared, Submit};
use super::row::Row;
use super::types::{ToSql, Value};
use super::{ConnectConfig, PgError, PoolConfig};

/// The statement methods [`Pool`] and [`PooledConn`] share, each over its
/// own `run` (`$on` says where the statement runs, for the docs).
macro_rules! statement_methods {
    ($on:literal) => {
        #[doc = concat!("Runs one statement ", $on, "; its rows.")]
        pub fn query(
            &self,
            sql: &str,
            params: &[&dyn ToSql],
        ) -> impl Future<Output = Result<Vec<Row>, PgError>> + 'static {
            let outcome = self.run(Submit::Query {
                sql: sql.into(),
                params: values(params),
            });
            async move { outcome.await.map(|o| o.rows) }
        }

        #[doc = concat!("Runs one statement ", $on, "; its one row (an error if it returns none or more).")]
        pub fn query_one(
            &self,
            sql: &str,
            params: &[&dyn ToSql],
        ) -> impl Future<Output = Result<Row, PgError>> + 'static {
            let rows = self.query(sql, params);
            async move { one(rows.await?) }
        }

        #[doc = concat!("Runs one statement ", $on, "; its row if it returns one (more is an error).")]
        pub fn query_opt(
            &self,
            sql: &str,
            params: &[&dyn ToSql],
        ) -> impl Future<Output = Result<Option<Row>, PgError>> + 'static {
            let rows = self.query(sql, params);
            async move { at_most_one(rows.await?) }
        }

        #[doc = concat!("Runs one statement ", $on, "; how many rows it affected.")]
        pub fn execute(
            &self,
            sql: &str,
            params: &[&dyn ToSql],
        ) -> impl Future<Output = Result<u64, PgError>> + 'static {
            let outcome = self.run(Submit::Query {
                sql: sql.into(),
                params: values(params),
            });
            async move { outcome.await.map(|o| o.affected) }
        }

        #[doc = concat!("Runs `sql` through the simple protocol ", $on, " (several statements, no parameters: scripts and migrations); the rows of its statements, their values as text.")]
        pub fn simple_query(
            &self,
            sql: &str,
        ) -> impl Future<Output = Result<Vec<Row>, PgError>> + 'static {
            let outcome = self.run(Submit::Simple(sql.to_owned()));
            async move { outcome.await.map(|o| o.rows) }
        }
    };
}

type Give = Box<dyn FnOnce(&Loop, Result<PooledConn, PgError>)>;

struct Waiter {
    id: u64,
    since_ns: u64,
    timer: Option<TimerId>,
    give: Give,
}

/// What the pool has counted (shared with its connections' recorders).
struct Figures {
    connects: u64,
    connect_errors: u64,
    acquired: u64,
    acquire_timeouts: u64,
    refused: u64,
    broken: u64,
    queries: u64,
    errors_by_class: BTreeMap<String, u64>,
    wait_us: Histogram<u64>,
    query_us: Histogram<u64>,
}

impl Figures {
    fn new() -> Figures {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds");
        Figures {
            connects: 0,
            connect_errors: 0,
            acquired: 0,
            acquire_timeouts: 0,
            refused: 0,
            broken: 0,
            queries: 0,
            errors_by_class: BTreeMap::new(),
            wait_us: histogram(),
            query_us: histogram(),
        }
    }
}

pub(crate) struct PoolInner {
    cfg: PoolConfig,
    connect: Rc<ConnectConfig>,
    /// Idle connections and when each became idle (the last is the most
    /// recent: reused first, so the oldest time out).
    idle: Vec<(Shared, u64)>,
    /// Open or opening.
    total: usize,
    connecting: usize,
    in_use: usize,
    /// Handed back, settling (draining, rolling back) before idling.
    settling: Vec<u64>,
    waiters: VecDeque<Waiter>,
    next_id: u64,
    sweeper: Option<TimerId>,
    figures: Rc<RefCell<Figures>>,
    /// The loop it was first used on (its address).
    home: usize,
}

/// A pool of PostgreSQL connections on one loop; clones share it. Make
/// one per loop (each loop of a cluster or worker has its own, so `max`
/// adds up: N loops open up to N × `max` connections).
#[derive(Clone)]
pub struct Pool {
    inner: Rc<RefCell<PoolInner>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.inner.borrow();
        f.debug_struct("Pool")
            .field("total", &p.total)
            .field("idle", &p.idle.len())
            .field("waiting", &p.waiters.len())
            .finish()
    }
}

/// A duration distribution's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSummary {
    /// How many were recorded.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The longest.
    pub max: Duration,
}

impl TimeSummary {
    fn of(h: &Histogram<u64>) -> TimeSummary {
        let us = Duration::from_micros;
        TimeSummary {
            count: h.len(),
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
        }
    }
}

/// The pool's state and what it has counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open or opening.
    pub total: usize,
    /// Connections waiting for a caller.
    pub idle: usize,
    /// Connections checked out (or settling after their return).
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Connections opened.
    pub connects: u64,
    /// Connects that failed (refused, timed out, authentication).
    pub connect_errors: u64,
    /// Connections handed to callers.
    pub acquired: u64,
    /// Callers that waited the whole acquire timeout.
    pub acquire_timeouts: u64,
    /// Callers refused at once: the wait queue was full.
    pub refused: u64,
    /// Connections found broken and dropped.
    pub broken: u64,
    /// Statements answered (or failed).
    pub queries: u64,
    /// Failed statements by SQLSTATE class (the code's first two
    /// characters: `23` integrity, `57` operator intervention ...).
    pub errors_by_class: Vec<(String, u64)>,
    /// How long callers waited for a connection.
    pub wait_time: TimeSummary,
    /// How long statements took, queued to answered.
    pub query_time: TimeSummary,
}

/// The pool's time distributions, whole (for a metrics exporter:
/// `phaseloop::metrics::ExtraHistogram` takes them with `unit: 1e-6`).
#[derive(Debug, Clone)]
pub struct PoolHistograms {
    /// How long callers waited for a connection, microseconds.
    pub wait_us: Histogram<u64>,
    /// How long statements took, queued to answered, microseconds.
    pub query_us: Histogram<u64>,
}

/// A connection checked out of the pool; it goes back when dropped
/// (settled first if it holds a transaction or queued statements).
/// Statements on one connection run in the order they are called, and
/// are pipelined: call several before awaiting any.
pub struct PooledConn {
    conn: Shared,
    pool: Weak<RefCell<PoolInner>>,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("id", &self.conn.borrow().id)
            .finish()
    }
}

/// A callback-style call made awaitable: `start` runs now, on the loop of
/// this thread, with the callback that settles the future.
fn awaited<T: 'static>(
    start: impl FnOnce(&Loop, Box<dyn FnOnce(&Loop, Result<T, PgError>)>),
) -> Settling<T> {
    let (tx, rx) = oneshot::channel();
    let started = Loop::with_current(|lp| start(lp, Box::new(move |_, r| tx.send(r))));
    Settling {
        started: started.is_some(),
        rx,
    }
}

/// The future [`awaited`] returns: the call's result once its callback ran.
struct Settling<T> {
    started: bool,
    rx: oneshot::Receiver<Result<T, PgError>>,
}

impl<T> Future for Settling<T> {
    type Output = Result<T, PgError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if !self.started {
            return Poll::Ready(Err(PgError::Config("no loop runs on this thread".into())));
        }
        match std::pin::Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => {
                Poll::Ready(Err(PgError::Closed("the loop dropped the call".into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Converts the caller's parameters into owned values (they may wait
/// in the connection's queue).
fn values(params: &[&dyn ToSql]) -> Vec<Value> {
    params.iter().map(|p| p.to_value()).collect()
}

impl Pool {
    /// A pool with `cfg`'s limits; no connection opens until one is asked for.
    pub fn new(cfg: PoolConfig) -> Pool {
        let connect = Rc::new(cfg.connect.clone());
        Pool {
            inner: Rc::new(RefCell::new(PoolInner {
                cfg,
                connect,
                idle: Vec::new(),
                total: 0,
                connecting: 0,
                in_use: 0,
                settling: Vec::new(),
                waiters: VecDeque::new(),
                next_id: 0,
                sweeper: None,
                figures: Rc::new(RefCell::new(Figures::new())),
                home: 0,
            })),
        }
    }

    /// A pool with the seed's defaults for the database at `url`.
    pub fn connect(url: &str) -> Result<Pool, PgError> {
        PoolConfig::new(url).map(Pool::new)
    }

    /// The pool's settings.
    pub fn config(&self) -> PoolConfig {
        self.inner.borrow().cfg.clone()
    }

    /// Where and how its connections connect (shared, not copied), and
    /// their connect timeout: what a connection of its own outside the
    /// pool (a listener's) is opened with.
    pub(crate) fn connect_settings(&self) -> (Rc<ConnectConfig>, Duration) {
        let p = self.inner.borrow();
        (p.connect.clone(), p.cfg.connect_timeout)
    }

    /// Checks a connection out; `done` gets it (or the pool's typed
    /// refusal: [`PgError::PoolFull`], [`PgError::PoolTimeout`], or why a
    /// new connection could not be made), on this loop, never during
    /// this call.
    pub fn get(&self, lp: &Loop, done: impl FnOnce(&Loop, Result<PooledConn, PgError>) + 'static) {
        acquire(&self.inner, lp, Box::new(done), true);
    }

    /// Checks a connection out, awaited.
    pub fn connection(&self) -> impl Future<Output = Result<PooledConn, PgError>> + 'static {
        let inner = &self.inner;
        awaited(move |lp, done| acquire(inner, lp, done, false))
    }

    statement_methods!("on a connection of the pool (checked out for it, then back)");

    /// Runs one statement, Node style: `done` gets the rows or the error.
    pub fn query_with(
        &self,
        lp: &Loop,
        sql: &str,
        params: &[&dyn ToSql],
        done: impl FnOnce(&Loop, Result<Vec<Row>, PgError>) + 'static,
    ) {
        let kind = Submit::Query {
            sql: sql.into(),
            params: values(params),
        };
        self.get(lp, move |lp, conn| match conn {
            Ok(conn) => {
                let shared = conn.conn.clone();
                connection::submit(
                    &shared,
                    lp,
                    kind,
                    Box::new(move |lp, result| {
                        drop(conn);
                        done(lp, result.map(|o| o.rows))
                    }),
                );
            }
            Err(e) => done(lp, Err(e)),
        });
    }

    /// Checks a connection out and begins a transaction on it.
    pub fn transaction(&self) -> impl Future<Output = Result<Transaction, PgError>> + 'static {
        let conn = self.connection();
        async move { conn.await?.transaction().await }
    }

    fn run(&self, kind: Submit) -> impl Future<Output = Result<Outcome, PgError>> + 'static {
        let conn = self.connection();
        async move {
            let conn = conn.await?;
            conn.run(kind).await
        }
    }

    /// The pool's state and figures now.
    pub fn stats(&self) -> PoolStats {
        let p = self.inner.borrow();
        let f = p.figures.borrow();
        PoolStats {
            total: p.total,
            idle: p.idle.len(),
            in_use: p.in_use,
            waiting: p.waiters.len(),
            connects: f.connects,
            connect_errors: f.connect_errors,
            acquired: f.acquired,
            acquire_timeouts: f.acquire_timeouts,
            refused: f.refused,
            broken: f.broken,
            queries: f.queries,
            errors_by_class: f
                .errors_by_class
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            wait_time: TimeSummary::of(&f.wait_us),
            query_time: TimeSummary::of(&f.query_us),
        }
    }

    /// The wait and query time histograms (a copy).
    pub fn histograms(&self) -> PoolHistograms {
        let p = self.inner.borrow();
        let f = p.figures.borrow();
        PoolHistograms {
            wait_us: f.wait_us.clone(),
            query_us: f.query_us.clone(),
        }
    }

    /// Closes every idle connection now (a drain before shutdown).
    pub fn close_idle(&self, lp: &Loop) {
        let idle = {
            let mut p = self.inner.borrow_mut();
            let idle = std::mem::take(&mut p.idle);
            p.total -= idle.len();
            idle
        };
        for (conn, _) in idle {
            connection::close(&conn, lp, "the pool closed it");
        }
    }
}

fn one(mut rows: Vec<Row>) -> Result<Row, PgError> {
    match rows.len() {
        1 => Ok(rows.remove(0)),
        n => Err(PgError::Conversion(format!(
            "one row expected, {n} returned"
        ))),
    }
}

fn at_most_one(mut rows: Vec<Row>) -> Result<Option<Row>, PgError> {
    match rows.len() {
        0 => Ok(None),
        1 => Ok(Some(rows.remove(0))),
        n => Err(PgError::Conversion(format!(
            "at most one row expected, {n} returned"
        ))),
    }
}

/// Hands a connection to `give`: an idle one at once, else a waiter's
/// place (opening a connection if `max` allows). `deferred`: `give`
/// must not run during this call.
fn acquire(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, give: Give, deferred: bool) {
    let mut p = inner.borrow_mut();
    let here = lp as *const Loop as usize;
    if p.home == 0 {
        p.home = here;
    } else if p.home != here {
        drop(p);
        let e = PgError::Config(
            "a pool belongs to the loop it was first used on: make one per loop".into(),
        );
        lp.next_tick(move |lp| give(lp, Err(e)));
        return;
    }
    if let Some((conn, _)) = p.idle.pop() {
        p.in_use += 1;
        {
            let mut f = p.figures.borrow_mut();
            f.acquired += 1;
            let _ = f.wait_us.record(1);
        }
        drop(p);
        connection::set_referenced(&conn, lp, true);
        let conn = PooledConn {
            conn,
            pool: Rc::downgrade(inner),
        };
        if deferred {
            lp.next_tick(move |lp| give(lp, Ok(conn)));
        } else {
            give(lp, Ok(conn));
        }
        return;
    }
    if p.waiters.len() >= p.cfg.max_waiting {
        p.figures.borrow_mut().refused += 1;
        drop(p);
        lp.next_tick(move |lp| give(lp, Err(PgError::PoolFull)));
        return;
    }
    let id = p.next_id;
    p.next_id += 1;
    let limit = p.cfg.acquire_timeout;
    let weak = Rc::downgrade(inner);
    let timer = lp.set_timeout(limit, move |lp| {
        let Some(inner) = weak.upgrade() else { return };
        let waiter = {
            let mut p = inner.borrow_mut();
            let at = p.waiters.iter().position(|w| w.id == id);
            let w = at.and_then(|i| p.waiters.remove(i));
            if w.is_some() {
                p.figures.borrow_mut().acquire_timeouts += 1;
            }
            w
        };
        if let Some(w) = waiter {
            (w.give)(lp, Err(PgError::PoolTimeout(limit)));
        }
    });
    p.waiters.push_back(Waiter {
        id,
        since_ns: lp.now_ns(),
        timer: Some(timer),
        give,
    });
    drop(p);
    open_if_needed(inner, lp);
}

/// Opens a connection if a caller waits with none on its way and `max`
/// allows one more (after a caller queued, or a connection left the pool).
fn open_if_needed(inner: &Rc<RefCell<PoolInner>>, lp: &Loop) {
    let needed = {
        let p = inner.borrow();
        p.total < p.cfg.max && p.connecting < p.waiters.len()
    };
    if needed {
        open_one(inner, lp);
    }
}

/// Opens one more connection; it serves the first waiter when ready.
fn open_one(inner: &Rc<RefCell<PoolInner>>, lp: &Loop) {
    let opts = {
        let mut p = inner.borrow_mut();
        p.total += 1;
        p.connecting += 1;
        p.next_id += 1;
        let figures = Rc::downgrade(&p.figures);
        let recorder: connection::Recorder = Rc::new(move |ns, code| {
            if let Some(f) = figures.upgrade() {
                let mut f = f.borrow_mut();
                f.queries += 1;
                let _ = f.query_us.record((ns / 1000).max(1));
                if let Some(code) = code {
                    let class = code.get(..2).unwrap_or(code).to_owned();
                    *f.errors_by_class.entry(class).or_insert(0) += 1;
                }
            }
        });
        OpenOptions {
            id: p.next_id,
            cfg: p.connect.clone(),
            connect_timeout: p.cfg.connect_timeout,
            statement_timeout: p.cfg.statement_timeout,
            statement_cap: p.cfg.statement_cache,
            recorder: Some(recorder),
        }
    };
    let weak = Rc::downgrade(inner);
    connection::open(lp, opts, move |lp, result| {
        let Some(inner) = weak.upgrade() else {
            if let Ok(conn) = result {
                connection::close(&conn, lp, "the pool is gone");
            }
            return;
        };
        {
            let mut p = inner.borrow_mut();
            p.connecting -= 1;
            let mut f = p.figures.borrow_mut();
            match &result {
                Ok(_) => f.connects += 1,
                Err(_) => f.connect_errors += 1,
            }
        }
        match result {
            Ok(conn) => {
                let hook_pool = weak.clone();
                let id = conn.borrow().id;
                conn.borrow_mut().on_broken = Some(Box::new(move |lp| {
                    if let Some(inner) = hook_pool.upgrade() {
                        broke(&inner, lp, id);
                    }
                }));
                hand_over(&inner, lp, conn);
            }
            Err(e) => {
                let waiter = {
                    let mut p = inner.borrow_mut();
                    p.total -= 1;
                    p.waiters.pop_front()
                };
                if let Some(mut w) = waiter {
                    if let Some(t) = w.timer.take() {
                        lp.clear_timer(t);
                    }
                    (w.give)(lp, Err(e));
                }
            }
        }
    });
}

/// A settled connection goes to the first waiter, or idles.
fn hand_over(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, conn: Shared) {
    let mut p = inner.borrow_mut();
    match p.waiters.pop_front() {
        Some(mut w) => {
            p.in_use += 1;
            {
                let mut f = p.figures.borrow_mut();
                f.acquired += 1;
                let waited = lp.now_ns().saturating_sub(w.since_ns) / 1000;
                let _ = f.wait_us.record(waited.max(1));
            }
            drop(p);
            if let Some(t) = w.timer.take() {
                lp.clear_timer(t);
            }
            connection::set_referenced(&conn, lp, true);
            let conn = PooledConn {
                conn,
                pool: Rc::downgrade(inner),
            };
            (w.give)(lp, Ok(conn));
        }
        None => {
            p.idle.push((conn.clone(), lp.now_ns()));
            let sweep = p.sweeper.is_none();
            let every = (p.cfg.idle_timeout / 4).max(Duration::from_millis(10));
            drop(p);
            // An idle pool does not keep the loop alive.
            connection::set_referenced(&conn, lp, false);
            if sweep {
                start_sweeper(inner, lp, every);
            }
        }
    }
}

/// Closes idle connections past the idle timeout, a few times per
/// timeout (one unreferenced interval per pool, not a timer each).
fn start_sweeper(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, every: Duration) {
    let weak = Rc::downgrade(inner);
    let me: Rc<Cell<Option<TimerId>>> = Rc::new(Cell::new(None));
    let me_inside = me.clone();
    let id = lp.set_interval(every, move |lp| {
        let Some(inner) = weak.upgrade() else {
            if let Some(id) = me_inside.take() {
                lp.clear_timer(id);
            }
            return;
        };
        let expired = {
            let mut p = inner.borrow_mut();
            let limit = u64::try_from(p.cfg.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
            let now = lp.now_ns();
            let mut expired = Vec::new();
            p.idle.retain(|(conn, since)| {
                let keep = now.saturating_sub(*since) < limit;
                if !keep {
                    expired.push(conn.clone());
                }
                keep
            });
            p.total -= expired.len();
            expired
        };
        for conn in expired {
            connection::close(&conn, lp, "idle past the pool's idle timeout");
        }
    });
    lp.unref_timer(id);
    me.set(Some(id));
    inner.borrow_mut().sweeper = Some(id);
}

/// A connection broke while idle or settling: it leaves the pool, and a
/// waiter, if any, gets a new one.
fn broke(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, id: u64) {
    {
        let mut p = inner.borrow_mut();
        let idle_at = p.idle.iter().position(|(c, _)| c.borrow().id == id);
        let settling_at = p.settling.iter().position(|&s| s == id);
        if let Some(i) = idle_at {
            p.idle.remove(i);
            p.total -= 1;
            p.figures.borrow_mut().broken += 1;
        } else if let Some(i) = settling_at {
            p.settling.remove(i);
            p.total -= 1;
            p.in_use -= 1;
            p.figures.borrow_mut().broken += 1;
        }
        // (A checked-out connection is counted out when it is dropped.)
    }
    open_if_needed(inner, lp);
}

/// A connection came back from its user.
fn release(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, conn: Shared) {
    let (broken, busy, open_tx, id) = {
        let c = conn.borrow();
        (
            c.broken.is_some(),
            c.queued() > 0,
            c.tx_status != b'I',
            c.id,
        )
    };
    if broken {
        connection::close(&conn, lp, "broken");
        {
            let mut p = inner.borrow_mut();
            p.total -= 1;
            p.in_use -= 1;
            p.figures.borrow_mut().broken += 1;
        }
        open_if_needed(inner, lp);
        return;
    }
    if busy || open_tx {
        inner.borrow_mut().settling.push(id);
        settle(inner, lp, conn, false);
        return;
    }
    inner.borrow_mut().in_use -= 1;
    hand_over(inner, lp, conn);
}

/// Brings a returned connection back to a clean state: waits for its
/// queue to drain, rolls back a transaction left open (once; a second
/// failure closes it), then hands it over.
fn settle(inner: &Rc<RefCell<PoolInner>>, lp: &Loop, conn: Shared, rolled_back: bool) {
    let (broken, busy, open_tx, id) = {
        let c = conn.borrow();
        (
            c.broken.is_some(),
            c.queued() > 0,
            c.tx_status != b'I',
            c.id,
        )
    };
    if broken {
        // Its on_broken hook has counted it out (or will).
        return;
    }
    if busy {
        let weak = Rc::downgrade(inner);
        let again = conn.clone();
        conn.borrow_mut().on_drained = Some(Box::new(move |lp| {
            if let Some(inner) = weak.upgrade() {
                settle(&inner, lp, again, rolled_back);
            }
        }));
        return;
    }
    if open_tx && !rolled_back {
        connection::submit(
            &conn,
            lp,
            Submit::Simple("ROLLBACK".into()),
            Box::new(|_, _| {}),
        );
        let weak = Rc::downgrade(inner);
        let again = conn.clone();
        conn.borrow_mut().on_drained = Some(Box::new(move |lp| {
            if let Some(inner) = weak.upgrade() {
                settle(&inner, lp, again, true);
            }
        }));
        return;
    }
    {
        let mut p = inner.borrow_mut();
        if let Some(i) = p.settling.iter().position(|&s| s == id) {
            p.settling.remove(i);
        }
        p.in_use -= 1;
        if open_tx {
            p.total -= 1;
        }
    }
    if open_tx {
        connection::close(&conn, lp, "a transaction would not roll back");
        open_if_needed(inner, lp);
        return;
    }
    hand_over(inner, lp, conn);
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let conn = self.conn.clone();
        let released = Loop::with_current(|lp| release(&inner, lp, conn.clone()));
        if released.is_none() {
            // Off the loop (a value dropped at thread exit): nothing can
            // be sent; the connection is simply forgotten.
            let mut p = inner.borrow_mut();
            p.total -= 1;
            p.in_use -= 1;
        }
    }
}

impl PooledConn {
    fn run(&self, kind: Submit) -> impl Future<Output = Result<Outcome, PgError>> + 'static {
        awaited(|lp, done| connection::submit(&self.conn, lp, kind, done))
    }

    statement_methods!("on this connection, queued at once (statements queued before the first is answered go out together: pipelining)");

    /// One statement, Node style: `done` gets the rows or the error.
    pub fn query_with(
        &self,
        lp: &Loop,
        sql: &str,
        params: &[&dyn ToSql],
        done: impl FnOnce(&Loop, Result<Vec<Row>, PgError>) + 'static,
    ) {
        let kind = Submit::Query {
            sql: sql.into(),
            params: values(params),
        };
        connection::submit(
            &self.conn,
            lp,
            kind,
            Box::new(move |lp, r| done(lp, r.map(|o| o.rows))),
        );
    }

    /// Begins a transaction on this connection (`BEGIN`).
    pub fn transaction(self) -> impl Future<Output = Result<Transaction, PgError>> + 'static {
        let begun = self.run(Submit::Simple("BEGIN".into()));
        async move {
            begun.await?;
            Ok(Transaction {
                conn: Some(self),
                finished: false,
            })
        }
    }

    /// Statements queued from now on are cancelled after `limit` (`None`:
    /// never); the pool's [`PoolConfig::statement_timeout`] until then.
    pub fn set_statement_timeout(&self, limit: Option<Duration>) {
        self.conn.borrow_mut().statement_timeout = limit;
    }

    /// The connection's server process id (`pg_backend_pid()`), once known.
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn.borrow().backend_pid()
    }
}

/// A transaction on one checked-out connection. Statements go through
/// it as through [`PooledConn`] (it derefs to one). [`Transaction::commit`]
/// ends it; dropped without a commit it rolls back.
#[derive(Debug)]
pub struct Transaction {
    conn: Option<PooledConn>,
    finished: bool,
}

impl std::ops::Deref for Transaction {
    type Target = PooledConn;
    fn deref(&self) -> &PooledConn {
        self.conn
            .as_ref()
            .expect("a transaction holds its connection until dropped")
    }
}

impl Transaction {
    /// Commits. A transaction that failed part-way reports the failure
    /// (PostgreSQL answers COMMIT of a failed transaction with ROLLBACK:
    /// that is an error here, not a success).
    pub fn commit(mut self) -> impl Future<Output = Result<(), PgError>> + 'static {
        self.finished = true;
        let done = self.run(Submit::Simple("COMMIT".into()));
        async move {
            let outcome = done.await?;
            drop(self);
            if outcome.tag == "ROLLBACK" {
                return Err(PgError::Db(Box::new(super::DbError {
                    severity: "ERROR".into(),
                    code: "25P02".into(),
                    message: "the transaction had failed: COMMIT rolled it back".into(),
                    detail: None,
                    hint: None,
                    table: None,
                    column: None,
                    constraint: None,
                })));
            }
            Ok(())
        }
    }

    /// Rolls back.
    pub fn rollback(mut self) -> impl Future<Output = Result<(), PgError>> + 'static {
        self.finished = true;
        let done = self.run(Submit::Simple("ROLLBACK".into()));
        async move {
            done.await?;
            drop(self);
            Ok(())
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.finished {
                // Queued before the connection goes back, so it runs
                // before anyone else's statement.
                let _ = Loop::with_current(|lp| {
                    connection::submit(
                        &conn.conn,
                        lp,
                        Submit::Simple("ROLLBACK".into()),
                        Box::new(|_, _| {}),
                    )
                });
            }
            drop(conn);
        }
    }
}
