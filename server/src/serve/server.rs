//! `Server`: one app served on one loop, on the engine.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use mio::net::TcpListener;
use phaseloop_core::{Loop, Signal};

use crate::api::app::App;
use crate::api::dispatch::Dispatcher;
use crate::engine::config::ServerConfig;
use crate::engine::{Engine, RouteStats, ServerStats};
use crate::serve::listener::bind_listener;

/// What runs once a drain that a signal started is over.
type OnDrained = Box<dyn FnOnce(&Loop)>;

/// An HTTP/1.1 server running on a [`Loop`].
///
/// ```no_run
/// use phaseloop::{App, Server, ServerConfig};
/// use phaseloop_core::{Loop, RunMode};
///
/// let lp = Loop::new().unwrap();
/// let app = App::new().get("/", |_req, _| "Hello, World!");
/// let server = Server::bind(&lp, "127.0.0.1:3000".parse().unwrap(), app, ServerConfig::default()).unwrap();
/// println!("listening on {}", server.local_addr());
/// lp.run(RunMode::Default);
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<Engine<Dispatcher>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.inner.local_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listens on `addr` and serves `app` on `lp` (once `lp` runs).
    ///
    /// The loop is set to catch panics ([`Loop::set_catch_panics`]): a
    /// handler that panics in a callback it scheduled (a timer, an
    /// immediate, a pool job's completion) answers 500 for its request, as
    /// one that panics at once does, and the loop serves on. A program
    /// that prefers a panic to end the run calls
    /// `lp.set_catch_panics(false)` after binding.
    pub fn bind<S: 'static>(
        lp: &Loop,
        addr: SocketAddr,
        app: App<S>,
        cfg: ServerConfig,
    ) -> io::Result<Server> {
        let listener = bind_listener(addr, cfg.backlog, cfg.reuse_port)?;
        Server::from_listener(lp, listener, app, cfg)
    }

    /// Serves `app` on an already bound, nonblocking listener (the loop
    /// catches panics from then on, as with [`Server::bind`]).
    pub fn from_listener<S: 'static>(
        lp: &Loop,
        listener: TcpListener,
        app: App<S>,
        cfg: ServerConfig,
    ) -> io::Result<Server> {
        lp.set_catch_panics(true);
        let inner = Engine::start(lp, listener, app.into_dispatcher(), cfg)?;
        Ok(Server { inner })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// Bytes of buffer memory held by connections now (read and write
    /// buffers plus answered responses waiting for their turn). Idle
    /// keep-alive connections hold none.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes()
    }

    /// Responses by route and status, and each route's p99 latency.
    pub fn route_stats(&self) -> Vec<RouteStats> {
        self.inner.route_stats()
    }

    /// Time from dispatch to response of every request so far, in
    /// microseconds, measured on the loop's clock (one tick resolution:
    /// answers given during the dispatch count as 1 µs).
    pub fn latency_histogram(&self) -> hdrhistogram::Histogram<u64> {
        self.inner.latency_histogram()
    }

    /// A copy of the server's counters.
    pub fn stats(&self) -> ServerStats {
        self.inner.stats()
    }

    /// Graceful shutdown: stop accepting, close idle connections, let
    /// in-flight requests finish (their responses say `Connection: close`),
    /// and force-close whatever remains after `deadline`. `done` runs as a
    /// next tick once the last connection is gone (after that connection's
    /// close-phase callback; at once after the current callback if none is
    /// open), as Node emits a server's `'close'`.
    pub fn shutdown(&self, lp: &Loop, deadline: Duration, done: impl FnOnce(&Loop) + 'static) {
        // WebSockets are the loop's, no longer the server's: they are told
        // the server is going away (1001).
        crate::ws::close_all(lp);
        self.inner.begin_shutdown(lp, deadline, Box::new(done));
    }

    /// Drains on SIGINT or SIGTERM: the first starts a graceful
    /// [`Server::shutdown`] (`done` runs when it is over), a second stops
    /// the loop at once. Fails if another loop of this process already
    /// receives signals.
    pub fn drain_on_signals(
        &self,
        lp: &Loop,
        deadline: Duration,
        done: impl FnOnce(&Loop) + 'static,
    ) -> io::Result<()> {
        // Shared by both signals' handlers; the first to drain takes it.
        let done: Rc<Cell<Option<OnDrained>>> = Rc::new(Cell::new(Some(Box::new(done))));
        for signal in [Signal::Int, Signal::Term] {
            let (server, done) = (self.clone(), done.clone());
            let mut draining = false;
            lp.on_signal(signal, move |lp, signal| {
                if std::mem::replace(&mut draining, true) {
                    phaseloop_core::report!(info, {}, "phaseloop: {signal} again: stopping now");
                    return lp.stop();
                }
                let Some(done) = done.take() else {
                    return; // the other signal started the drain
                };
                phaseloop_core::report!(
                    info,
                    {},
                    "phaseloop: {signal}: finishing in-flight requests"
                );
                server.shutdown(lp, deadline, done);
            })?;
        }
        Ok(())
    }
}
