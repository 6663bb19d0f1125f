//! The agent: keep-alive pools of client connections per origin (as
//! Node's `http.Agent`), the requests waiting for one, and what happens
//! when an exchange ends: the connection goes back to its pool or closes,
//! a failed request is tried again where that is safe, and the next
//! waiting request takes the free connection.
//!
//! All of it runs on the loop thread: connects and reads in the poll
//! phase, DNS on the pool's dns lane, deadlines as loop timers. A user's
//! callback never runs while the agent is borrowed.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::Interest;
use phaseloop_core::{dns, IoEvent, IoOutcome, Loop};
use slab::Slab;

use super::connection::{ClientConn, Phase, Progress, ReadLimits, TlsStart};
use super::message::BodySource;
use super::stream::{emit, ResponseEvent, SharedStream};
use super::url::Target;
use super::{ClientConfig, ClientError, ClientResponse, ClientStats, TimeoutKind};
use crate::http::encode_request_head;

/// What a request's caller is told.
pub(crate) type Done = Box<dyn FnOnce(&Loop, Result<ClientResponse, ClientError>)>;

/// A request on its way: waiting for a connection, or on one.
pub(crate) struct Pending {
    pub target: Target,
    pub method: String,
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// A body given piece by piece instead.
    pub source: Option<BodySource>,
    /// A response taken piece by piece.
    pub stream: Option<SharedStream>,
    pub idempotent: bool,
    pub done: Done,
    /// Tries so far (the first included).
    pub attempts: u32,
    /// When the whole request must be over (loop nanoseconds).
    pub deadline: u64,
}

/// An origin: where connections go, as the pool's key: host, port, and
/// whether it is `https` (a plain and a TLS connection never share a pool).
type Origin = (String, u16, bool);

#[derive(Default)]
struct OriginPool {
    /// Idle connections, the most recently used last (taken first: it is
    /// the least likely to have been closed by the server meanwhile).
    idle: Vec<usize>,
    /// Connections open or opening.
    open: usize,
    /// Requests waiting for a connection, in order.
    waiting: VecDeque<Pending>,
}

struct Slot {
    conn: ClientConn,
    origin: Origin,
    /// A streamed response's consumer paused the reading.
    paused: bool,
    /// Its request (boxed: an idle pooled connection keeps 8 bytes here,
    /// not a request's 184).
    pending: Option<Box<Pending>>,
}

pub(crate) struct Agent {
    pub cfg: ClientConfig,
    /// TLS handshakes and failures of this client's connections.
    #[cfg(feature = "tls")]
    pub tls_counters: Rc<crate::net::tls::TlsCounters>,
    conns: Slab<Slot>,
    origins: HashMap<Origin, OriginPool>,
    next_id: u64,
    pub stats: ClientStats,
}

pub(crate) type Shared = Rc<RefCell<Agent>>;

impl Agent {
    pub fn new(cfg: ClientConfig) -> Agent {
        Agent {
            #[cfg(feature = "tls")]
            tls_counters: Rc::default(),
            cfg,
            conns: Slab::new(),
            origins: HashMap::new(),
            next_id: 1,
            stats: ClientStats::default(),
        }
    }

    /// Connections open now (idle ones included).
    pub fn open(&self) -> usize {
        self.conns.len()
    }

    /// Idle connections now.
    pub fn idle(&self) -> usize {
        self.origins.values().map(|o| o.idle.len()).sum()
    }

    /// What a new connection to `origin` needs to speak TLS (`None` for
    /// plain HTTP).
    fn tls_start(&mut self, origin: &Origin) -> Result<Option<TlsStart>, ClientError> {
        if !origin.2 {
            return Ok(None);
        }
        #[cfg(feature = "tls")]
        {
            // Without one configured, Mozilla's roots, made at the first
            // https connection and kept.
            let tls = self
                .cfg
                .tls
                .get_or_insert_with(super::ClientTls::webpki_roots);
            Ok(Some((tls.session(&origin.0)?, self.tls_counters.clone())))
        }
        // `parse_url` refuses https without the feature.
        #[cfg(not(feature = "tls"))]
        Err(ClientError::InvalidRequest(
            "https needs phaseloop's `tls` feature".into(),
        ))
    }

