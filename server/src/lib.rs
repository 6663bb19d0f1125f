//! # phaseloop
//!
//! An HTTP/1.1 server framework on the [`phaseloop_core`] event loop: requests
//! are accepted, parsed and answered over nonblocking sockets in the loop's
//! poll phase; handlers answer at once, later from any loop callback, or as
//! `async` functions on the loop's promise-job queue.
//!
//! ```no_run
//! use phaseloop::{App, Response};
//!
//! let app = App::new()
//!     .get("/", |_lp, _req, res| res.text(200, "Hello, World!"))
//!     .get("/slow", |lp, _req, res| {
//!         lp.set_timeout(std::time::Duration::from_secs(3), move |_| res.text(200, "Slow response"));
//!     })
//!     .get_async("/async", |_req| async { Response::text(200, "from a future") });
//! phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app).unwrap();
//! ```
//!
//! Map (layers, each a folder; imports go downwards only):
//! `serve/` (listener, cluster, supervisor) → `api/` (the app, router,
//! handlers, middleware, responder) → `engine/` (connections, their
//! buffers, queues, deadlines and streams, on the loop) → `http/` (pure
//! HTTP/1.1: parsing, encoding, the request and response types).
//! `docs/ARCHITECTURE.md` draws it.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod api;
mod engine;
pub mod http;
mod serve;

pub use api::app::App;
pub use api::handler::{Handler, Middleware, Next};
pub use api::middleware;
pub use api::responder::{BodyWriter, Responder};
pub use engine::config::*;
pub use engine::connection::StreamError;
pub use engine::limits::open_files_limit;
pub use engine::{RouteStats, ServerStats};
pub use http::request::{percent_decode, Method, Request};
pub use http::response::{Body, HeaderValue, Response};
pub use serve::cluster::{Cluster, ClusterStats, LoopInfo, STATS_PUBLISH_INTERVAL};
pub use serve::listener::bind_listener;
pub use serve::server::Server;
pub use serve::supervisor;

pub use phaseloop_core as core;

use std::io;
use std::net::SocketAddr;

/// Serves apps from `make_app` on `addr` with one loop per available core
/// (see [`Cluster`]), until the process ends.
pub fn serve_cluster<F>(addr: SocketAddr, make_app: F) -> io::Result<()>
where
    F: Fn(&phaseloop_core::Loop, &LoopInfo) -> App + Send + Sync + 'static,
{
    Cluster::start(
        addr,
        Cluster::default_loops(),
        ServerConfig::default(),
        make_app,
    )?
    .join();
    Ok(())
}

/// Serves `app` on `addr` on a new loop on this thread, until the process
/// ends: the one-line way to run a server.
pub fn serve(addr: SocketAddr, app: App) -> io::Result<()> {
    let lp = phaseloop_core::Loop::new()?;
    let _server = Server::bind(&lp, addr, app, ServerConfig::default())?;
    lp.run(phaseloop_core::RunMode::Default);
    Ok(())
}
