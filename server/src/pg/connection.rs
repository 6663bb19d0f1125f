//! One PostgreSQL connection on the loop: the nonblocking connect, the
//! start-up and authentication, and the queue of statements sent and
//! answered in order.
//!
//! Every statement is its own Sync group (Bind, Execute, Sync; or a simple
//! Query), so an error fails only its own statement and the server is
//! ready for the next at once. Several groups go out before their answers
//! come back (pipelining); answers arrive in the same order, each ending
//! with ReadyForQuery. A statement not yet prepared on this connection is
//! first prepared by a Parse, Describe, Sync group of its own: the writes
//! pause behind it (a barrier) because its parameter types decide how
//! the next Bind encodes its values.
//!
//! State lives in `Conn` behind `Rc<RefCell<_>>`; callbacks to users (a
//! query's `done`, the pool's hooks) never run under that borrow: they are
//! collected as [`After`]s and run once it is released, so a callback may
//! queue the next statement on the same connection.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use phaseloop_core::{IoEvent, IoOutcome, IoToken, Job, Lane, Loop, TimerId};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use postgres_protocol::Oid;

use super::error::{DbError, PgTimeout};
use super::row::{Column, Row};
use super::socket::{Socket, Target};
use super::types::{self, Value};
use super::{cancel, ConnectConfig, PgError};

/// Bytes read per event at most before other sources get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Bytes one `read` asks for.
const READ_CHUNK: usize = 16 * 1024;
/// The largest message taken from the server (a row of 64 MiB).
pub(crate) const MAX_MESSAGE: usize = 64 << 20;
/// Statements one connection may hold queued (sent or not) at most.
pub(crate) const MAX_QUEUED: usize = 1024;

pub(crate) type Shared = Rc<RefCell<Conn>>;
/// A statement's completion callback.
pub(crate) type Done = Box<dyn FnOnce(&Loop, Result<Outcome, PgError>)>;
/// Called with a query's time on the connection and its SQLSTATE if it failed.
pub(crate) type Recorder = Rc<dyn Fn(u64, Option<&str>)>;
type Ready = Box<dyn FnOnce(&Loop, Result<Shared, PgError>)>;
type Hook = Box<dyn FnOnce(&Loop)>;

/// Takes each NOTIFY a connection that LISTENs receives: channel, payload.
pub(crate) type NotifyHook = Rc<dyn Fn(&Loop, &str, &str)>;

/// What a statement gave back.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub rows: Vec<Row>,
    /// The count of the command tag (`INSERT 0 3` → 3), summed over a
    /// simple query's statements.
    pub affected: u64,
    /// The last command tag (`INSERT 0 3`, `COMMIT`, `ROLLBACK` ...).
    pub tag: String,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Start-up message sent; authenticating, then the server's settings.
    Starting,
    Ready,
    Closed,
}

/// What a queued statement is.
enum Work {
    /// Parse + Describe + Sync for `sql` under the name `name`.
    Prepare {
        sql: Rc<str>,
        name: String,
        params: Vec<Oid>,
        columns: Option<Rc<[Column]>>,
    },
    /// Bind + Execute + Sync of the prepared `sql`.
    Query {
        sql: Rc<str>,
        params: Vec<Value>,
        columns: Option<Rc<[Column]>>,
        done: Option<Done>,
    },
    /// A simple Query message (several statements allowed; text rows).
    Simple {
        sql: String,
        columns: Option<Rc<[Column]>>,
        done: Option<Done>,
    },
}

struct Op {
    id: u64,
    work: Work,
    rows: Vec<Row>,
    affected: u64,
    tag: String,
    error: Option<PgError>,
    /// Its statement timeout's timer.
    timer: Option<TimerId>,
    /// Its deadline passed while it ran: a CancelRequest went out.
    cancelled: Option<Duration>,
    queued_ns: u64,
}

struct Statement {
    name: String,
    params: Vec<Oid>,
    columns: Rc<[Column]>,
    last_used: u64,
}

/// An unfinished start-up: the connect timeout and who is told.
struct Opening {
    done: Cell<bool>,
    ready: RefCell<Option<Ready>>,
    timer: Cell<Option<TimerId>>,
    /// The connection while it starts: nothing else holds it yet (the
    /// cycle with its `opening` ends when the start-up does).
    conn: RefCell<Option<Shared>>,
}

/// A callback to run once the connection's borrow is released.
pub(crate) enum After {
    Op(Done, Result<Outcome, PgError>),
    Hook(Hook),
    /// A notification for the connection's notify hook.
    Notify(NotifyHook, String, String),
}

fn run_after(lp: &Loop, after: Vec<After>) {
    for a in after {
        match a {
            After::Op(done, result) => done(lp, result),
            After::Hook(hook) => hook(lp),
            After::Notify(hook, channel, payload) => hook(lp, &channel, &payload),
        }
    }
}

