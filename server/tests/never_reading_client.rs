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
        .get("/big", |_, _, res| {
            res.send(Response::new(200).body(vec![b'x'; 64 * 1024]))
        })
        .get("/", |_, _, res| res.text(200, "ok"))
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
