//! # phaseloop
//!
//! An HTTP/1.1 server framework on the [`phaseloop_core`] event loop: requests
//! are accepted, parsed and answered over nonblocking sockets in the loop's
//! poll phase; handlers answer at once, later from any loop callback, or as
//! `async` functions on the loop's promise-job queue.
//!
//! ```no_run
//! use phaseloop::{App, Error, Json};
//!
//! let app = App::new()
//!     .get("/", |_req, _| "Hello, World!")
//!     .get("/users/:id", |req, _| {
//!         let id: u64 = req.param_as("id")?; // 400 naming `id` if it is not a number
//!         if id == 0 {
//!             return Err(Error::not_found("no user 0"));
//!         }
//!         Ok(Json(serde_json::json!({ "id": id })))
//!     })
//!     .get_with("/slow", |lp, _req, res| {
//!         lp.set_timeout(std::time::Duration::from_secs(3), move |_| res.text(200, "Slow response"));
//!     })
//!     .get_async("/async", |_req, _| async { "from a future" });
//! // Serves until SIGINT or SIGTERM, then drains and returns.
//! phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app).unwrap();
//! ```
//!
//! Users read `docs/GUIDE.md`.
//!
//! Map (layers, each a folder; imports go downwards only):
//! `serve/` (listener, cluster, supervisor) → `api/` (the app, router,
//! handlers, middleware, responder) → `ws/` (WebSocket) → `engine/`
//! (connections, their buffers, queues, deadlines and streams, on the
//! loop) → `client/` (the HTTP client) → `pg/` (PostgreSQL) → `net/` (the
//! socket, or TLS over it) → `http/` (pure HTTP/1.1: parsing, encoding,
//! the request and response types). `docs/ARCHITECTURE.md` draws it.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod api;
pub mod client;
mod engine;
pub mod http;
mod net;
#[cfg(feature = "postgres")]
pub mod pg;
mod serve;
pub mod ws;

pub use api::app::App;
pub use api::dashboard::DashboardAccess;
pub use api::error::{render_default, ErrorInfo};
pub use api::handler::{Handler, Middleware, Next};
pub use api::middleware;
pub use api::redirect::https_redirect;
pub use api::responder::{BodyWriter, Responder, SendOn};
pub use api::serve_dir::{ServeDir, ServeFile};
/// Server-Sent Events: [`Responder::sse`]'s writer and events.
pub mod sse {
    pub use crate::api::sse::{SseEvent, SseWriter, SSE_KEEP_ALIVE};
}
pub use engine::config::{DataRate, ServerConfig};
/// HTTPS on the loop with rustls (feature `tls`): set
/// [`ServerConfig::tls`] to a [`tls::TlsConfig`]. The HTTP client's side
/// is [`client::ClientTls`].
#[cfg(feature = "tls")]
pub mod tls {
    pub use crate::engine::tls::TlsConfig;
}
pub use engine::exchange::StreamError;
pub use engine::limits::open_files_limit;
pub use engine::{RouteStats, ServerStats};
pub use http::request::{percent_decode, Method, Request};
pub use http::response::{Body, HeaderValue, Response};
pub use http::{Cookie, Error, Form, FromRequest, IntoResponse, Json, Path, Query, StatusCode};
pub use serve::cluster::{Cluster, ClusterStats, LoopInfo, STATS_PUBLISH_INTERVAL};
pub use serve::listener::bind_listener;
#[cfg(feature = "prometheus")]
pub use serve::metrics;
pub use serve::server::Server;
pub use serve::supervisor;
pub use serve::testing;

#[cfg(doctest)]
#[doc = include_str!("../../docs/GUIDE.md")]
/// The user guide's code blocks, compiled and run as doc tests.
pub struct GuideDoctests;

pub use phaseloop_core as core;
pub use phaseloop_core::Signal;

/// The server's defaults, one constant per [`ServerConfig`] field.
pub mod defaults {
    pub use crate::engine::config::{
        DEFAULT_ACCEPT_PAUSE, DEFAULT_BACKLOG, DEFAULT_BODY_TIMEOUT, DEFAULT_DRAIN_IDLE_GRACE,
        DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_HEADERS,
        DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_PIPELINE, DEFAULT_MAX_REQUEST_LINE,
        DEFAULT_MAX_UNANSWERED, DEFAULT_MIN_BODY_RATE, DEFAULT_MIN_RESPONSE_RATE,
        DEFAULT_REQUEST_TIMEOUT, DEFAULT_SEND_TIMEOUT, DEFAULT_SHUTDOWN_DEADLINE,
        DEFAULT_WRITE_HIGH_WATER,
    };
}

/// Re-exported: [`Server::latency_histogram`] returns one.
pub use hdrhistogram;

use std::io;
use std::net::SocketAddr;

/// Serves `app` on `addr` on a new loop on this thread. On SIGINT or
/// SIGTERM it stops accepting, lets in-flight requests finish (up to
/// [`ServerConfig::shutdown_deadline`]) and returns; a second signal
/// stops at once.
pub fn serve<S: 'static>(addr: SocketAddr, app: App<S>) -> io::Result<()> {
    serve_with(addr, app, ServerConfig::default())
}

/// [`serve`] with a configuration of your own.
pub fn serve_with<S: 'static>(addr: SocketAddr, app: App<S>, cfg: ServerConfig) -> io::Result<()> {
    let lp = phaseloop_core::Loop::new()?;
    let deadline = cfg.shutdown_deadline;
    let server = Server::bind(&lp, addr, app, cfg)?;
    if let Err(e) = server.drain_on_signals(&lp, deadline, |lp| lp.stop()) {
        phaseloop_core::report!(
            warn,
            {},
            "phaseloop: serving without a drain on signals: {e}"
        );
    }
    lp.run(phaseloop_core::RunMode::Default);
    Ok(())
}

/// Serves apps from `make_app` on `addr` with one loop per available core
/// (see [`Cluster`]). On SIGINT or SIGTERM every loop drains (up to the
/// default [`ServerConfig::shutdown_deadline`]) and it returns.
pub fn serve_cluster<F, S: 'static>(addr: SocketAddr, make_app: F) -> io::Result<()>
where
    F: Fn(&phaseloop_core::Loop, &LoopInfo) -> App<S> + Send + Sync + 'static,
{
    let cfg = ServerConfig::default();
    let deadline = cfg.shutdown_deadline;
    Cluster::start(addr, Cluster::default_loops(), cfg, make_app)?.run_until_signal(deadline)
}