/// One connection's state.
pub(crate) struct Conn {
    pub id: u64,
    cfg: Rc<ConnectConfig>,
    target: Target,
    socket: Socket,
    token: Option<IoToken>,
    phase: Phase,
    me: Weak<RefCell<Conn>>,
    opening: Option<Rc<Opening>>,
    scram: Option<sasl::ScramSha256>,
    out: BytesMut,
    inbuf: BytesMut,
    /// What one `read` fills (initialised once; its bytes are copied on
    /// into `inbuf`, whose parsed messages keep their part of it).
    chunk: Box<[u8]>,
    /// Bind's parameters are encoded here first (the message puts their
    /// formats before them); kept between statements.
    scratch: Scratch,
    ops: VecDeque<Op>,
    /// The first `in_flight` ops have been written.
    in_flight: usize,
    /// A Prepare is in flight: later ops wait for its parameter types.
    barrier: bool,
    statements: HashMap<Rc<str>, Statement>,
    statement_cap: usize,
    next_name: u64,
    uses: u64,
    next_op: u64,
    key: Option<(i32, i32)>,
    /// The last ReadyForQuery's transaction status: `I` idle, `T` in a
    /// transaction, `E` in a failed one.
    pub tx_status: u8,
    flush_scheduled: bool,
    /// Registered for writable events too: only while connecting, starting
    /// or holding output the socket would not take (otherwise every ACK
    /// would wake the loop for nothing).
    wants_writable: bool,
    /// Why it broke, once it has.
    pub broken: Option<PgError>,
    /// Runs once when the queue empties (the pool's return path).
    pub on_drained: Option<Hook>,
    /// Runs once when the connection breaks (the pool drops it).
    pub on_broken: Option<Hook>,
    /// Takes the notifications of the channels it LISTENs on.
    pub on_notify: Option<NotifyHook>,
    /// Statement timeout for statements queued from now on.
    pub statement_timeout: Option<Duration>,
    grace: Duration,
    recorder: Option<Recorder>,
}

