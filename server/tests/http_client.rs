//! The HTTP client on the loop, against real servers over real sockets:
//! our own server, and scripted ones (a thread writing exact bytes) for
//! every framing, every bad response and every failure. Each test runs
//! the client on a loop of its own in the test thread, until its requests
//! are over.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use phaseloop::client::{Client, ClientConfig, ClientError, ClientRequest, TimeoutKind};
use phaseloop::App;
use phaseloop_core::RunMode;
use util::{run_all, run_one, Outcome, TestServer, CLIENT_LOOP as LOOP};

/// A scripted server: accepts connections one after another on its own
/// thread, handing each to `script` (with its index), until `connections`
/// were served.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    fn start(connections: usize, script: impl Fn(usize, TcpStream) + Send + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counter = accepted.clone();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for i in 0..connections {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                script(i, stream);
            }
        });
        Scripted {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        // Unblocks an accept still waiting (a test that needed fewer).
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head (and a Content-Length body) from `s`.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(head + &String::from_utf8_lossy(&body))
}

/// A scripted server answering each request on each connection with
/// `response`, keeping connections open.
fn answering(connections: usize, response: &'static [u8]) -> Scripted {
    Scripted::start(connections, move |_, mut s| {
        while read_request(&mut s).is_some() {
            if s.write_all(response).is_err() {
                return;
            }
        }
    })
}

fn ok_status(o: &Outcome) -> u16 {
    o.as_ref().expect("a response").status
}

fn app() -> App {
    App::new()
        .get("/hello", |_, _| "hello")
        .post("/echo", |req: &mut phaseloop::Request, _| {
            format!(
                "{} {}",
                req.header("idempotency-key").unwrap_or("-"),
                String::from_utf8_lossy(req.body())
            )
        })
        .get_with("/chunked", |_, _, res| {
            let mut w = res.stream(phaseloop::Response::text(200, "one "));
            w.write(b"two ").unwrap();
            w.finish();
        })
}

#[test]
fn keep_alive_connections_are_reused_for_one_origin() {
    let server = TestServer::start(app);
    let client = Client::new(ClientConfig::default());
    let url = format!("http://{}/hello", server.addr);
    for _ in 0..5 {
        let r = run_one(&client, ClientRequest::get(&url)).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reused, stats.responses), (1, 4, 5));
    assert_eq!(server.stats().accepted, 1);
    assert_eq!(client.idle_connections(), 1);
}

#[test]
fn bodies_go_out_with_their_length_and_come_back_chunked_or_fixed() {
    let server = TestServer::start(app);
    let client = Client::new(ClientConfig::default());
    let post = ClientRequest::post(&format!("http://{}/echo", server.addr))
        .header("Idempotency-Key", "42")
        .body("pho x2");
    let chunked = ClientRequest::get(&format!("http://{}/chunked", server.addr));
    let out = run_all(&client, vec![post, chunked]);
    assert_eq!(out[0].as_ref().unwrap().text(), "42 pho x2");
    let r = out[1].as_ref().unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "one two ");
}

#[test]
fn a_response_is_framed_as_rfc_9112_says() {
    // 1xx skipped; HEAD, 204 and 304 without a body whatever they say;
    // a body to the close.
    let server = Scripted::start(2, |i, mut s| {
        if i == 0 {
            read_request(&mut s);
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
            read_request(&mut s);
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
                .unwrap();
            read_request(&mut s);
            s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
                .unwrap();
            read_request(&mut s);
            s.write_all(b"HTTP/1.1 304 Not Modified\r\n\r\n").unwrap();
            read_request(&mut s);
            s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                .unwrap();
        } else {
            read_request(&mut s);
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nold style").unwrap();
        }
    });
    let client = Client::new(ClientConfig::default());
    let r = run_one(&client, ClientRequest::get(&server.url("/"))).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let r = run_one(&client, ClientRequest::new("HEAD", &server.url("/"))).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = run_one(&client, ClientRequest::get(&server.url("/"))).unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = run_one(&client, ClientRequest::get(&server.url("/"))).unwrap();
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = run_one(&client, ClientRequest::get(&server.url("/"))).unwrap();
    assert_eq!(r.text(), "until the end");
    // That connection was closed: a new one, answered to its close.
    let r = run_one(&client, ClientRequest::get(&server.url("/"))).unwrap();
    assert_eq!(r.text(), "old style");
    assert_eq!(client.stats().connects, 2);
}

