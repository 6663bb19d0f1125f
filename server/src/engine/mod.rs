//! The connection engine: connections on the loop, from the listener's
//! accept to the close. It parses requests (with `http/`), hands each to a
//! [`Service`] with an [`answer::Answer`] handle, queues the answers in
//! order, writes them, and keeps every connection's deadline. It never
//! names the app, its routes or its handlers: the [`Service`] trait is all
//! it knows of them.
//!
//! One type, [`Engine`], with its methods by concern: `accept.rs`,
//! `drive.rs` (events, read batches, flushing), `answer.rs` (answers and
//! streams coming in), `deadlines.rs` (an exchange's timer, the waiting
//! lists' sweeps), `close.rs` (closing, shutdown), `stats.rs`. A
//! connection is `connection.rs` (what an idle one keeps) and
//! `exchange.rs` (what it needs while it has work); `spares.rs` keeps
//! exchanges and buffers between uses, `waiting.rs` the idle connections'
//! deadlines.

mod accept;
pub(crate) mod answer;
mod close;
pub(crate) mod config;
pub(crate) mod connection;
mod deadlines;
mod drive;
pub(crate) mod exchange;
pub(crate) mod limits;
pub(crate) mod read_buffer;
pub(crate) mod service;
mod spares;
mod stats;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod upgrade;
mod waiting;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use mio::net::TcpListener;
use mio::Interest;
use phaseloop_core::{IoOutcome, IoToken, Loop, TimerId};

use crate::engine::answer::{TicketSpares, SPARE_TICKETS};
use crate::engine::close::ShutdownCallback;
use crate::engine::config::ServerConfig;
use crate::engine::connection::Conns;
use crate::engine::exchange::{Ctx, Exchange};
use crate::engine::service::Service;
use crate::engine::spares::Spares;
pub use crate::engine::stats::{RouteStats, ServerStats};
use crate::http::DateCache;

/// Per connection (slab key, id): each watching request's sequence
/// number and its async handler's waker.
pub(crate) type CancelWakers = HashMap<(usize, u64), Vec<(u64, Waker)>>;

pub(crate) struct Engine<S: Service> {
    /// What routes and answers requests (the app).
    pub(crate) service: S,
    pub(crate) cfg: ServerConfig,
    /// The minimum response rate's grace in nanoseconds (`u64::MAX` when
    /// there is no minimum: the run's deadline is then never near).
    pub(crate) rate_grace_ns: u64,

    listener: RefCell<Option<TcpListener>>,
    listener_token: Cell<Option<IoToken>>,
    local_addr: SocketAddr,
    conns: RefCell<Conns>,
    spares: RefCell<Spares>,
    date: RefCell<DateCache>,
    date_timer: Cell<Option<TimerId>>,
    next_conn_id: Cell<u64>,
    stats: RefCell<ServerStats>,
    accept_paused: Cell<bool>,
    shutting_down: Cell<bool>,
    on_shutdown: RefCell<Vec<ShutdownCallback>>,
    /// Per route (last: unmatched): responses by status and the route's
    /// latency; bounded by the routes and the statuses handlers use.
    route_stats: RefCell<Vec<stats::RouteFigures>>,
    /// The keep-alive timeout, nanoseconds.
    pub(crate) keep_alive_ns: u64,
    /// How long an idle connection keeps its place in the idle list
    /// ([`waiting::regroup_ns`]).
    pub(crate) regroup_ns: u64,
    /// Spare boxes for answers' tickets.
    pub(crate) ticket_spares: TicketSpares,
    /// Async handlers to wake when their request stops waiting (the
    /// client left, a handler timeout answered it), by connection: they
    /// then drop their future, cancelling what it awaits. Only async
    /// handlers' requests have entries.
    pub(crate) cancel_wakers: RefCell<CancelWakers>,
    /// The TLS figures its connections' streams count into.
    #[cfg(feature = "tls")]
    pub(crate) tls_counters: Rc<crate::net::tls::TlsCounters>,
}