impl Drop for Conn {
    /// A connection let go without `close` (its pool dropped, say): its
    /// registration goes with it, so the loop holds no dead source.
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            let socket = &mut self.socket;
            let _ = Loop::with_current(|lp| lp.deregister_io(token, socket));
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("phase", &self.phase)
            .field("queued", &self.ops.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// Settings a new connection takes from its pool.
pub(crate) struct OpenOptions {
    pub id: u64,
    pub cfg: Rc<ConnectConfig>,
    pub connect_timeout: Duration,
    pub statement_timeout: Option<Duration>,
    pub statement_cap: usize,
    pub recorder: Option<Recorder>,
}

/// Opens a connection: resolves the host (on the pool's dns lane), connects
/// and logs in; `ready` gets the connection or the error, once, within the
/// connect timeout, never during this call.
pub(crate) fn open(
    lp: &Loop,
    opts: OpenOptions,
    ready: impl FnOnce(&Loop, Result<Shared, PgError>) + 'static,
) {
    let opening = Rc::new(Opening {
        done: Cell::new(false),
        ready: RefCell::new(Some(Box::new(ready))),
        timer: Cell::new(None),
        conn: RefCell::new(None),
    });
    let limit = opts.connect_timeout;
    let on_timeout = opening.clone();
    let timer = lp.set_timeout(limit, move |lp| {
        let conn = on_timeout.conn.borrow().clone();
        if let Some(conn) = conn {
            let mut after = Vec::new();
            conn.borrow_mut()
                .fail(lp, PgError::Timeout(PgTimeout::Connect, limit), &mut after);
            run_after(lp, after);
        } else {
            finish(
                lp,
                &on_timeout,
                Err(PgError::Timeout(PgTimeout::Connect, limit)),
            );
        }
    });
    opening.timer.set(Some(timer));
    let port = opts.cfg.port;
    match &opts.cfg.host {
        super::PgHost::Unix(dir) => {
            let target = Target::Unix(dir.join(format!(".s.PGSQL.{port}")));
            start(lp, opts, target, opening);
        }
        super::PgHost::Tcp(host) => {
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                let target = Target::Tcp((ip, port).into());
                // Not during this call: the caller's state is still borrowed.
                lp.next_tick(move |lp| start(lp, opts, target, opening));
                return;
            }
            phaseloop_core::dns::lookup(host.clone(), port).run(lp, move |lp, result| {
                if opening.done.get() {
                    return;
                }
                match result {
                    Ok(Ok(addrs)) if !addrs.is_empty() => {
                        start(lp, opts, Target::Tcp(addrs[0]), opening)
                    }
                    Ok(Ok(_)) => finish(lp, &opening, Err(PgError::Connect("no address".into()))),
                    Ok(Err(e)) => finish(lp, &opening, Err(PgError::Connect(e.to_string()))),
                    Err(e) => finish(lp, &opening, Err(PgError::Connect(e.to_string()))),
                }
            });
        }
    }
}

fn finish(lp: &Loop, opening: &Rc<Opening>, result: Result<Shared, PgError>) {
    if opening.done.replace(true) {
        return;
    }
    opening.conn.borrow_mut().take();
    if let Some(t) = opening.timer.take() {
        lp.clear_timer(t);
    }
    if let Some(ready) = opening.ready.borrow_mut().take() {
        ready(lp, result);
    }
}

fn start(lp: &Loop, opts: OpenOptions, target: Target, opening: Rc<Opening>) {
    if opening.done.get() {
        return;
    }
    let socket = match Socket::connect(&target) {
        Ok(s) => s,
        Err(e) => {
            return finish(
                lp,
                &opening,
                Err(PgError::Connect(format!("{target:?}: {e}"))),
            )
        }
    };
    let shared = Rc::new_cyclic(|me| {
        RefCell::new(Conn {
            id: opts.id,
            cfg: opts.cfg,
            target,
            socket,
            token: None,
            phase: Phase::Connecting,
            me: me.clone(),
            opening: Some(opening.clone()),
            scram: None,
            out: BytesMut::with_capacity(1024),
            inbuf: BytesMut::with_capacity(8 * 1024),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            scratch: Scratch::default(),
            ops: VecDeque::new(),
            in_flight: 0,
            barrier: false,
            statements: HashMap::new(),
            statement_cap: opts.statement_cap.max(1),
            next_name: 0,
            uses: 0,
            next_op: 0,
            key: None,
            tx_status: b'I',
            flush_scheduled: false,
            wants_writable: true,
            broken: None,
            on_drained: None,
            on_broken: None,
            on_notify: None,
            statement_timeout: opts.statement_timeout,
            grace: opts.connect_timeout + Duration::from_secs(1),
            recorder: opts.recorder,
        })
    });
    *opening.conn.borrow_mut() = Some(shared.clone());
    let weak = Rc::downgrade(&shared);
    let registered = {
        let mut c = shared.borrow_mut();
        lp.register_io(
            &mut c.socket,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
            move |lp, event| match weak.upgrade() {
                Some(conn) => on_event(&conn, lp, event),
                None => IoOutcome::Drained,
            },
        )
    };
    match registered {
        Ok(token) => shared.borrow_mut().token = Some(token),
        Err(e) => finish(lp, &opening, Err(PgError::Connect(e.to_string()))),
    }
}

fn on_event(conn: &Shared, lp: &Loop, event: IoEvent) -> IoOutcome {
    let mut after = Vec::new();
    let outcome = conn.borrow_mut().on_event(lp, event, &mut after);
    run_after(lp, after);
    outcome
}

/// Queues a statement on `conn`; it goes out at the end of this callback's
/// microtasks (statements queued together leave in one write), and `done`
/// runs with its outcome, never during this call.
pub(crate) fn submit(conn: &Shared, lp: &Loop, kind: Submit, done: Done) {
    let mut c = conn.borrow_mut();
    if let Some(e) = c.broken.clone() {
        drop(c);
        lp.next_tick(move |lp| done(lp, Err(e)));
        return;
    }
    if c.ops.len() >= MAX_QUEUED {
        drop(c);
        let e = PgError::Busy(format!("{MAX_QUEUED} statements already queued"));
        lp.next_tick(move |lp| done(lp, Err(e)));
        return;
    }
    let id = c.next_op;
    c.next_op += 1;
    let work = match kind {
        Submit::Query { sql, params } => Work::Query {
            sql,
            params,
            columns: None,
            done: Some(done),
        },
        Submit::Simple(sql) => Work::Simple {
            sql,
            columns: None,
            done: Some(done),
        },
    };
    let timer = c.statement_timeout.map(|limit| {
        let weak = c.me.clone();
        lp.set_timeout(limit, move |lp| {
            if let Some(conn) = weak.upgrade() {
                let mut after = Vec::new();
                conn.borrow_mut().on_deadline(lp, id, limit, &mut after);
                run_after(lp, after);
            }
        })
    });
    c.ops.push_back(Op {
        id,
        work,
        rows: Vec::new(),
        affected: 0,
        tag: String::new(),
        error: None,
        timer,
        cancelled: None,
        queued_ns: lp.now_ns(),
    });
    if !c.flush_scheduled && c.phase == Phase::Ready {
        c.flush_scheduled = true;
        let weak = c.me.clone();
        lp.next_tick(move |lp| {
            if let Some(conn) = weak.upgrade() {
                let mut after = Vec::new();
                {
                    let mut c = conn.borrow_mut();
                    c.flush_scheduled = false;
                    c.pump(lp, &mut after);
                }
                run_after(lp, after);
            }
        });
    }
}

/// What `pump` did with the next unsent op.
enum Step {
    Written,
    Prepare(Rc<str>),
    Failed(PgError),
}

/// What [`submit`] queues.
pub(crate) enum Submit {
    /// A statement through the extended protocol with its parameters.
    Query { sql: Rc<str>, params: Vec<Value> },
    /// A simple query.
    Simple(String),
}

/// Closes `conn` (sends Terminate if it can); its queued statements fail.
pub(crate) fn close(conn: &Shared, lp: &Loop, why: &str) {
    let mut after = Vec::new();
    {
        let mut c = conn.borrow_mut();
        if c.phase == Phase::Ready && c.ops.is_empty() {
            frontend::terminate(&mut c.out);
            let Conn { socket, out, .. } = &mut *c;
            let _ = socket.write(out);
        }
        c.on_broken = None;
        c.fail(lp, PgError::Closed(why.to_owned()), &mut after);
    }
    run_after(lp, after);
}

/// Lets the loop exit while `conn` waits idle (or holds it alive again).
pub(crate) fn set_referenced(conn: &Shared, lp: &Loop, referenced: bool) {
    if let Some(token) = conn.borrow().token {
        if referenced {
            lp.ref_io(token);
        } else {
            lp.unref_io(token);
        }
    }
}

impl Conn {
    /// Statements queued or running.
    pub fn queued(&self) -> usize {
        self.ops.len()
    }

