//! An HTTP/1.1 client on the loop, for handlers and services that call
//! other services: keep-alive connections pooled per origin (as Node's
//! `http.Agent({ keepAlive: true })`), nonblocking connects in the poll
//! phase, host names resolved on the thread pool's dns lane, the same
//! HTTP/1.1 codec as the server in the client role (`http::client_role`),
//! typed errors, timeouts, and retries only where they are safe.
//!
//! A [`Client`] belongs to one loop (it is `!Send`); make one per loop,
//! for instance in per-loop state. Two ways to call it:
//!
//! ```no_run
//! use phaseloop::client::{Client, ClientRequest};
//! # fn f(lp: &phaseloop::core::Loop) {
//! let client = Client::new(Default::default());
//! // A callback, Node style:
//! client.send(lp, ClientRequest::get("http://127.0.0.1:3000/health"), |_lp, result| {
//!     match result {
//!         Ok(response) => println!("{} {}", response.status, response.text()),
//!         Err(e) => eprintln!("{e}"),
//!     }
//! });
//! // Or awaited, in an async handler:
//! # let _ = async move {
//! let response = client.request(ClientRequest::get("http://127.0.0.1:3000/health")).await;
//! # };
//! # }
//! ```
//!
//! `https://` URLs need the `tls` feature (`ClientTls` says whom they
//! trust; Mozilla's roots by default).
//!
//! Layering: the client sits on the loop, `http/` and `net/` (the socket,
//! or TLS over it), never on the server's engine.

mod agent;
mod connection;
mod message;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod url;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{oneshot, Loop};

pub use message::{ClientError, ClientRequest, ClientResponse, TimeoutKind};
pub use stream::{ResponseEvent, StreamControl};
#[cfg(feature = "tls")]
pub use tls::ClientTls;

/// A client's limits and timeouts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Connections open to one origin at most (Node's `maxSockets`).
    pub max_sockets_per_origin: usize,
    /// Requests that may wait for a connection of one origin; past it a
    /// request fails at once with [`ClientError::PoolFull`].
    pub max_waiting_per_origin: usize,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Longest a connect may take (each address of a name).
    pub connect_timeout: Duration,
    /// Longest from a request's start on its connection to its response's
    /// head.
    pub head_timeout: Duration,
    /// Longest a whole request may take, retries included (a request may
    /// set its own: [`ClientRequest::timeout`]).
    pub request_timeout: Duration,
    /// How many times a failed request may be tried again, where that is
    /// safe (see [`Client::send`]).
    pub retries: u32,
    /// Largest response head, bytes.
    pub max_response_head: usize,
    /// Largest response body, bytes.
    pub max_response_body: u64,
    /// Whom `https` requests trust (feature `tls`); `None`: Mozilla's
    /// root certificates ([`ClientTls::webpki_roots`]).
    #[cfg(feature = "tls")]
    pub tls: Option<ClientTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_sockets_per_origin: 16,
            max_waiting_per_origin: 1024,
            idle_timeout: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            retries: 2,
            max_response_head: 64 * 1024,
            max_response_body: 16 << 20,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// What a client has done, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Connections opened.
    pub connects: u64,
    /// Requests sent on a connection that had carried one before.
    pub reused: u64,
    /// Responses received.
    pub responses: u64,
    /// Requests tried again.
    pub retries: u64,
    /// Requests that failed (their caller got an error).
    pub failures: u64,
    /// Requests refused because their origin's queue was full.
    pub pool_full: u64,
    /// Idle connections closed by the idle timeout.
    pub idle_closes: u64,
    /// TLS handshakes completed (`https`; a reused connection needs none).
    pub tls_handshakes: u64,
    /// TLS failures: handshakes refused (an untrusted certificate, say)
    /// and broken records.
    pub tls_failures: u64,
}

/// An HTTP/1.1 client with keep-alive pools, on one loop. Cloning gives
/// another handle to the same pools.
#[derive(Clone)]
pub struct Client {
    agent: agent::Shared,
    /// The loop it was first used on (its address): its connections are
    /// registered there, so it refuses any other.
    home: Rc<std::cell::Cell<usize>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agent = self.agent.borrow();
        f.debug_struct("Client")
            .field("open", &agent.open())
            .field("idle", &agent.idle())
            .finish()
    }
}

impl Client {
    /// What a request to `url` would be refused for before it is sent
    /// (`http[s]://host[:port][/path][?query]`; `https` needs the `tls`
    /// feature): for a URL from configuration, checked at start-up rather
    /// than at every request.
    pub fn check_url(url: &str) -> Result<(), ClientError> {
        url::parse_url(url).map(|_| ())
    }

    /// A client with `cfg`'s limits.
    pub fn new(cfg: ClientConfig) -> Client {
        Client {
            agent: Rc::new(RefCell::new(agent::Agent::new(cfg))),
            home: Rc::new(std::cell::Cell::new(0)),
        }
    }

    /// Sends `req`; `done` gets the response or the error, on this loop,
    /// never during this call. A failed request is tried again (up to
    /// [`ClientConfig::retries`] times, within its timeout) only if that
    /// is safe: it never reached the server (a refused connect, a reused
    /// connection found closed before any byte went out), or its method is
    /// idempotent. A POST that may have reached the server is not repeated:
    /// its caller decides (with an idempotency key, say).
    pub fn send(
        &self,
        lp: &Loop,
        req: ClientRequest,
        done: impl FnOnce(&Loop, Result<ClientResponse, ClientError>) + 'static,
    ) {
        self.submit(lp, req, Box::new(done), None);
    }