impl<S: Service> Engine<S> {
    /// Serves `service` on `listener` from `lp` (once `lp` runs).
    pub(crate) fn start(
        lp: &Loop,
        mut listener: TcpListener,
        service: S,
        cfg: ServerConfig,
    ) -> io::Result<Rc<Self>> {
        limits::raise_open_files_limit();
        let local_addr = listener.local_addr()?;
        let inner = Rc::new(Engine {
            service,
            rate_grace_ns: cfg
                .min_response_rate
                .map_or(u64::MAX, |r| exchange::nanos(r.grace)),

            keep_alive_ns: exchange::nanos(cfg.keep_alive_timeout),
            regroup_ns: waiting::regroup_ns(exchange::nanos(cfg.keep_alive_timeout)),
            cfg,
            listener: RefCell::new(None),
            listener_token: Cell::new(None),
            local_addr,
            conns: RefCell::new(Conns::new()),
            spares: RefCell::new(Spares::new()),
            date: RefCell::new(DateCache::new()),
            date_timer: Cell::new(None),
            next_conn_id: Cell::new(1),
            stats: RefCell::new(ServerStats::default()),
            accept_paused: Cell::new(false),
            shutting_down: Cell::new(false),
            on_shutdown: RefCell::new(Vec::new()),
            route_stats: RefCell::new(Vec::new()),
            ticket_spares: TicketSpares::new(SPARE_TICKETS),
            cancel_wakers: RefCell::default(),
            #[cfg(feature = "tls")]
            tls_counters: Rc::default(),
        });
        let routes = inner.service.route_count();
        *inner.route_stats.borrow_mut() = (0..=routes)
            .map(|_| stats::RouteFigures::default())
            .collect();
        let weak = Rc::downgrade(&inner);
        let token = lp.register_io(&mut listener, Interest::READABLE, move |lp, _ev| match weak
            .upgrade()
        {
            Some(inner) => inner.accept(lp),
            None => IoOutcome::Drained,
        })?;
        *inner.listener.borrow_mut() = Some(listener);
        inner.listener_token.set(Some(token));
        // The Date header changes once a second; so does our copy of it.
        let weak = Rc::downgrade(&inner);
        let timer = lp.set_interval(Duration::from_secs(1), move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.date.borrow_mut().refresh();
            }
        });
        lp.unref_timer(timer);
        inner.date_timer.set(Some(timer));
        Ok(inner)
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Bytes of buffer memory held by connections now.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.conns
            .borrow()
            .iter()
            .map(|(_, c)| c.buffered_bytes())
            .sum()
    }

    /// The loop's time in nanoseconds: a connection's times are kept so.
    pub(crate) fn now(lp: &Loop) -> u64 {
        lp.now_ns()
    }

    /// What connection code needs from the server, for one call.
    pub(crate) fn ctx(&self, now: u64) -> Ctx<'_, S> {
        Ctx {
            cfg: &self.cfg,
            service: &self.service,
            spares: &self.spares,
            now,
        }
    }

    /// Open connections by state, counted now (for the dashboard: a walk
    /// over the connections, once per poll): idle (nothing in flight),
    /// writing (output waiting for the client), reading (the rest: a
    /// request arriving or being handled).
    pub(crate) fn conn_states(&self) -> (usize, usize, usize) {
        let (mut idle, mut reading, mut writing) = (0, 0, 0);
        for (_, conn) in self.conns.borrow().iter() {
            if conn.unsent() > 0 {
                writing += 1;
            } else if conn.is_idle() {
                idle += 1;
            } else {
                reading += 1;
            }
        }
        (idle, reading, writing)
    }

    pub(crate) fn conn_alive(&self, key: usize, id: u64) -> bool {
        self.conns.borrow().get(key).is_some_and(|c| c.id == id)
    }

    /// Runs `f` on the exchange of connection `key` if it is still
    /// connection `id` and has work (an idle one has no request to answer).
    pub(crate) fn with_exchange<R>(
        &self,
        key: usize,
        id: u64,
        f: impl FnOnce(&mut Exchange) -> R,
    ) -> Option<R> {
        let mut conns = self.conns.borrow_mut();
        let ex = conns.get_mut(key).filter(|c| c.id == id)?.exchange()?;
        Some(f(ex))
    }
}