    /// The server process serving this connection, once started.
    pub fn backend_pid(&self) -> Option<i32> {
        self.key.map(|(pid, _)| pid)
    }

    fn on_event(&mut self, lp: &Loop, event: IoEvent, after: &mut Vec<After>) -> IoOutcome {
        if self.phase == Phase::Closed {
            return IoOutcome::Drained;
        }
        if self.phase == Phase::Connecting {
            match self.socket.connected() {
                Ok(true) => self.begin_startup(lp, after),
                Ok(false) if !event.error => return IoOutcome::Drained,
                Ok(false) => {
                    self.fail(lp, PgError::Connect("connect failed".into()), after);
                    return IoOutcome::Drained;
                }
                Err(e) => {
                    let e = PgError::Connect(format!("{:?}: {e}", self.target));
                    self.fail(lp, e, after);
                    return IoOutcome::Drained;
                }
            }
        }
        let mut read = 0;
        let mut outcome = IoOutcome::Drained;
        loop {
            match self.socket.read(&mut self.chunk) {
                Ok(0) => {
                    self.handle_messages(lp, after);
                    let e = PgError::Closed("the server closed the connection".into());
                    self.fail(lp, e, after);
                    return IoOutcome::Drained;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&self.chunk[..n]);
                    read += n;
                    // A short read emptied the socket: the next byte brings
                    // a new edge (save the read that would say WouldBlock),
                    // unless the peer closed, whose 0 must still be read.
                    if n < self.chunk.len() && !event.read_closed {
                        break;
                    }
                    if read >= READ_BUDGET {
                        outcome = IoOutcome::Again;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.handle_messages(lp, after);
                    self.fail(lp, PgError::Closed(e.to_string()), after);
                    return IoOutcome::Drained;
                }
            }
        }
        self.handle_messages(lp, after);
        if self.phase != Phase::Closed {
            self.pump(lp, after);
        }
        outcome
    }

    fn begin_startup(&mut self, lp: &Loop, after: &mut Vec<After>) {
        self.phase = Phase::Starting;
        let params = [
            ("user", self.cfg.user.as_str()),
            ("database", self.cfg.database.as_str()),
            ("application_name", self.cfg.application_name.as_str()),
            ("client_encoding", "UTF8"),
        ];
        if let Err(e) = frontend::startup_message(params.iter().copied(), &mut self.out) {
            return self.fail(lp, PgError::Config(e.to_string()), after);
        }
        self.flush(lp, after);
    }

    /// Parses and handles every whole message in the input buffer.
    fn handle_messages(&mut self, lp: &Loop, after: &mut Vec<After>) {
        while self.phase != Phase::Closed {
            // A length past the bound is refused before any of it is
            // buffered (a broken or hostile server cannot make us hold 2 GiB).
            if self.inbuf.len() >= 5 {
                let len = u32::from_be_bytes([
                    self.inbuf[1],
                    self.inbuf[2],
                    self.inbuf[3],
                    self.inbuf[4],
                ]);
                if len as usize > MAX_MESSAGE {
                    let e = PgError::Protocol(format!(
                        "a message of {len} bytes (more than {MAX_MESSAGE})"
                    ));
                    return self.fail(lp, e, after);
                }
            }
            let message = match Message::parse(&mut self.inbuf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    let e = PgError::Protocol(format!("a malformed message: {e}"));
                    return self.fail(lp, e, after);
                }
            };
            if let Err(e) = self.on_message(lp, message, after) {
                return self.fail(lp, e, after);
            }
        }
    }

    fn password(&self) -> Result<&[u8], PgError> {
        self.cfg
            .password
            .as_deref()
            .map(str::as_bytes)
            .ok_or_else(|| PgError::Auth("the server asks for a password and none is set".into()))
    }

