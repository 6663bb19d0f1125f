//! A client that sends requests but never reads the responses cannot grow
//! the server's memory: reading pauses at the high-water mark. Idle
//! keep-alive connections hold no buffers at all.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use phaseloop::{App, Response, ServerConfig};
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/big", |_, _, res| {
            res.send(Response::new(200).body(vec![b'x'; 64 * 1024]))
        })
        .get_with("/slow-big", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(1), move |_| {
                res.send(Response::new(200).body(vec![b'y'; 64 * 1024]))
            });
        })
        .get_with("/", |_, _, res| res.text(200, "ok"))
}

#[test]
fn memory_stays_bounded_when_the_client_never_reads() {
    let cfg = ServerConfig {
        write_high_water: 256 * 1024,
        send_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut c = server.connect();
    c.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Each request asks for 64 KiB; send thousands of them (as long as the
    // kernel takes them) and never read.
    let request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let start = Instant::now();
    let mut sent = 0usize;
    while start.elapsed() < Duration::from_secs(3) {
        match c.stream.write(&request) {
            Ok(n) => sent += n,
            Err(_) => break, // our send buffer is full: the server stopped reading
        }
    }
    let requests_sent = sent / 30;
    std::thread::sleep(Duration::from_millis(200));
    let buffered = {
        let (tx, rx) = std::sync::mpsc::channel();
        server.on_loop(move |_, s| tx.send(s.buffered_bytes()).unwrap());
        rx.recv().unwrap()
    };
    // Asked for far more than we hold: without backpressure the server would
    // hold requests_sent x 64 KiB.
    assert!(
        requests_sent as u64 * 64 * 1024 > 64 * 1024 * 1024,
        "sent only {requests_sent} requests"
    );
    assert!(
        buffered < 2 * 1024 * 1024,
        "server buffers {buffered} bytes for a client that never reads"
    );
    assert!(
        server.stats().requests < requests_sent as u64,
        "reading paused"
    );
}

#[test]
fn idle_keep_alive_connections_hold_no_buffers() {
    let server = TestServer::start(app);
    let mut clients: Vec<_> = (0..200).map(|_| server.connect()).collect();
    for c in clients.iter_mut() {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for c in clients.iter_mut() {
        assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |_, s| tx.send((s.buffered_bytes(), s.stats().open)).unwrap());
    let (buffered, open) = rx.recv().unwrap();
    assert_eq!(open, 200);
    assert_eq!(
        buffered, 0,
        "200 idle keep-alive connections hold no buffer"
    );
}

/// Answers produced later (by a timer, the pool) cannot be bounded by bytes
/// when they are dispatched: the number of unanswered requests per
/// connection is bounded instead, so a pipelining client that never reads
/// holds at most the high-water mark plus a few answers.
#[test]
fn deferred_answers_to_a_client_that_never_reads_stay_bounded() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    // A small receive window, so the kernel cannot hide the problem by
    // taking every answer into its buffers.
    let sock = socket2::SockRef::from(&c.stream);
    sock.set_recv_buffer_size(4096).unwrap();
    c.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = b"GET /slow-big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(500);
    let _ = c.stream.write_all(&request);
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    server.on_loop(move |_, s| tx.send(s.buffered_bytes()).unwrap());
    let buffered = rx.recv().unwrap();
    let cfg = ServerConfig::default();
    // High-water mark, plus the answers of the unanswered requests, plus
    // one read buffer and one answer of slack.
    let bound = cfg.write_high_water + cfg.max_unanswered * 64 * 1024 + 2 * 64 * 1024;
    assert!(
        buffered <= bound,
        "{buffered} bytes buffered (bound {bound})"
    );
    let stats = server.stats();
    assert!(
        stats.requests < 500,
        "reading paused: {stats:?}, buffered {buffered}"
    );
}
