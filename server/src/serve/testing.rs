//! Testing an app: over real sockets with [`TestServer`] and its blocking
//! [`TestClient`], or in process, without sockets, with [`InProcess`].
//!
//! ```
//! use phaseloop::testing::{InProcess, TestRequest, TestServer};
//! use phaseloop::{App, Json};
//!
//! fn app() -> App {
//!     App::new().get("/hello/:name", |req, _| format!("Hello, {}!", req.param("name").unwrap_or_default()))
//! }
//!
//! // A real server on an ephemeral loopback port, stopped when dropped.
//! let server = TestServer::start(app);
//! let res = server.get("/hello/ada");
//! assert_eq!((res.status, res.text()), (200, "Hello, ada!"));
//!
//! // The same app, one request through routing and middleware, no socket.
//! let mut app = InProcess::new(app());
//! assert_eq!(app.call(TestRequest::get("/nope")).status, 404);
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use phaseloop_core::{Loop, LoopHandle, RunMode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::app::App;
use crate::api::dispatch::Dispatcher;
use crate::api::responder::Responder;
use crate::engine::answer::{Answer, Detached};
use crate::engine::config::ServerConfig;
use crate::engine::service::Service;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::{parse_head, HttpError};
use crate::serve::server::Server;

/// How long a [`TestClient`] waits for a response before failing.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// An app served on `127.0.0.1` (an ephemeral port) by a loop on a
/// background thread; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    handle: LoopHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves the app `make_app` builds (on the server's thread: an app
    /// is not `Send`) with the default configuration.
    pub fn start<S: 'static>(make_app: impl FnOnce() -> App<S> + Send + 'static) -> TestServer {
        TestServer::with_config(make_app, ServerConfig::default())
    }

    /// [`TestServer::start`] with a configuration of your own.
    ///
    /// # Panics
    /// If the loop or the listener cannot be made (no descriptors left).
    pub fn with_config<S: 'static>(
        make_app: impl FnOnce() -> App<S> + Send + 'static,
        cfg: ServerConfig,
    ) -> TestServer {
        let (tx, rx) = mpsc::sync_channel(1);
        let thread = std::thread::spawn(move || {
            let started = Loop::new().and_then(|lp| {
                let app = lp.enter(|_| make_app());
                let server =
                    Server::bind(&lp, "127.0.0.1:0".parse().expect("an address"), app, cfg)?;
                Ok((lp, server))
            });
            match started {
                Ok((lp, server)) => {
                    let _ = tx.send(Ok((server.local_addr(), lp.handle())));
                    lp.run(RunMode::Default);
                    drop(server);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let (addr, handle) = rx
            .recv()
            .expect("the test server's thread")
            .expect("the test server starts");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new keep-alive connection to it.
    pub fn client(&self) -> TestClient {
        TestClient::connect(self.addr).expect("a connection to the test server")
    }

    /// `GET path` on a new connection.
    pub fn get(&self, path: &str) -> TestResponse {
        self.client().get(path)
    }

    /// `POST path` with `value` as JSON, on a new connection.
    pub fn post_json<T: Serialize + ?Sized>(&self, path: &str, value: &T) -> TestResponse {
        self.client().post_json(path, value)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A blocking HTTP/1.1 client on one keep-alive connection.
#[derive(Debug)]
pub struct TestClient {
    reader: BufReader<TcpStream>,
}

impl TestClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<TestClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(TestClient {
            reader: BufReader::new(stream),
        })
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> TestResponse {
        self.send(TestRequest::get(path))
    }

    /// `POST path` with `value` as JSON.
    pub fn post_json<T: Serialize + ?Sized>(&mut self, path: &str, value: &T) -> TestResponse {
        self.send(TestRequest::post(path).json(value))
    }

    /// Sends `req` and reads its response.
    ///
    /// # Panics
    /// If the connection fails or the response is malformed: a test's
    /// failure, said with what went wrong.
    pub fn send(&mut self, req: TestRequest) -> TestResponse {
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        self.write_raw(&req.to_bytes());
        self.read_response(head_only)
    }

    /// Sends `bytes` as they are and reads one response: for malformed
    /// requests, pipelining, anything the builder does not make.
    pub fn raw(&mut self, bytes: &[u8]) -> TestResponse {
        self.write_raw(bytes);
        self.read_response(bytes.starts_with(b"HEAD "))
    }

    /// Sends `bytes` without reading anything.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("writing to the test server");
    }

    /// Reads the next response (`head_only`: to a HEAD request, without a
    /// body).
    pub fn read_response(&mut self, head_only: bool) -> TestResponse {
        read_response(&mut self.reader, head_only).expect("a well-formed response")
    }

    /// True once the server has closed the connection (nothing more to
    /// read).
    pub fn closed(&mut self) -> bool {
        matches!(self.reader.fill_buf(), Ok([]))
    }
}

fn read_response(reader: &mut impl BufRead, head_only: bool) -> io::Result<TestResponse> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let field = line.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            break;
        }
        let (name, value) = field
            .split_once(':')
            .ok_or_else(|| bad(&format!("field line {field:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    let bodiless = head_only || status < 200 || status == 204 || status == 304;
    if bodiless {
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(&format!("chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| bad("content length"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}

/// A request to send: method, target, fields, body.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TestRequest {
    /// A request with `method` for `target` (`/todos?page=2`).
    pub fn new(method: &str, target: &str) -> TestRequest {
        TestRequest {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET target`.
    pub fn get(target: &str) -> TestRequest {
        TestRequest::new("GET", target)
    }

    /// `POST target`.
    pub fn post(target: &str) -> TestRequest {
        TestRequest::new("POST", target)
    }

    /// `PUT target`.
    pub fn put(target: &str) -> TestRequest {
        TestRequest::new("PUT", target)
    }

    /// `PATCH target`.
    pub fn patch(target: &str) -> TestRequest {
        TestRequest::new("PATCH", target)
    }

    /// `DELETE target`.
    pub fn delete(target: &str) -> TestRequest {
        TestRequest::new("DELETE", target)
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> TestRequest {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> TestRequest {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body, with its content type.
    ///
    /// # Panics
    /// If `value` cannot be serialised.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> TestRequest {
        let body = serde_json::to_vec(value).expect("a serialisable value");
        self.header("Content-Type", "application/json").body(body)
    }

    /// Sets `value` as an urlencoded form body, with its content type.
    ///
    /// # Panics
    /// If `value` cannot be encoded as a form.
    pub fn form<T: Serialize + ?Sized>(self, value: &T) -> TestRequest {
        let body = serde_urlencoded::to_string(value).expect("a form-encodable value");
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }

    /// The request as bytes on the wire (a `Host` field is added unless
    /// set; a `Content-Length` for any body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(b"Host: test\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (empty if it is not UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If it is not JSON of that shape: the test fails, saying so.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not that JSON ({e}): {}", self.text()))
    }

    fn from_response(response: &Response) -> TestResponse {
        let mut headers = Vec::new();
        if let Some(content_type) = response.header_value("content-type") {
            headers.push((
                "Content-Type".to_string(),
                String::from_utf8_lossy(content_type).into_owned(),
            ));
        }
        for (name, value) in response.headers() {
            headers.push((
                name.to_string(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        TestResponse {
            status: response.status(),
            headers,
            body: response.body_bytes().to_vec(),
        }
    }
}

/// An app dispatched in process: each [`InProcess::call`] runs one
/// request through routing, the body limit, the middleware and the
/// handler on a loop of its own, without a socket, and returns the
/// response once answered (timers, pool jobs and futures included).
/// The connection's own work is not done: no `Date`, `Content-Length` or
/// `Connection` field, and streamed bodies are not supported (use a
/// [`TestServer`]).
pub struct InProcess {
    lp: Loop,
    app: Rc<Dispatcher>,
    cfg: ServerConfig,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl InProcess {
    /// Ready to dispatch requests to `app`.
    ///
    /// # Panics
    /// If a loop cannot be made (no descriptors left).
    pub fn new<S: 'static>(app: App<S>) -> InProcess {
        InProcess {
            lp: Loop::new().expect("a loop"),
            app: Rc::new(app.into_dispatcher()),
            cfg: ServerConfig::default(),
        }
    }

    /// Dispatches `req` and runs the loop until it is answered.
    pub fn call(&mut self, req: TestRequest) -> TestResponse {
        let bytes = req.to_bytes();
        let to = Rc::new(Detached {
            response: Default::default(),
            service: self.app.clone(),
        });
        let answer = || Answer::<Dispatcher>::detached(to.clone());
        let app = self.app.clone();
        let cfg = &self.cfg;
        self.lp
            .enter(|lp| match parse_head(&bytes, &cfg.head_limits()) {
                Ok(Some(parsed)) => {
                    let head_len = parsed.len;
                    let mut request = Request::from_head(&bytes[..head_len], parsed, None);
                    request.body_mut().extend_from_slice(&bytes[head_len..]);
                    let target = app.destination(&mut request);
                    let limit = app.body_rules(target).limit.unwrap_or(cfg.max_body);
                    if request.body().len() as u64 > limit {
                        let error = HttpError::new(413, "request body too large");
                        app.refuse(lp, request, error.into(), answer());
                    } else {
                        app.dispatch(lp, target, request, Responder::from(answer()));
                    }
                }
                Ok(None) => {
                    let error = HttpError::bad_request("incomplete request head");
                    app.refuse(lp, Request::stand_in(&bytes, None), error.into(), answer());
                }
                Err(error) => {
                    app.refuse(lp, Request::stand_in(&bytes, None), error.into(), answer());
                }
            });
        while to.response.borrow().is_none() && self.lp.run(RunMode::Once) {}
        let response = to.response.borrow_mut().take();
        match response {
            Some(response) => TestResponse::from_response(&response),
            None => TestResponse::from_response(&Response::text(
                500,
                "the handler never answered (and nothing on the loop is left to)\n",
            )),
        }
    }
}