    fn on_message(&mut self, lp: &Loop, m: Message, after: &mut Vec<After>) -> Result<(), PgError> {
        let io = |e: io::Error| PgError::Protocol(e.to_string());
        match m {
            Message::AuthenticationOk => {}
            Message::AuthenticationCleartextPassword => {
                let pw = self.password()?.to_vec();
                frontend::password_message(&pw, &mut self.out).map_err(io)?;
                self.flush(lp, after);
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(self.cfg.user.as_bytes(), self.password()?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut self.out).map_err(io)?;
                self.flush(lp, after);
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut scram = false;
                while let Some(m) = mechanisms.next().map_err(io)? {
                    scram |= m == sasl::SCRAM_SHA_256;
                }
                if !scram {
                    return Err(PgError::Auth("the server offers no SCRAM-SHA-256".into()));
                }
                let state =
                    sasl::ScramSha256::new(self.password()?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response(
                    sasl::SCRAM_SHA_256,
                    state.message(),
                    &mut self.out,
                )
                .map_err(io)?;
                self.scram = Some(state);
                self.flush(lp, after);
            }
            Message::AuthenticationSaslContinue(body) => {
                let mut state = self
                    .scram
                    .take()
                    .ok_or_else(|| PgError::Protocol("SCRAM continued before it began".into()))?;
                let data = body.data().to_vec();
                // The salted password costs thousands of HMAC rounds (as many
                // as the server says): the crypto lane does them, not the loop.
                let weak = self.me.clone();
                Job::new(Lane::Crypto, move || state.update(&data).map(|()| state)).run(
                    lp,
                    move |lp, result| {
                        let Some(conn) = weak.upgrade() else { return };
                        let mut after = Vec::new();
                        conn.borrow_mut().scram_updated(lp, result, &mut after);
                        run_after(lp, after);
                    },
                );
            }
            Message::AuthenticationSaslFinal(body) => {
                let mut state = self
                    .scram
                    .take()
                    .ok_or_else(|| PgError::Protocol("SCRAM ended before it began".into()))?;
                state
                    .finish(body.data())
                    .map_err(|e| PgError::Auth(format!("the server's SCRAM proof: {e}")))?;
            }
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationSspi
            | Message::AuthenticationGssContinue(_) => {
                return Err(PgError::Auth(
                    "the server asks for an authentication method this client lacks (it speaks SCRAM-SHA-256, md5 and password)".into(),
                ));
            }
            Message::BackendKeyData(body) => {
                self.key = Some((body.process_id(), body.secret_key()))
            }
            Message::NotificationResponse(body) => {
                if let Some(hook) = &self.on_notify {
                    let channel = body.channel().map_err(io)?.to_owned();
                    let payload = body.message().map_err(io)?.to_owned();
                    after.push(After::Notify(hook.clone(), channel, payload));
                }
            }
            Message::ParameterStatus(_)
            | Message::NoticeResponse(_)
            | Message::ParseComplete
            | Message::BindComplete
            | Message::CloseComplete
            | Message::NoData
            | Message::EmptyQueryResponse
            | Message::PortalSuspended
            | Message::CopyData(_)
            | Message::CopyDone => {}
            Message::CopyInResponse(_) => {
                frontend::copy_fail(
                    "COPY FROM STDIN is not supported by this client",
                    &mut self.out,
                )
                .map_err(io)?;
                frontend::sync(&mut self.out);
                self.flush(lp, after);
            }
            Message::CopyOutResponse(_) => {
                if let Some(op) = self.front() {
                    op.error.get_or_insert(PgError::Protocol(
                        "COPY TO STDOUT is not supported by this client".into(),
                    ));
                }
            }
            Message::ErrorResponse(body) => {
                let e = DbError::from_fields(body.fields());
                if self.phase == Phase::Starting {
                    return Err(if e.code.starts_with("28") {
                        PgError::Auth(format!("{} ({})", e.message, e.code))
                    } else {
                        PgError::Db(Box::new(e))
                    });
                }
                let fatal = e.is_fatal();
                let e = PgError::Db(Box::new(e));
                if let Some(op) = self.front() {
                    op.error.get_or_insert(e.clone());
                }
                // The server closes the session after a FATAL: later
                // statements get this error, not a bare "closed".
                if fatal {
                    self.broken.get_or_insert(e);
                }
            }
            Message::ParameterDescription(body) => {
                let params: Vec<Oid> = body.parameters().collect().map_err(io)?;
                if let Some(Op {
                    work: Work::Prepare { params: p, .. },
                    ..
                }) = self.front()
                {
                    *p = params;
                }
            }
            Message::RowDescription(body) => {
                let columns: Vec<Column> = body
                    .fields()
                    .map(|f| {
                        Ok(Column {
                            name: f.name().to_owned(),
                            type_oid: f.type_oid(),
                        })
                    })
                    .collect()
                    .map_err(io)?;
                let columns: Rc<[Column]> = columns.into();
                match self.front() {
                    Some(Op {
                        work: Work::Prepare { columns: c, .. } | Work::Simple { columns: c, .. },
                        ..
                    }) => *c = Some(columns),
                    _ => return Err(PgError::Protocol("a row description out of turn".into())),
                }
            }
            Message::DataRow(body) => {
                let ranges: Vec<_> = body
                    .ranges()
                    .collect()
                    .map_err(|e| PgError::Protocol(format!("a malformed row: {e}")))?;
                let data = body.buffer_bytes().clone();
                let Some(op) = self.front() else {
                    return Err(PgError::Protocol("a row out of turn".into()));
                };
                let (columns, text) = match &op.work {
                    Work::Query { columns, .. } => (columns.clone(), false),
                    Work::Simple { columns, .. } => (columns.clone(), true),
                    Work::Prepare { .. } => (None, false),
                };
                let columns =
                    columns.ok_or_else(|| PgError::Protocol("a row before its columns".into()))?;
                let row = Row::new(columns, data, ranges, text)?;
                op.rows.push(row);
            }
            Message::CommandComplete(body) => {
                let tag = body.tag().map_err(io)?;
                let count = tag.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok());
                if let Some(op) = self.front() {
                    op.affected += count.unwrap_or(0);
                    op.tag.clear();
                    op.tag.push_str(tag);
                }
            }
            Message::ReadyForQuery(body) => {
                self.tx_status = body.status();
                if self.phase == Phase::Starting {
                    self.phase = Phase::Ready;
                    self.flush(lp, after);
                    if let Some(opening) = self.opening.take() {
                        if let Some(me) = self.me.upgrade() {
                            // Run `finish` after the borrow: it hands the
                            // connection over, and its taker may queue on it.
                            after.push(After::Hook(Box::new(move |lp| {
                                finish(lp, &opening, Ok(me))
                            })));
                        }
                    }
                } else {
                    self.complete_front(lp, after)?;
                }
            }
            _ => return Err(PgError::Protocol("an unexpected message".into())),
        }
        Ok(())
    }