#[test]
fn bad_responses_are_errors_never_guesses_or_hangs() {
    let cases: &[(&[u8], &str)] = &[
        (b"garbage garbage\r\n\r\n", "malformed response head"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "closed inside the response body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "bad chunked body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "closed inside the response body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "conflicting Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: y",
            "closed inside the response head",
        ),
    ];
    for &(bytes, reason) in cases {
        let server = Scripted::start(1, move |_, mut s| {
            read_request(&mut s);
            let _ = s.write_all(bytes);
        });
        let client = Client::new(ClientConfig::default());
        match run_one(&client, ClientRequest::get(&server.url("/"))) {
            Err(ClientError::BadResponse(m)) => assert!(m.contains(reason), "{m} for {bytes:?}"),
            other => panic!("{other:?} for {bytes:?}"),
        }
        // Not tried again: another try would get the same.
        assert_eq!(client.stats().retries, 0);
    }
    // A head past the limit, never ended: refused once the limit is passed.
    let server = Scripted::start(1, |_, mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Filler: {}\r\n", "y".repeat(1000));
        for _ in 0..100 {
            if s.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let client = Client::new(ClientConfig {
        max_response_head: 16 * 1024,
        ..ClientConfig::default()
    });
    match run_one(&client, ClientRequest::get(&server.url("/"))) {
        Err(ClientError::BadResponse(m)) => assert!(m.contains("too large"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A body over the limit.
    let server = answering(1, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    let client = Client::new(ClientConfig {
        max_response_body: 1000,
        ..ClientConfig::default()
    });
    match run_one(&client, ClientRequest::get(&server.url("/"))) {
        Err(ClientError::BadResponse(m)) => assert!(m.contains("over the limit"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_connect_is_tried_again_then_reported() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(ClientConfig {
        retries: 2,
        ..ClientConfig::default()
    });
    let r = run_one(
        &client,
        ClientRequest::post(&format!("http://127.0.0.1:{port}/")).body("x"),
    );
    assert_eq!(r, Err(ClientError::Refused));
    // A POST too: it never reached a server.
    let stats = client.stats();
    assert_eq!((stats.connects, stats.retries, stats.failures), (3, 2, 1));
}

#[test]
fn a_request_that_may_have_reached_the_server_is_repeated_only_if_idempotent() {
    // Reads the request, then closes without answering.
    let server = Scripted::start(6, |_, mut s| {
        read_request(&mut s);
    });
    let client = Client::new(ClientConfig {
        retries: 2,
        ..ClientConfig::default()
    });
    let r = run_one(
        &client,
        ClientRequest::post(&server.url("/orders")).body("{}"),
    );
    assert_eq!(r, Err(ClientError::Reset));
    assert_eq!(client.stats().retries, 0);
    let r = run_one(&client, ClientRequest::get(&server.url("/orders/1")));
    assert_eq!(r, Err(ClientError::Reset));
    assert_eq!(client.stats().retries, 2);
    // One POST, three GETs reached the server.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.accepted() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.accepted(), 4);
}

#[test]
fn a_missing_head_and_a_slow_request_time_out() {
    // Accepts, reads, never answers (holds the socket until the test ends).
    let hold = Arc::new(std::sync::Mutex::new(Vec::new()));
    let held = hold.clone();
    let server = Scripted::start(2, move |_, mut s| {
        read_request(&mut s);
        held.lock().unwrap().push(s);
    });
    let client = Client::new(ClientConfig {
        head_timeout: Duration::from_millis(150),
        ..ClientConfig::default()
    });
    let started = Instant::now();
    let r = run_one(&client, ClientRequest::post(&server.url("/")).body("x"));
    assert_eq!(r, Err(ClientError::Timeout(TimeoutKind::Head)));
    assert!(started.elapsed() + Duration::from_millis(5) >= Duration::from_millis(150));
    let r = run_one(
        &client,
        ClientRequest::post(&server.url("/")).timeout(Duration::from_millis(100)),
    );
    assert_eq!(r, Err(ClientError::Timeout(TimeoutKind::Request)));
    assert_eq!(client.open_connections(), 0);
    drop(hold);
}

#[test]
fn an_origin_gets_at_most_its_sockets_and_a_bounded_queue() {
    let open_now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (o, m) = (open_now.clone(), most.clone());
    // Answers each request after 20 ms, counting connections open at once.
    let server = Scripted::start(2, move |_, s| {
        let (o, m) = (o.clone(), m.clone());
        std::thread::spawn(move || {
            let mut s = s;
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            while read_request(&mut s).is_some() {
                std::thread::sleep(Duration::from_millis(20));
                if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .is_err()
                {
                    break;
                }
            }
            o.fetch_sub(1, Ordering::SeqCst);
        });
    });
    let client = Client::new(ClientConfig {
        max_sockets_per_origin: 2,
        max_waiting_per_origin: 6,
        ..ClientConfig::default()
    });
    let reqs = (0..10)
        .map(|_| ClientRequest::get(&server.url("/")))
        .collect();
    let out = run_all(&client, reqs);
    // Two on sockets, six waiting: eight answered, two refused at once.
    assert_eq!(out.iter().filter(|o| o.is_ok()).count(), 8);
    assert_eq!(
        out.iter()
            .filter(|o| **o == Err(ClientError::PoolFull))
            .count(),
        2
    );
    assert!(out[..8].iter().all(|o| ok_status(o) == 200));
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert_eq!(client.stats().connects, 2);
}

#[test]
fn names_resolve_on_the_pool_and_bad_urls_are_refused() {
    let server = TestServer::start(app);
    let client = Client::new(ClientConfig::default());
    let r = run_one(
        &client,
        ClientRequest::get(&format!("http://localhost:{}/hello", server.addr.port())),
    );
    // localhost may resolve to ::1 first, where nobody listens: the next
    // address is tried.
    assert_eq!(r.unwrap().text(), "hello");
    for (url, field) in [
        ("ftp://127.0.0.1/", None),
        ("http://127.0.0.1:1/a b", None),
        ("http://127.0.0.1:1/", Some(("Content-Length", "3"))),
        ("http://127.0.0.1:1/", Some(("X-Bad", "a\r\nInjected: yes"))),
    ] {
        let mut req = ClientRequest::get(url);
        if let Some((n, v)) = field {
            req = req.header(n, v);
        }
        assert!(
            matches!(run_one(&client, req), Err(ClientError::InvalidRequest(_))),
            "{url} {field:?}"
        );
    }
}

#[test]
fn an_async_handler_awaits_another_service() {
    // A gateway app whose handler calls the backend with the client.
    thread_local! {
        static CLIENT: Client = Client::new(ClientConfig::default());
    }
    let backend = TestServer::start(app);
    fn gateway() -> App {
        App::new().get_async("/via/:port", |req: phaseloop::Request, _| async move {
            let port = req
                .param("port")
                .map(|p| p.into_owned())
                .unwrap_or_default();
            let client = CLIENT.with(Client::clone);
            let r = client
                .request(ClientRequest::get(&format!(
                    "http://127.0.0.1:{port}/hello"
                )))
                .await
                .map_err(|e| phaseloop::Error::new(502, e.to_string()))?;
            Ok::<_, phaseloop::Error>(format!("backend said {}", r.text()))
        })
    }
    let front = TestServer::start(gateway);
    let mut c = front.connect();
    c.send(
        format!(
            "GET /via/{} HTTP/1.1\r\nHost: x\r\n\r\n",
            backend.addr.port()
        )
        .as_bytes(),
    );
    assert!(c.response().ends_with("backend said hello"));
    // A backend that is down: 502 with the reason.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.send(format!("GET /via/{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let r = c.response();
    assert!(r.starts_with("HTTP/1.1 502 "), "{r}");
    assert!(r.contains("connection refused"), "{r}");
}

#[test]
fn a_streamed_response_comes_in_pieces_and_a_pause_holds_the_server_back() {
    const TOTAL: usize = 32 << 20;
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let server = Scripted::start(1, move |_, mut s| {
        read_request(&mut s);
        s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes())
            .unwrap();
        let piece = vec![b'x'; 64 * 1024];
        while w.load(Ordering::SeqCst) < TOTAL {
            if s.write_all(&piece).is_err() {
                return;
            }
            w.fetch_add(piece.len(), Ordering::SeqCst);
        }
    });
    let client = Client::new(ClientConfig::default());
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let received = Rc::new(std::cell::Cell::new(0usize));
    let written_while_paused = Rc::new(std::cell::Cell::new(0usize));
    let (e, r, wp, w) = (
        events.clone(),
        received.clone(),
        written_while_paused.clone(),
        written.clone(),
    );
    LOOP.with(|lp| {
        client.send_streamed(
            lp,
            ClientRequest::get(&server.url("/big")),
            move |lp, event, control| {
                match event {
                    phaseloop::client::ResponseEvent::Head(h) => {
                        e.borrow_mut().push(format!("head {}", h.status))
                    }
                    phaseloop::client::ResponseEvent::Data(d) => {
                        if r.get() == 0 {
                            e.borrow_mut().push("data".into());
                            // The consumer is slow: it pauses, and resumes after
                            // 300 ms, noting what the server managed meanwhile.
                            control.pause();
                            let (control, wp, w) = (control.clone(), wp.clone(), w.clone());
                            lp.set_timeout(Duration::from_millis(300), move |lp| {
                                wp.set(w.load(Ordering::SeqCst));
                                control.resume(lp);
                            });
                        }
                        r.set(r.get() + d.len());
                    }
                    phaseloop::client::ResponseEvent::End => e.borrow_mut().push("end".into()),
                    phaseloop::client::ResponseEvent::Error(err) => {
                        e.borrow_mut().push(format!("error {err}"))
                    }
                }
            },
        );
        lp.run(RunMode::Default);
    });
    assert_eq!(*events.borrow(), vec!["head 200", "data", "end"]);
    assert_eq!(received.get(), TOTAL);
    // While paused, the server could write only what the kernel's buffers
    // hold, not the body.
    let held = written_while_paused.get();
    assert!(
        held < TOTAL / 2,
        "{held} of {TOTAL} bytes written while paused"
    );
}

#[test]
fn a_streamed_request_body_goes_out_chunked_piece_by_piece() {
    fn app() -> App {
        App::new().post("/count", |req: &mut phaseloop::Request, _| {
            format!(
                "{} bytes, {}",
                req.body().len(),
                req.header("transfer-encoding").unwrap_or("-")
            )
        })
    }
    let cfg = phaseloop::ServerConfig {
        max_body: 4 << 20,
        ..phaseloop::ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let client = Client::new(ClientConfig::default());
    let pulled = Rc::new(std::cell::Cell::new(0));
    let p = pulled.clone();
    let req =
        ClientRequest::post(&format!("http://{}/count", server.addr)).body_stream(move || {
            p.set(p.get() + 1);
            (p.get() <= 100).then(|| vec![b'y'; 10_000])
        });
    let r = run_one(&client, req).unwrap();
    assert_eq!(r.text(), "1000000 bytes, chunked");
    assert_eq!(pulled.get(), 101, "100 pieces and the end");
}

#[test]
fn a_connect_that_is_never_answered_times_out() {
    // A listener whose accept queue is full and never drained: the
    // kernel drops further SYNs, so a connect waits without an answer.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue (a backlog of 0 still queues one or two).
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let client = Client::new(ClientConfig {
        connect_timeout: Duration::from_millis(200),
        retries: 1,
        ..ClientConfig::default()
    });
    let started = Instant::now();
    let r = run_one(&client, ClientRequest::get(&format!("http://{addr}/")));
    assert_eq!(r, Err(ClientError::Timeout(TimeoutKind::Connect)));
    // Tried twice (a connect that never succeeded reached no server).
    assert_eq!(client.stats().connects, 2);
    assert!(started.elapsed() + Duration::from_millis(10) >= Duration::from_millis(400));
    drop(fillers);
}