    /// Sends `req` and hands its response over piece by piece: `on_event`
    /// gets the head, each piece of the body as it arrives, then the end
    /// or an error ([`ResponseEvent`]), with a [`StreamControl`] to pause
    /// the reading (the server then waits on TCP's flow control) and
    /// resume it. No limit applies to a streamed body. Once the head is
    /// out, the request is never tried again.
    pub fn send_streamed(
        &self,
        lp: &Loop,
        req: ClientRequest,
        on_event: impl FnMut(&Loop, ResponseEvent<'_>, &StreamControl) + 'static,
    ) {
        let state = Rc::new(RefCell::new(stream::StreamState {
            sink: Box::new(on_event),
            head_sent: false,
            control: StreamControl {
                agent: Rc::downgrade(&self.agent),
                conn: Rc::new(std::cell::Cell::new(None)),
            },
        }));
        let last = state.clone();
        let done = move |lp: &Loop, result: Result<ClientResponse, ClientError>| match result {
            Ok(mut response) => {
                let body = std::mem::take(&mut response.body);
                if !last.borrow().head_sent {
                    stream::emit(&last, lp, ResponseEvent::Head(&response));
                }
                if !body.is_empty() {
                    stream::emit(&last, lp, ResponseEvent::Data(&body));
                }
                stream::emit(&last, lp, ResponseEvent::End);
            }
            Err(e) => stream::emit(&last, lp, ResponseEvent::Error(e)),
        };
        self.submit(lp, req, Box::new(done), Some(state));
    }

    fn submit(
        &self,
        lp: &Loop,
        req: ClientRequest,
        done: agent::Done,
        stream: Option<stream::SharedStream>,
    ) {
        let timeout = req
            .timeout
            .unwrap_or(self.agent.borrow().cfg.request_timeout);
        let here = lp as *const Loop as usize;
        let source = req.source.clone();
        let prepared = match self.home.get() {
            0 => {
                self.home.set(here);
                prepare(req)
            }
            home if home == here => prepare(req),
            _ => Err(ClientError::InvalidRequest(
                "a client belongs to the loop it was first used on: make one per loop".into(),
            )),
        };
        let pending = match prepared {
            Ok((target, method, fields, body, idempotent)) => agent::Pending {
                target,
                method,
                fields,
                body,
                source,
                stream,
                idempotent,
                done,
                attempts: 1,
                deadline: lp
                    .now_ns()
                    .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)),
            },
            Err(e) => {
                lp.set_immediate(move |lp| done(lp, Err(e)));
                return;
            }
        };
        agent::submit(&self.agent, lp, pending);
    }

    /// Sends `req` from the loop running this thread; the future resolves
    /// to the response or the error. (Outside a loop it resolves to an
    /// [`ClientError::Io`] saying so.)
    pub fn request(
        &self,
        req: ClientRequest,
    ) -> impl Future<Output = Result<ClientResponse, ClientError>> + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = Loop::with_current(|lp| self.send(lp, req, move |_, result| tx.send(result)));
        async move {
            if sent.is_none() {
                return Err(ClientError::Io("no loop runs on this thread".into()));
            }
            rx.await
                .unwrap_or_else(|| Err(ClientError::Io("the loop dropped the request".into())))
        }
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        let agent = self.agent.borrow();
        #[allow(unused_mut)] // without `tls`, nothing to add
        let mut stats = agent.stats.clone();
        #[cfg(feature = "tls")]
        {
            let tls = &agent.tls_counters;
            stats.tls_handshakes = tls.handshakes.get();
            stats.tls_failures = tls.handshake_errors.get() + tls.errors.get();
        }
        stats
    }

    /// Connections open now, idle ones included.
    pub fn open_connections(&self) -> usize {
        self.agent.borrow().open()
    }

    /// Idle keep-alive connections now.
    pub fn idle_connections(&self) -> usize {
        self.agent.borrow().idle()
    }
}

/// A prepared request: target, method, fields, body, idempotent.
type Prepared = (url::Target, String, Vec<(String, Vec<u8>)>, Vec<u8>, bool);

/// Checks `req` and takes it apart for the agent.
fn prepare(req: ClientRequest) -> Result<Prepared, ClientError> {
    let target = url::parse_url(&req.url)?;
    if req.method.is_empty() || !req.method.bytes().all(crate::http::is_tchar) {
        return Err(ClientError::InvalidRequest(format!(
            "a bad method: {:?}",
            req.method
        )));
    }
    for (name, value) in &req.fields {
        if name.is_empty() || !name.bytes().all(crate::http::is_tchar) {
            return Err(ClientError::InvalidRequest(format!(
                "a bad field name: {name:?}"
            )));
        }
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ClientError::InvalidRequest(format!(
                "a bad value for {name}"
            )));
        }
        if ["host", "content-length", "transfer-encoding"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
        {
            return Err(ClientError::InvalidRequest(format!(
                "{name} is written by the client"
            )));
        }
    }
    let idempotent = req.is_idempotent();
    Ok((target, req.method, req.fields, req.body, idempotent))
}