    fn scram_updated(
        &mut self,
        lp: &Loop,
        result: Result<io::Result<sasl::ScramSha256>, phaseloop_core::PoolError>,
        after: &mut Vec<After>,
    ) {
        if self.phase != Phase::Starting {
            return;
        }
        let state = match result {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => return self.fail(lp, PgError::Auth(format!("SCRAM: {e}")), after),
            Err(e) => {
                return self.fail(lp, PgError::Auth(format!("SCRAM on the pool: {e}")), after)
            }
        };
        if let Err(e) = frontend::sasl_response(state.message(), &mut self.out) {
            return self.fail(lp, PgError::Protocol(e.to_string()), after);
        }
        self.scram = Some(state);
        self.flush(lp, after);
    }

    /// The in-flight op whose answers are arriving.
    fn front(&mut self) -> Option<&mut Op> {
        if self.in_flight == 0 {
            return None;
        }
        self.ops.front_mut()
    }

    /// A ReadyForQuery ended the front op's Sync group.
    fn complete_front(&mut self, lp: &Loop, after: &mut Vec<After>) -> Result<(), PgError> {
        if self.in_flight == 0 {
            return Err(PgError::Protocol(
                "ReadyForQuery with nothing in flight".into(),
            ));
        }
        let Some(mut op) = self.ops.pop_front() else {
            return Err(PgError::Protocol(
                "ReadyForQuery with nothing queued".into(),
            ));
        };
        self.in_flight -= 1;
        if let Some(t) = op.timer.take() {
            lp.clear_timer(t);
        }
        let result = match op.error {
            Some(PgError::Db(e)) if e.code == "57014" && op.cancelled.is_some() => Err(
                PgError::Timeout(PgTimeout::Statement, op.cancelled.unwrap_or_default()),
            ),
            Some(e) => Err(e),
            None => Ok(Outcome {
                rows: op.rows,
                affected: op.affected,
                tag: op.tag,
            }),
        };
        match op.work {
            Work::Prepare {
                sql,
                name,
                params,
                columns,
            } => {
                self.barrier = false;
                match result {
                    Err(e) => self.fail_waiting_for(lp, &sql, &e, after),
                    Ok(_) => {
                        self.uses += 1;
                        let statement = Statement {
                            name,
                            params,
                            columns: columns.unwrap_or_else(|| Rc::from(Vec::new())),
                            last_used: self.uses,
                        };
                        self.statements.insert(sql, statement);
                    }
                }
            }
            Work::Query { done, sql, .. } => {
                // A statement the server no longer accepts (its plan's
                // result type changed under it, or it is gone) is prepared
                // afresh next time.
                if let Err(e) = &result {
                    if matches!(e.code(), Some("0A000" | "26000")) {
                        if let Some(s) = self.statements.remove(&sql) {
                            let _ = frontend::close(b'S', &s.name, &mut self.out);
                        }
                    }
                }
                self.answer(lp, op.queued_ns, done, result, after);
            }
            Work::Simple { done, .. } => self.answer(lp, op.queued_ns, done, result, after),
        }
        if self.ops.is_empty() {
            if let Some(hook) = self.on_drained.take() {
                after.push(After::Hook(hook));
            }
        }
        Ok(())
    }

    /// A statement could not be prepared: every query still waiting for it
    /// fails the same way.
    fn fail_waiting_for(&mut self, lp: &Loop, sql: &Rc<str>, e: &PgError, after: &mut Vec<After>) {
        let mut i = self.in_flight;
        while i < self.ops.len() {
            if !matches!(&self.ops[i].work, Work::Query { sql: s, .. } if s == sql) {
                i += 1;
                continue;
            }
            if let Some(failed) = self.ops.remove(i) {
                self.abandon(lp, failed, e, after);
            }
        }
    }

