//! LISTEN/NOTIFY: [`Listener`], a connection of its own (outside the
//! pool's count) that LISTENs on channels and hands each notification to
//! a callback on the loop. It reconnects when the connection is lost
//! (backoff 100 ms to 5 s) and says so: notifications sent while it was
//! away are lost, so a user re-reads what it follows on `Listening`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{Loop, TimerId};

use crate::pg::connection::{self, OpenOptions, Shared, Submit};
use crate::pg::error::PgError;
use crate::pg::pool::Pool;
use crate::pg::ConnectConfig;

/// First wait before reconnecting; it doubles up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between reconnections.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What a [`Listener`] tells its callback.
#[derive(Debug)]
pub enum ListenEvent<'a> {
    /// LISTEN took effect (at first, and after each reconnection):
    /// notifications from now on arrive; any sent before are not.
    Listening,
    /// A NOTIFY on one of the channels.
    Notification {
        /// The channel.
        channel: &'a str,
        /// The payload (empty when NOTIFY gave none).
        payload: &'a str,
    },
    /// The connection was lost (or could not be made); it reconnects.
    Lost(&'a PgError),
}

type OnEvent = Box<dyn FnMut(&Loop, ListenEvent<'_>)>;

/// A LISTEN connection; [`Listener::close`] ends it (dropping every handle
/// does too). It does not keep the loop alive.
#[derive(Clone)]
pub struct Listener {
    inner: Rc<ListenInner>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("channels", &self.inner.channels)
            .field("connected", &self.inner.conn.borrow().is_some())
            .finish()
    }
}

struct ListenInner {
    channels: Vec<String>,
    /// The pool's connect settings (the pool itself is not kept alive).
    connect: Rc<ConnectConfig>,
    connect_timeout: Duration,
    conn: RefCell<Option<Shared>>,
    on_event: RefCell<Option<OnEvent>>,
    closed: Cell<bool>,
    wait: Cell<Duration>,
    timer: Cell<Option<TimerId>>,
    next_id: Cell<u64>,
}

impl Drop for ListenInner {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            Loop::with_current(|lp| connection::close(&conn, lp, "the listener is gone"));
        }
    }
}

/// `LISTEN "name"`, the name quoted as an identifier.
fn listen_sql(channels: &[String]) -> String {
    channels
        .iter()
        .map(|c| format!("LISTEN \"{}\";", c.replace('"', "\"\"")))
        .collect()
}

impl Pool {
    /// LISTENs on `channels` on a connection of its own, made with this
    /// pool's settings (not counted in its `max`); `on_event` gets
    /// [`ListenEvent`]s on this loop.
    pub fn listen(
        &self,
        lp: &Loop,
        channels: &[&str],
        on_event: impl FnMut(&Loop, ListenEvent<'_>) + 'static,
    ) -> Listener {
        let (settings, connect_timeout) = self.connect_settings();
        let inner = Rc::new(ListenInner {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            connect: settings,
            connect_timeout,
            conn: RefCell::new(None),
            on_event: RefCell::new(Some(Box::new(on_event))),
            closed: Cell::new(false),
            wait: Cell::new(RECONNECT_FIRST),
            timer: Cell::new(None),
            next_id: Cell::new(1 << 40),
        });
        connect(&inner, lp);
        Listener { inner }
    }
}

impl Listener {
    /// Stops listening and closes the connection.
    pub fn close(&self, lp: &Loop) {
        self.inner.closed.set(true);
        if let Some(t) = self.inner.timer.take() {
            lp.clear_timer(t);
        }
        if let Some(conn) = self.inner.conn.borrow_mut().take() {
            connection::close(&conn, lp, "the listener was closed");
        }
    }

    /// The backend's process id while connected (for
    /// `pg_terminate_backend` in a test, say).
    pub fn backend_pid(&self) -> Option<i32> {
        self.inner
            .conn
            .borrow()
            .as_ref()
            .and_then(|c| c.borrow().backend_pid())
    }
}

fn tell(inner: &Rc<ListenInner>, lp: &Loop, event: ListenEvent<'_>) {
    // Taken out while it runs: it may close the listener.
    let f = inner.on_event.borrow_mut().take();
    if let Some(mut f) = f {
        f(lp, event);
        let mut slot = inner.on_event.borrow_mut();
        if slot.is_none() {
            *slot = Some(f);
        }
    }
}

fn connect(inner: &Rc<ListenInner>, lp: &Loop) {
    if inner.closed.get() {
        return;
    }
    let opts = {
        let id = inner.next_id.get();
        inner.next_id.set(id + 1);
        OpenOptions {
            id,
            cfg: inner.connect.clone(),
            connect_timeout: inner.connect_timeout,
            statement_timeout: None,
            statement_cap: 16,
            recorder: None,
        }
    };
    let weak = Rc::downgrade(inner);
    connection::open(lp, opts, move |lp, result| {
        let Some(inner) = weak.upgrade() else {
            if let Ok(conn) = result {
                connection::close(&conn, lp, "the listener is gone");
            }
            return;
        };
        match result {
            Err(e) => lost(&inner, lp, &e),
            Ok(conn) => subscribe(&inner, lp, conn),
        }
    });
}

fn subscribe(inner: &Rc<ListenInner>, lp: &Loop, conn: Shared) {
    if inner.closed.get() {
        return connection::close(&conn, lp, "the listener was closed");
    }
    // A listener alone does not keep the loop alive.
    connection::set_referenced(&conn, lp, false);
    {
        let mut c = conn.borrow_mut();
        let weak = Rc::downgrade(inner);
        c.on_notify = Some(Rc::new(move |lp, channel, payload| {
            if let Some(inner) = weak.upgrade() {
                tell(&inner, lp, ListenEvent::Notification { channel, payload });
            }
        }));
        let weak = Rc::downgrade(inner);
        let me = Rc::downgrade(&conn);
        c.on_broken = Some(Box::new(move |lp| {
            let Some(inner) = weak.upgrade() else { return };
            let why = me
                .upgrade()
                .and_then(|c| c.borrow().broken.clone())
                .unwrap_or_else(|| PgError::Closed("the listener's connection broke".into()));
            inner.conn.borrow_mut().take();
            lost(&inner, lp, &why);
        }));
    }
    *inner.conn.borrow_mut() = Some(conn.clone());
    let weak = Rc::downgrade(inner);
    connection::submit(
        &conn,
        lp,
        Submit::Simple(listen_sql(&inner.channels)),
        Box::new(move |lp, result| {
            let Some(inner) = weak.upgrade() else { return };
            match result {
                Ok(_) => {
                    inner.wait.set(RECONNECT_FIRST);
                    tell(&inner, lp, ListenEvent::Listening);
                }
                // A LISTEN refused (a bad name, say): said, then the
                // connection breaks and the retries say it again.
                Err(e) => {
                    if let Some(conn) = inner.conn.borrow_mut().take() {
                        connection::close(&conn, lp, "LISTEN failed");
                    }
                    lost(&inner, lp, &e);
                }
            }
        }),
    );
}

fn lost(inner: &Rc<ListenInner>, lp: &Loop, why: &PgError) {
    if inner.closed.get() {
        return;
    }
    tell(inner, lp, ListenEvent::Lost(why));
    let wait = inner.wait.get();
    inner.wait.set((wait * 2).min(RECONNECT_MAX));
    let weak = Rc::downgrade(inner);
    let timer = lp.set_timeout(wait, move |lp| {
        if let Some(inner) = weak.upgrade() {
            inner.timer.set(None);
            connect(&inner, lp);
        }
    });
    lp.unref_timer(timer);
    inner.timer.set(Some(timer));
}
