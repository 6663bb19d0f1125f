//! Helpers for the server's socket tests: a server on its own loop thread,
//! and a blocking client that reads exact responses.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use phaseloop::{App, Server, ServerConfig, ServerStats};
use phaseloop_core::{Loop, LoopHandle, RunMode};

/// A server running on a loop in a background thread; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: LoopHandle,
    thread: Option<JoinHandle<()>>,
    stats_rx: mpsc::Receiver<ServerStats>,
    stats_tx: mpsc::SyncSender<ServerStats>,
}

thread_local! {
    static SERVER: std::cell::RefCell<Option<Server>> = const { std::cell::RefCell::new(None) };
}

/// The server of the loop running on this thread: for a handler that
/// needs its own server (to start a shutdown, say).
pub fn with_server<R>(f: impl FnOnce(&Server) -> R) -> R {
    SERVER.with(|s| {
        f(s.borrow()
            .as_ref()
            .expect("called on a server's loop thread"))
    })
}

impl TestServer {
    pub fn start<S: 'static>(build: fn() -> App<S>) -> TestServer {
        Self::with_config(build, ServerConfig::default())
    }

    pub fn with_config<S: 'static>(build: fn() -> App<S>, cfg: ServerConfig) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let lp = Loop::builder().block_warnings(false).build().unwrap();
            let server = Server::bind(&lp, "127.0.0.1:0".parse().unwrap(), build(), cfg).unwrap();
            tx.send((server.local_addr(), lp.handle())).unwrap();
            SERVER.with(|s| *s.borrow_mut() = Some(server));
            lp.run(RunMode::Default);
            SERVER.with(|s| s.borrow_mut().take());
        });
        let (addr, handle) = rx.recv().unwrap();
        let (stats_tx, stats_rx) = mpsc::sync_channel(1);
        TestServer {
            addr,
            handle,
            thread: Some(thread),
            stats_rx,
            stats_tx,
        }
    }

    /// Waits (up to 10 s) until `ok` holds for the server's counters;
    /// panics with `what` and the last counters otherwise.
    pub fn wait_for_stats(&self, what: &str, ok: impl Fn(&ServerStats) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats();
            if ok(&stats) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {stats:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's counters, read on its loop.
    pub fn stats(&self) -> ServerStats {
        let tx = self.stats_tx.clone();
        self.handle
            .post(move |_| {
                let stats = SERVER
                    .with(|s| s.borrow().as_ref().map(|s| s.stats()))
                    .unwrap();
                tx.send(stats).unwrap();
            })
            .unwrap();
        self.stats_rx.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    /// Runs `f` with the server on its loop thread.
    pub fn on_loop(&self, f: impl FnOnce(&Loop, &Server) + Send + 'static) {
        self.handle
            .post(move |lp| SERVER.with(|s| f(lp, s.borrow().as_ref().unwrap())))
            .unwrap();
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The server-wide invariant after a load: once its clients are done,
    /// open connections return to zero within `bound` (the longest timeout
    /// that can apply). Panics with what is still open otherwise.
    pub fn assert_all_released_within(&self, bound: Duration) {
        let deadline = std::time::Instant::now() + bound;
        loop {
            let open = self.stats().open;
            if open == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{open} connections still open {bound:?} after their clients were done"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking client with a read timeout, over TCP or any other stream
/// (TLS: `util/tls.rs`).
pub struct Client<T: Read + Write = TcpStream> {
    pub stream: T,
    buf: Vec<u8>,
}

impl<T: Read + Write> Client<T> {
    /// A client on a stream already connected (and perhaps written to).
    pub fn from_stream(stream: T) -> Client<T> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }
}

impl<T: Read + Write> Client<T> {
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
                // A TLS stream whose socket ended without close_notify.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return false,
                // A signal to this process (a child's exit, say) cuts a
                // read with a timeout short even under SA_RESTART.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Reads one response (head + Content-Length body) and returns it whole,
    /// with the Date value replaced by `<date>` so it can be compared exactly.
    pub fn response(&mut self) -> String {
        self.response_for(false)
    }

    /// Reads one response to a HEAD request (no body follows the head).
    pub fn head_response(&mut self) -> String {
        self.response_for(true)
    }

    fn response_for(&mut self, head_only: bool) -> String {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill(),
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let len = if head_only || head.starts_with("HTTP/1.1 1") {
            0
        } else {
            head.lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .expect("responses carry Content-Length")
        };
        while self.buf.len() < head_end + len {
            assert!(self.fill(), "connection closed inside a body");
        }
        let whole: Vec<u8> = self.buf.drain(..head_end + len).collect();
        redact_date(&String::from_utf8_lossy(&whole))
    }

    /// True if the server closed the connection (EOF) with nothing more sent.
    pub fn closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        !self.fill()
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn redact_date(s: &str) -> String {
    match s.find("Date: ") {
        Some(i) => format!("{}Date: <date>{}", &s[..i], &s[i + 6 + 29..]),
        None => s.to_string(),
    }
}

/// The exact bytes of a text/plain response from our server.
pub fn text_response(status: &str, body: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The exact bytes of a refusal: text body, Connection: close.
pub fn refusal(status: &str, message: &str) -> String {
    let body = format!("{status}: {message}\n");
    format!(
        "HTTP/1.1 {status}\r\nDate: <date>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `raw` on a fresh connection and asserts it is refused with
/// `status` and `message`, then closed.
pub fn refused(server: &TestServer, raw: &str, status: &str, message: &str) {
    let mut c = server.connect();
    c.send(raw.as_bytes());
    assert_eq!(c.response(), refusal(status, message), "for {raw:?}");
    assert!(c.closed(), "closed after refusing {raw:?}");
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("phaseloop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The body of a response string.
pub fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The status line of a response string.
pub fn status_of(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

impl<T: Read + Write> Client<T> {
    /// Reads until `end` has arrived; returns everything up to and including
    /// it, Date redacted.
    pub fn read_through(&mut self, end: &[u8]) -> String {
        loop {
            if let Some(i) = find(&self.buf, end) {
                let whole: Vec<u8> = self.buf.drain(..i + end.len()).collect();
                return redact_date(&String::from_utf8_lossy(&whole));
            }
            assert!(
                self.fill(),
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(end),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads until the server closes; returns it all, Date redacted.
    pub fn read_to_close(&mut self) -> String {
        while self.fill() {}
        let whole: Vec<u8> = self.buf.drain(..).collect();
        redact_date(&String::from_utf8_lossy(&whole))
    }
}

/// Decodes a chunked body (the text after the head) into its bytes.
pub fn decode_chunked(body: &str) -> Vec<u8> {
    let mut rest = body.as_bytes();
    let mut out = Vec::new();
    loop {
        let nl = find(rest, b"\r\n").expect("a chunk-size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
        rest = &rest[nl + 2 + size + 2..];
    }
}

/// Makes sure Python's `module` is importable, installing `package` for
/// this user from PyPI if not: the tests' third-party clients and parsers
/// (prometheus_client, websockets).
pub fn python_module(module: &str, package: &str) {
    let has = || {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has() {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user", package])
            .status()
            .unwrap();
        assert!(installed.success(), "pip install {package}");
    }
    assert!(has(), "python3 cannot import {module}");
}

/// What a request of the HTTP client came to.
pub type Outcome = Result<phaseloop::client::ClientResponse, phaseloop::client::ClientError>;

thread_local! {
    /// The test thread's loop for the HTTP client: a client belongs to one
    /// loop, and each `run_all` runs this one until its requests are over
    /// (idle pooled connections do not keep it alive).
    pub static CLIENT_LOOP: Loop = Loop::builder().block_warnings(false).build().unwrap();
}

/// Sends `reqs` through `client` at once and runs the test thread's loop
/// until all are answered; the outcomes in the order sent.
pub fn run_all(
    client: &phaseloop::client::Client,
    reqs: Vec<phaseloop::client::ClientRequest>,
) -> Vec<Outcome> {
    CLIENT_LOOP.with(|lp| {
        let out = std::rc::Rc::new(std::cell::RefCell::new(vec![None; reqs.len()]));
        for (i, req) in reqs.into_iter().enumerate() {
            let out = out.clone();
            client.send(lp, req, move |_, r| out.borrow_mut()[i] = Some(r));
        }
        lp.run(RunMode::Default);
        let out: Vec<Option<Outcome>> = out.borrow().clone();
        out.into_iter()
            .map(|o| o.expect("every request is answered before the loop ends"))
            .collect()
    })
}

/// [`run_all`] for one request.
pub fn run_one(
    client: &phaseloop::client::Client,
    req: phaseloop::client::ClientRequest,
) -> Outcome {
    run_all(client, vec![req]).remove(0)
}