    /// Ends `op` without (more of) an answer from the server: its timer
    /// goes, and its caller gets the server's own error if one came, else
    /// `error`.
    fn abandon(&self, lp: &Loop, mut op: Op, error: &PgError, after: &mut Vec<After>) {
        if let Some(t) = op.timer.take() {
            lp.clear_timer(t);
        }
        let e = op.error.take().unwrap_or_else(|| error.clone());
        if let Work::Query { done, .. } | Work::Simple { done, .. } = op.work {
            self.answer(lp, op.queued_ns, done, Err(e), after);
        }
    }

    /// Records a statement's figures and queues its caller's callback.
    fn answer(
        &self,
        lp: &Loop,
        queued_ns: u64,
        done: Option<Done>,
        result: Result<Outcome, PgError>,
        after: &mut Vec<After>,
    ) {
        self.record(lp, queued_ns, result.as_ref().err().and_then(PgError::code));
        if let Some(done) = done {
            after.push(After::Op(done, result));
        }
    }

    fn record(&self, lp: &Loop, queued_ns: u64, code: Option<&str>) {
        if let Some(recorder) = &self.recorder {
            recorder(lp.now_ns().saturating_sub(queued_ns), code);
        }
    }

    /// Writes every queued op it can, then flushes.
    fn pump(&mut self, lp: &Loop, after: &mut Vec<After>) {
        if self.phase != Phase::Ready {
            return;
        }
        while !self.barrier && self.in_flight < self.ops.len() {
            let i = self.in_flight;
            let step = {
                let Conn {
                    ops,
                    statements,
                    out,
                    uses,
                    scratch,
                    ..
                } = &mut *self;
                match &mut ops[i].work {
                    Work::Query {
                        sql,
                        params,
                        columns,
                        ..
                    } => match statements.get_mut(&**sql) {
                        Some(statement) => {
                            *uses += 1;
                            statement.last_used = *uses;
                            *columns = Some(statement.columns.clone());
                            let mark = out.len();
                            match encode_bind(statement, params, scratch, out) {
                                Ok(()) => Step::Written,
                                Err(e) => {
                                    out.truncate(mark);
                                    Step::Failed(e)
                                }
                            }
                        }
                        None => Step::Prepare(sql.clone()),
                    },
                    Work::Simple { sql, .. } => match frontend::query(sql, out) {
                        Ok(()) => Step::Written,
                        Err(e) => Step::Failed(PgError::Conversion(format!("the query: {e}"))),
                    },
                    Work::Prepare { .. } => Step::Written,
                }
            };
            match step {
                Step::Written => self.in_flight += 1,
                Step::Prepare(sql) => self.write_prepare(sql, i),
                Step::Failed(e) => {
                    if let Some(op) = self.ops.remove(i) {
                        self.abandon(lp, op, &e, after);
                    }
                    if self.ops.is_empty() {
                        if let Some(hook) = self.on_drained.take() {
                            after.push(After::Hook(hook));
                        }
                    }
                }
            }
        }
        self.flush(lp, after);
    }

