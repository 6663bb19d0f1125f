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
//! Map: `codec/` is the pure HTTP/1.1 codec (bytes in, requests out;
//! responses in, bytes out); `connection.rs` owns a socket's state;
//! `server.rs` wires both to the loop; `app.rs`, `router.rs`, `handler.rs`,
//! `request.rs`, `response.rs`, `responder.rs` are the handler API.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod app;
mod cluster;
pub mod codec;
mod config;
mod connection;
mod handler;
mod listener;
pub mod middleware;
mod path_table;
mod read_buffer;
mod request;
mod responder;
mod response;
mod router;
mod server;
mod spares;
pub mod supervisor;

pub use app::App;
pub use cluster::{Cluster, ClusterStats, LoopInfo, STATS_PUBLISH_INTERVAL};
pub use config::*;
pub use connection::StreamError;
pub use handler::{Handler, Middleware, Next};
pub use listener::bind_listener;
pub use request::{percent_decode, Method, Request};
pub use responder::{BodyWriter, Responder};
pub use response::{Body, HeaderValue, Response};
pub use server::{RouteStats, Server, ServerStats};

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