    fn limits(&self) -> ReadLimits {
        ReadLimits {
            max_head: self.cfg.max_response_head,
            max_body: self.cfg.max_response_body,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sends `pending` on a free connection of its origin, a new one, or
/// queues it; a full queue fails it at once (in the check phase: never
/// inside the caller's own call).
pub(crate) fn submit(shared: &Shared, lp: &Loop, pending: Pending) {
    let origin: Origin = (
        pending.target.host.clone(),
        pending.target.port,
        pending.target.tls,
    );
    let mut agent = shared.borrow_mut();
    let max_sockets = agent.cfg.max_sockets_per_origin;
    let max_waiting = agent.cfg.max_waiting_per_origin;
    let pool = agent.origins.entry(origin.clone()).or_default();
    if let Some(key) = pool.idle.pop() {
        agent.stats.reused += 1;
        drop(agent);
        start_exchange(shared, lp, key, pending);
    } else if pool.open < max_sockets {
        pool.open += 1;
        drop(agent);
        open_connection(shared, lp, origin, pending);
    } else if pool.waiting.len() < max_waiting {
        pool.waiting.push_back(pending);
    } else {
        agent.stats.pool_full += 1;
        drop(agent);
        let done = pending.done;
        lp.set_immediate(move |lp| done(lp, Err(ClientError::PoolFull)));
    }
}

/// Opens a connection for `pending`'s origin: resolves the host on the
/// pool's dns lane unless it is an address, then connects.
fn open_connection(shared: &Shared, lp: &Loop, origin: Origin, pending: Pending) {
    if let Ok(ip) = origin.0.parse::<IpAddr>() {
        connect(
            shared,
            lp,
            origin.clone(),
            vec![SocketAddr::new(ip, origin.1)],
            pending,
        );
        return;
    }
    let weak = Rc::downgrade(shared);
    let job = dns::lookup(origin.0.clone(), origin.1);
    job.run(lp, move |lp, result| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        match result {
            Ok(Ok(addrs)) if !addrs.is_empty() => connect(&shared, lp, origin, addrs, pending),
            Ok(Ok(_)) => not_opened(
                &shared,
                lp,
                origin,
                pending,
                ClientError::Dns("no address".into()),
            ),
            Ok(Err(e)) => not_opened(
                &shared,
                lp,
                origin,
                pending,
                ClientError::Dns(e.to_string()),
            ),
            Err(e) => not_opened(
                &shared,
                lp,
                origin,
                pending,
                ClientError::Dns(e.to_string()),
            ),
        }
    });
}

/// Connects to the first of `addrs` (the others are tried if it fails).
fn connect(
    shared: &Shared,
    lp: &Loop,
    origin: Origin,
    mut addrs: Vec<SocketAddr>,
    pending: Pending,
) {
    let addr = addrs.remove(0);
    let mut agent = shared.borrow_mut();
    let id = agent.next_id;
    agent.next_id += 1;
    let tls = match agent.tls_start(&origin) {
        Ok(tls) => tls,
        Err(error) => {
            drop(agent);
            return not_opened(shared, lp, origin, pending, error);
        }
    };
    let conn = match ClientConn::connect(id, addr, addrs, tls) {
        Ok(conn) => conn,
        Err(e) => {
            drop(agent);
            let error = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ClientError::Refused,
                _ => ClientError::Io(e.to_string()),
            };
            return not_opened(shared, lp, origin, pending, error);
        }
    };
    agent.stats.connects += 1;
    let due = Due::first(
        lp.now_ns().saturating_add(nanos(agent.cfg.connect_timeout)),
        TimeoutKind::Connect,
        pending.deadline,
    );
    let key = agent.conns.insert(Slot {
        conn,
        origin,
        paused: false,
        pending: Some(Box::new(pending)),
    });
    let weak = Rc::downgrade(shared);
    let slot = &mut agent.conns[key];
    let registered = lp.register_io(
        slot.conn.stream.socket_mut(),
        Interest::READABLE | Interest::WRITABLE,
        move |lp, ev| {
            if let Some(shared) = weak.upgrade() {
                on_event(&shared, lp, key, id, ev);
            }
            IoOutcome::Drained
        },
    );
    match registered {
        Ok(token) => {
            slot.conn.token = Some(token);
            drop(agent);
            arm(shared, lp, key, due);
        }
        Err(e) => {
            let slot = agent.conns.remove(key);
            drop(agent);
            let pending = slot.pending.expect("a new connection has its request");
            not_opened(
                shared,
                lp,
                slot.origin,
                *pending,
                ClientError::Io(e.to_string()),
            );
        }
    }
}

/// A connection for `pending` could not be opened: the origin has one
/// fewer, and the request is tried again or fails.
fn not_opened(shared: &Shared, lp: &Loop, origin: Origin, pending: Pending, error: ClientError) {
    if let Some(pool) = shared.borrow_mut().origins.get_mut(&origin) {
        pool.open -= 1;
    }
    retry_or_fail(shared, lp, pending, error, false);
    pump(shared, lp, &origin);
}

/// Puts `pending` on idle connection `key` and starts writing it.
fn start_exchange(shared: &Shared, lp: &Loop, key: usize, pending: Pending) {
    let due = {
        let mut agent = shared.borrow_mut();
        let head_timeout = nanos(agent.cfg.head_timeout);
        let Some(slot) = agent.conns.get_mut(key) else {
            drop(agent);
            return submit(shared, lp, pending);
        };
        let mut bytes = Vec::with_capacity(256 + pending.body.len());
        let streamed_body = pending.source.is_some();
        let mut chunked = Vec::new();
        let body_len = if streamed_body {
            chunked.push(("Transfer-Encoding".to_owned(), b"chunked".to_vec()));
            None
        } else {
            let bodiless = matches!(
                pending.method.as_str(),
                "GET" | "HEAD" | "DELETE" | "OPTIONS"
            );
            (!pending.body.is_empty() || !bodiless).then_some(pending.body.len() as u64)
        };
        let fields: Vec<(String, Vec<u8>)> =
            pending.fields.iter().cloned().chain(chunked).collect();
        encode_request_head(
            &mut bytes,
            &pending.method,
            &pending.target.path,
            &pending.target.authority,
            &fields,
            body_len,
        );
        bytes.extend_from_slice(&pending.body);
        slot.conn.begin(
            bytes,
            pending.method == "HEAD",
            streamed_body,
            pending.stream.is_some(),
        );
        slot.paused = false;
        if let Some(stream) = &pending.stream {
            stream.borrow().control.conn.set(Some((key, slot.conn.id)));
        }
        if let Some(token) = slot.conn.token {
            // Busy connections keep the loop alive; idle ones do not.
            lp.ref_io(token);
        }
        let due = Due::first(
            lp.now_ns().saturating_add(head_timeout),
            TimeoutKind::Head,
            pending.deadline,
        );
        slot.pending = Some(Box::new(pending));
        due
    };
    arm(shared, lp, key, due);
    let progress = {
        let mut agent = shared.borrow_mut();
        match agent.conns.get_mut(key) {
            Some(slot) => slot.conn.on_writable(),
            None => return,
        }
    };
    handle(shared, lp, key, progress);
}

fn on_event(shared: &Shared, lp: &Loop, key: usize, id: u64, ev: IoEvent) {
    let progress = {
        let mut agent = shared.borrow_mut();
        let limits = agent.limits();
        let Some(slot) = agent.conns.get_mut(key).filter(|s| s.conn.id == id) else {
            return;
        };
        let mut progress = Progress::Pending;
        if ev.writable || ev.error {
            progress = slot.conn.on_writable();
        }
        if matches!(progress, Progress::Pending)
            && slot.conn.phase != Phase::Connecting
            && !slot.paused
            && (ev.readable || ev.read_closed || ev.error)
        {
            progress = slot.conn.on_readable(limits);
            // Under TLS, the handshake those reads finished lets a request
            // rustls could not yet take go on (no writable edge would come).
            if matches!(progress, Progress::Pending) && slot.conn.is_writing() {
                progress = slot.conn.on_writable();
            }
        }
        progress
    };
    handle(shared, lp, key, progress);
}

/// Acts on what an event (or a start) led to.
fn handle(shared: &Shared, lp: &Loop, key: usize, progress: Progress) {
    match progress {
        Progress::Pending => stream_pieces(shared, lp, key),
        Progress::NeedBody => {
            let source = {
                let agent = shared.borrow();
                let Some(slot) = agent.conns.get(key) else {
                    return;
                };
                slot.pending.as_ref().and_then(|p| p.source.clone())
            };
            // The producer runs with nothing borrowed: it may use the client.
            let piece = source.and_then(|s| (s.0.borrow_mut())());
            let progress = {
                let mut agent = shared.borrow_mut();
                match agent.conns.get_mut(key) {
                    Some(slot) => slot.conn.body_piece(piece),
                    None => return,
                }
            };
            handle(shared, lp, key, progress);
        }
        Progress::Connected => {
            let pending = {
                let mut agent = shared.borrow_mut();
                let Some(slot) = agent.conns.get_mut(key) else {
                    return;
                };
                slot.conn.phase = Phase::Idle;
                slot.pending.take().map(|p| *p)
            };
            if let Some(pending) = pending {
                start_exchange(shared, lp, key, pending);
            }
        }
        Progress::Done { response, reuse } => {
            let (pending, origin) = {
                let mut agent = shared.borrow_mut();
                agent.stats.responses += 1;
                let Some(slot) = agent.conns.get_mut(key) else {
                    return;
                };
                (slot.pending.take().map(|p| *p), slot.origin.clone())
            };
            if reuse {
                make_idle(shared, lp, key);
            } else {
                close(shared, lp, key);
            }
            if let Some(pending) = pending {
                (pending.done)(lp, Ok(response));
            }
            pump(shared, lp, &origin);
        }
        Progress::Failed { error, reached } => {
            let (pending, origin, other_addrs, connecting) = {
                let mut agent = shared.borrow_mut();
                let Some(slot) = agent.conns.get_mut(key) else {
                    return;
                };
                (
                    slot.pending.take().map(|p| *p),
                    slot.origin.clone(),
                    std::mem::take(&mut slot.conn.other_addrs),
                    slot.conn.phase == Phase::Connecting,
                )
            };
            close(shared, lp, key);
            let Some(pending) = pending else {
                return pump(shared, lp, &origin);
            };
            // The next address of the name, before counting a try.
            if connecting
                && !other_addrs.is_empty()
                && error != ClientError::Timeout(TimeoutKind::Request)
            {
                if let Some(pool) = shared.borrow_mut().origins.get_mut(&origin) {
                    pool.open += 1;
                }
                return connect(shared, lp, origin, other_addrs, pending);
            }
            retry_or_fail(shared, lp, pending, error, reached);
            pump(shared, lp, &origin);
        }
        Progress::Dropped => {
            let origin = shared.borrow().conns.get(key).map(|s| s.origin.clone());
            close(shared, lp, key);
            if let Some(origin) = origin {
                pump(shared, lp, &origin);
            }
        }
    }
}

/// Hands a streamed response's head and body so far to its consumer, and
/// reads on if the last read stopped at its cap.
fn stream_pieces(shared: &Shared, lp: &Loop, key: usize) {
    let (stream, head, data, more, id) = {
        let mut agent = shared.borrow_mut();
        let Some(slot) = agent.conns.get_mut(key) else {
            return;
        };
        let Some(stream) = slot.pending.as_ref().and_then(|p| p.stream.clone()) else {
            return;
        };
        let head = if std::mem::take(&mut slot.conn.head_fresh) {
            slot.conn.head()
        } else {
            None
        };
        let data = slot.conn.take_data();
        let more = slot.conn.more && !slot.paused;
        (stream, head, data, more, slot.conn.id)
    };
    if let Some(head) = head {
        emit(&stream, lp, ResponseEvent::Head(&head));
    }
    if !data.is_empty() {
        emit(&stream, lp, ResponseEvent::Data(&data));
    }
    if more {
        let weak = Rc::downgrade(shared);
        lp.set_immediate(move |lp| {
            if let Some(shared) = weak.upgrade() {
                read_more(&shared, lp, key, id);
            }
        });
    }
}

/// Sets whether connection `key` (still `id`) is paused; true if that
/// changed it.
pub(crate) fn set_paused(shared: &Shared, key: usize, id: u64, paused: bool) -> bool {
    let mut agent = shared.borrow_mut();
    match agent.conns.get_mut(key).filter(|s| s.conn.id == id) {
        Some(slot) if slot.paused != paused => {
            slot.paused = paused;
            true
        }
        _ => false,
    }
}

/// Reads connection `key` now (a resumed or capped stream: no event
/// would say there is more).
pub(crate) fn read_more(shared: &Shared, lp: &Loop, key: usize, id: u64) {
    let progress = {
        let mut agent = shared.borrow_mut();
        let limits = agent.limits();
        let Some(slot) = agent.conns.get_mut(key).filter(|s| s.conn.id == id) else {
            return;
        };
        if slot.paused || slot.conn.phase != Phase::Reading {
            return;
        }
        slot.conn.on_readable(limits)
    };
    handle(shared, lp, key, progress);
}

/// A failed request is sent again if that is safe and there is time: it
/// never reached the server, or repeating it is harmless (an idempotent
/// method), and it failed in a way another connection may not (not a bad
/// response, not its own timeout). Else its caller gets the error.
fn retry_or_fail(
    shared: &Shared,
    lp: &Loop,
    mut pending: Pending,
    error: ClientError,
    reached: bool,
) {
    let retries = shared.borrow().cfg.retries;
    let transient = matches!(
        error,
        ClientError::Reset
            | ClientError::Refused
            | ClientError::Io(_)
            | ClientError::Timeout(TimeoutKind::Connect)
    );
    // Nothing of a streamed response may be handed on twice.
    let head_sent = pending
        .stream
        .as_ref()
        .is_some_and(|s| s.borrow().head_sent);
    let safe = (!reached || pending.idempotent) && !head_sent;
    if transient && safe && pending.attempts <= retries && lp.now_ns() < pending.deadline {
        pending.attempts += 1;
        shared.borrow_mut().stats.retries += 1;
        return submit(shared, lp, pending);
    }
    shared.borrow_mut().stats.failures += 1;
    (pending.done)(lp, Err(error));
}

/// Gives a free connection of `origin` (or room for a new one) to the
/// first request waiting for it; fails waiting requests whose deadline
/// passed.
fn pump(shared: &Shared, lp: &Loop, origin: &Origin) {
    let now = lp.now_ns();
    loop {
        let next = {
            let mut agent = shared.borrow_mut();
            let max_sockets = agent.cfg.max_sockets_per_origin;
            let Some(pool) = agent.origins.get_mut(origin) else {
                return;
            };
            let Some(front) = pool.waiting.front() else {
                if pool.open == 0 && pool.idle.is_empty() {
                    agent.origins.remove(origin);
                }
                return;
            };
            if front.deadline <= now {
                Err(pool.waiting.pop_front().expect("a front"))
            } else if !pool.idle.is_empty() || pool.open < max_sockets {
                Ok(pool.waiting.pop_front().expect("a front"))
            } else {
                return;
            }
        };
        match next {
            Ok(pending) => submit(shared, lp, pending),
            Err(expired) => {
                shared.borrow_mut().stats.failures += 1;
                (expired.done)(lp, Err(ClientError::Timeout(TimeoutKind::Request)));
            }
        }
    }
}

/// Connection `key` finished its exchange and may carry another: it
/// waits in its origin's idle list, under the idle timeout, without
/// keeping the loop alive.
fn make_idle(shared: &Shared, lp: &Loop, key: usize) {
    let due = {
        let mut agent = shared.borrow_mut();
        let idle_timeout = nanos(agent.cfg.idle_timeout);
        let Some(slot) = agent.conns.get_mut(key) else {
            return;
        };
        if let Some(token) = slot.conn.token {
            lp.unref_io(token);
        }
        let origin = slot.origin.clone();
        agent.origins.entry(origin).or_default().idle.push(key);
        Due {
            at: lp.now_ns().saturating_add(idle_timeout),
            kind: None,
        }
    };
    arm(shared, lp, key, due);
}

/// Closes connection `key`: out of its pool, its timer cleared.
fn close(shared: &Shared, lp: &Loop, key: usize) {
    let mut agent = shared.borrow_mut();
    if !agent.conns.contains(key) {
        return;
    }
    let mut slot = agent.conns.remove(key);
    if let Some(token) = slot.conn.token.take() {
        let _ = lp.deregister_io(token, slot.conn.stream.socket_mut());
    }
    // Under TLS a close_notify first, as RFC 8446 §6.1 asks: the server
    // tells our close from a cut.
    #[cfg(feature = "tls")]
    if matches!(slot.conn.stream, crate::net::transport::Transport::Tls(_)) {
        slot.conn.stream.shutdown_write();
    }
    if let Some(t) = slot.conn.timer.take() {
        lp.clear_timer(t);
    }
    if let Some(pool) = agent.origins.get_mut(&slot.origin) {
        pool.open -= 1;
        pool.idle.retain(|&k| k != key);
    }
    // A request still on it was taken by the caller before.
    debug_assert!(slot.pending.is_none());
}

/// A connection's next deadline: when (loop nanoseconds), and which
/// timeout it is (`None`: an idle connection's).
#[derive(Debug, Clone, Copy)]
struct Due {
    at: u64,
    kind: Option<TimeoutKind>,
}

impl Due {
    /// The earlier of a stage's deadline (`at`, of `kind`) and the whole
    /// request's.
    fn first(at: u64, kind: TimeoutKind, request_deadline: u64) -> Due {
        if request_deadline <= at {
            Due {
                at: request_deadline,
                kind: Some(TimeoutKind::Request),
            }
        } else {
            Due {
                at,
                kind: Some(kind),
            }
        }
    }
}

/// Arms connection `key`'s timer for `due`; the timer knows which
/// deadline it keeps, so its firing (at the loop's millisecond) needs no
/// comparing of clocks.
fn arm(shared: &Shared, lp: &Loop, key: usize, due: Due) {
    let weak: Weak<RefCell<Agent>> = Rc::downgrade(shared);
    let mut agent = shared.borrow_mut();
    let Some(slot) = agent.conns.get_mut(key) else {
        return;
    };
    if let Some(t) = slot.conn.timer.take() {
        lp.clear_timer(t);
    }
    let id = slot.conn.id;
    let delay = Duration::from_nanos(due.at.saturating_sub(lp.now_ns()));
    let timer = lp.set_timeout(delay, move |lp| {
        if let Some(shared) = weak.upgrade() {
            on_timer(&shared, lp, key, id, due.kind);
        }
    });
    lp.unref_timer(timer);
    slot.conn.timer = Some(timer);
}

/// Connection `key`'s deadline of `kind` came: an idle one closes; a
/// connecting or busy one fails its request (which may be tried again),
/// unless its head came in time (the body then has the request's time).
fn on_timer(shared: &Shared, lp: &Loop, key: usize, id: u64, kind: Option<TimeoutKind>) {
    let progress = {
        let mut agent = shared.borrow_mut();
        let Some(slot) = agent.conns.get_mut(key).filter(|s| s.conn.id == id) else {
            return;
        };
        slot.conn.timer = None;
        match kind {
            None => {
                agent.stats.idle_closes += 1;
                Progress::Dropped
            }
            Some(TimeoutKind::Head) if slot.conn.has_head() => {
                let deadline = slot.pending.as_ref().map_or(0, |p| p.deadline);
                drop(agent);
                let due = Due {
                    at: deadline,
                    kind: Some(TimeoutKind::Request),
                };
                return arm(shared, lp, key, due);
            }
            Some(kind) => Progress::Failed {
                error: ClientError::Timeout(kind),
                reached: slot.conn.reached(),
            },
        }
    };
    handle(shared, lp, key, progress);
}