    /// Queues a Prepare op for `sql` at position `at` (before the query
    /// that needs it) and writes it: Close of the least recently used
    /// statement if the cache is full, Parse, Describe, Sync.
    fn write_prepare(&mut self, sql: Rc<str>, at: usize) {
        if self.statements.len() >= self.statement_cap {
            let oldest = self
                .statements
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                if let Some(s) = self.statements.remove(&key) {
                    // In the pipe after every Bind that used it.
                    let _ = frontend::close(b'S', &s.name, &mut self.out);
                }
            }
        }
        self.next_name += 1;
        let name = format!("pl{}", self.next_name);
        let mark = self.out.len();
        let written = frontend::parse(&name, &sql, std::iter::empty(), &mut self.out)
            .and_then(|()| frontend::describe(b'S', &name, &mut self.out));
        if written.is_err() {
            // A statement with a NUL byte: let the server's own error
            // (through a simple query of the same text) not be needed; the
            // query fails here.
            self.out.truncate(mark);
        }
        frontend::sync(&mut self.out);
        let id = self.next_op;
        self.next_op += 1;
        let mut op = Op {
            id,
            work: Work::Prepare {
                sql,
                name,
                params: Vec::new(),
                columns: None,
            },
            rows: Vec::new(),
            affected: 0,
            tag: String::new(),
            error: None,
            timer: None,
            cancelled: None,
            queued_ns: 0,
        };
        if let Err(e) = written {
            op.error = Some(PgError::Conversion(format!("the statement's text: {e}")));
        }
        self.ops.insert(at, op);
        self.in_flight += 1;
        self.barrier = true;
    }

    /// Writes the output buffer until the socket would block; asks for
    /// writable events only while output waits.
    fn flush(&mut self, lp: &Loop, after: &mut Vec<After>) {
        while !self.out.is_empty() {
            match self.socket.write(&self.out) {
                Ok(0) => {
                    return self.fail(
                        lp,
                        PgError::Closed("the socket takes no more".into()),
                        after,
                    )
                }
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(lp, PgError::Closed(e.to_string()), after),
            }
        }
        let want = !self.out.is_empty() || self.phase != Phase::Ready;
        if want != self.wants_writable {
            if let Some(token) = self.token {
                let interest = if want {
                    mio::Interest::READABLE | mio::Interest::WRITABLE
                } else {
                    mio::Interest::READABLE
                };
                if let Err(e) = lp.reregister_io(token, &mut self.socket, interest) {
                    return self.fail(lp, PgError::Closed(e.to_string()), after);
                }
                self.wants_writable = want;
            }
        }
    }

    /// A statement's deadline passed: unsent, it is dropped; running, the
    /// server is asked to cancel it, and if it has not answered within a
    /// grace period the connection is closed.
    fn on_deadline(&mut self, lp: &Loop, id: u64, limit: Duration, after: &mut Vec<After>) {
        let Some(i) = self.ops.iter().position(|op| op.id == id) else {
            return;
        };
        self.ops[i].timer = None;
        if i >= self.in_flight {
            // Never sent (it waited behind others): it fails unsent.
            if let Some(op) = self.ops.remove(i) {
                self.abandon(
                    lp,
                    op,
                    &PgError::Timeout(PgTimeout::Statement, limit),
                    after,
                );
            }
            if self.ops.is_empty() {
                if let Some(hook) = self.on_drained.take() {
                    after.push(After::Hook(hook));
                }
            }
            return;
        }
        if self.ops[i].cancelled.is_some() {
            return;
        }
        self.ops[i].cancelled = Some(limit);
        if let Some((pid, secret)) = self.key {
            cancel::send(lp, &self.target, pid, secret);
        }
        let weak = self.me.clone();
        let grace = self.grace;
        let timer = lp.set_timeout(grace, move |lp| {
            let Some(conn) = weak.upgrade() else { return };
            let mut after = Vec::new();
            {
                let mut c = conn.borrow_mut();
                if c.ops.iter().any(|op| op.id == id) {
                    let e = PgError::Timeout(PgTimeout::Statement, limit);
                    c.fail(lp, e, &mut after);
                }
            }
            run_after(lp, after);
        });
        lp.unref_timer(timer);
    }

    /// The connection is over: every queued op fails (with its own server
    /// error if it got one), the pool is told.
    pub(crate) fn fail(&mut self, lp: &Loop, error: PgError, after: &mut Vec<After>) {
        if self.phase == Phase::Closed {
            return;
        }
        let was_ready = self.phase == Phase::Ready;
        self.phase = Phase::Closed;
        let error = self.broken.take().unwrap_or(error);
        self.broken = Some(error.clone());
        if let Some(token) = self.token.take() {
            let _ = lp.deregister_io(token, &mut self.socket);
        }
        let _ = match &self.socket {
            Socket::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
        self.in_flight = 0;
        self.barrier = false;
        while let Some(op) = self.ops.pop_front() {
            self.abandon(lp, op, &error, after);
        }
        self.on_drained = None;
        if let Some(opening) = self.opening.take() {
            let e = error.clone();
            after.push(After::Hook(Box::new(move |lp| {
                finish(lp, &opening, Err(e))
            })));
        } else if was_ready {
            if let Some(hook) = self.on_broken.take() {
                after.push(After::Hook(hook));
            }
        }
    }
}

/// Bind (the statement's parameter types decide each value's encoding;
/// all results in the binary format), Execute, Sync.
fn encode_bind(
    statement: &Statement,
    params: &[Value],
    scratch: &mut Scratch,
    out: &mut BytesMut,
) -> Result<(), PgError> {
    if params.len() != statement.params.len() {
        return Err(PgError::Conversion(format!(
            "the statement takes {} parameters, {} given",
            statement.params.len(),
            params.len()
        )));
    }
    // Formats first (the message's layout), so encode into scratch space.
    let Scratch {
        bytes,
        formats,
        spans,
    } = scratch;
    bytes.clear();
    formats.clear();
    spans.clear();
    for (i, (value, &ty)) in params.iter().zip(&statement.params).enumerate() {
        let start = bytes.len();
        let format = types::encode(value, ty, bytes)
            .map_err(|m| PgError::Conversion(format!("parameter ${}: {m}", i + 1)))?;
        formats.push(format.unwrap_or(types::BINARY_FORMAT));
        spans.push(format.map(|_| start..bytes.len()));
    }
    let bound = frontend::bind(
        "",
        &statement.name,
        formats.iter().copied(),
        spans.iter(),
        |span, buf| match span {
            Some(r) => {
                buf.extend_from_slice(&bytes[r.clone()]);
                Ok(postgres_protocol::IsNull::No)
            }
            None => Ok(postgres_protocol::IsNull::Yes),
        },
        Some(types::BINARY_FORMAT),
        out,
    );
    if let Err(e) = bound {
        return Err(PgError::Conversion(match e {
            frontend::BindError::Conversion(e) => e.to_string(),
            frontend::BindError::Serialization(e) => e.to_string(),
        }));
    }
    frontend::execute("", 0, out).map_err(|e| PgError::Conversion(e.to_string()))?;
    frontend::sync(out);
    Ok(())
}

/// Space Bind's parameters are encoded in before the message is written.
#[derive(Default)]
struct Scratch {
    bytes: BytesMut,
    formats: Vec<i16>,
    spans: Vec<Option<std::ops::Range<usize>>>,
}
