//! Slow clients meet a budget, not only a pause limit: a body arriving
//! below its minimum rate (after a grace) gets 408, a whole request taking
//! longer than the request timeout gets 408, a client taking our response
//! below the minimum rate is closed; a route may relax the first two; each
//! is counted.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use phaseloop::{App, DataRate, ServerConfig};
use util::{refusal, text_response, TestServer};

fn app() -> App {
    App::new()
        .post_with("/echo", |_, req, res| {
            res.text(200, format!("{} bytes", req.body().len()))
        })
        .post_with("/upload", |_, req, res| {
            res.text(200, format!("{} bytes", req.body().len()))
        })
        .min_body_rate(None)
        .request_timeout(Duration::from_secs(30))
        .get_with("/mid", |_, _, res| {
            res.send(phaseloop::Response::new(200).body(vec![b'x'; 256 << 10]))
        })
        .get_with("/big", |_, _, res| {
            res.send(phaseloop::Response::new(200).body(vec![b'x'; 16 << 20]))
        })
}

fn strict() -> ServerConfig {
    ServerConfig {
        min_body_rate: Some(DataRate {
            bytes_per_second: 1000,
            grace: Duration::from_millis(300),
        }),
        request_timeout: Duration::from_millis(1500),
        min_response_rate: Some(DataRate {
            bytes_per_second: 1 << 20,
            grace: Duration::from_millis(300),
        }),
        ..ServerConfig::default()
    }
}

/// A connection with a 4 KiB receive buffer (a client that takes little at
/// a time) and a 10 s read timeout.
fn small_window(server: &TestServer) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `head`, then `body` a byte every `gap` while the server takes it;
/// returns what the server answered.
fn trickle(server: &TestServer, head: &str, body: &[u8], gap: Duration) -> String {
    let mut c = server.connect();
    c.send(head.as_bytes());
    for b in body {
        std::thread::sleep(gap);
        if c.stream.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
    }
    c.response()
}

#[test]
fn a_body_below_the_minimum_rate_gets_408() {
    let server = TestServer::with_config(app, strict());
    let start = Instant::now();
    // 20 bytes a second against a minimum of 1,000, for up to 1.2 s.
    let r = trickle(
        &server,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n",
        &[b'a'; 24],
        Duration::from_millis(50),
    );
    assert_eq!(
        r,
        refusal("408 Request Timeout", "request body arrived too slowly")
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(server.stats().body_rate_timeouts, 1);
    server.assert_all_released_within(Duration::from_secs(3));
}

#[test]
fn a_route_may_relax_the_body_rate_and_the_request_timeout() {
    let server = TestServer::with_config(app, strict());
    // The same trickle for 1.8 s: past the server's rate and its 1.5 s
    // request timeout, within the route's.
    let r = trickle(
        &server,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n",
        &[b'a'; 18],
        Duration::from_millis(100),
    );
    assert_eq!(r, text_response("200 OK", "18 bytes", ""));
    let stats = server.stats();
    assert_eq!((stats.body_rate_timeouts, stats.request_timeouts), (0, 0));
}

#[test]
fn a_whole_request_slower_than_the_request_timeout_gets_408() {
    fn no_rate() -> ServerConfig {
        ServerConfig {
            min_body_rate: None,
            ..strict()
        }
    }
    let server = TestServer::with_config(app, no_rate());
    // Each byte comes well within the 30 s body timeout, and there is no
    // rate: only the whole request's 1.5 s ends it.
    let r = trickle(
        &server,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n",
        &[b'a'; 40],
        Duration::from_millis(100),
    );
    assert_eq!(
        r,
        refusal("408 Request Timeout", "request not received in time")
    );
    assert_eq!(server.stats().request_timeouts, 1);
}

#[test]
fn a_client_taking_the_response_below_the_minimum_rate_is_closed() {
    let server = TestServer::with_config(app, strict());
    // A small receive window, read a little at a time: about 80 KB/s
    // against a minimum of 1 MiB/s.
    let mut stream = small_window(&server);
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = 0usize;
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(20), "never closed");
    }
    assert!(
        got < 16 << 20,
        "closed before the whole 16 MiB: {got} bytes"
    );
    assert_eq!(server.stats().response_rate_closes, 1);
    server.assert_all_released_within(Duration::from_secs(3));
}

/// A client that never reads answers small enough for the kernel to hold
/// whole: our buffer empties at once, but the run of output lasts until
/// the client takes it, so the rate still judges it (the kernel's queue is
/// looked at when the rate's deadline comes) and the connection is reset,
/// not kept until some other timeout.
#[test]
fn a_client_not_taking_what_the_kernel_holds_is_reset_too() {
    let server = TestServer::with_config(app, strict());
    let mut stream = small_window(&server);
    stream
        .write_all(b"GET /mid HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3).as_slice())
        .unwrap();
    // Well within the 5 s keep-alive timeout: the rate (after 0.3 s) acts.
    server.assert_all_released_within(Duration::from_secs(3));
    assert_eq!(server.stats().response_rate_closes, 1);
    drop(stream);
}
