//! Timeouts from the loop's timers: a slowloris client gets 408 and is
//! closed; idle keep-alive connections and stalled bodies are closed.

mod util;

use std::time::{Duration, Instant};

use phaseloop::{App, ServerConfig};
use util::{refusal, text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .post_with("/echo", |_, _, res| res.text(200, "got it"))
}

fn fast_timeouts() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

#[test]
fn slowloris_gets_408_within_the_header_timeout() {
    let server = TestServer::with_config(app, fast_timeouts());
    let mut c = server.connect();
    let start = Instant::now();
    // One byte every 50 ms: each arrives well within any per-byte timeout,
    // but the head as a whole takes too long.
    let mut answered = false;
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
        if std::io::Write::write_all(&mut c.stream, std::slice::from_ref(b)).is_err() {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_millis(600) {
            answered = true;
            break;
        }
    }
    assert!(answered, "the head was still accepted after the timeout");
    assert_eq!(
        c.response(),
        refusal("408 Request Timeout", "request not received in time")
    );
    assert!(c.closed());
    assert!(server.stats().timeouts >= 1);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let server = TestServer::with_config(app, fast_timeouts());
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    let start = Instant::now();
    assert!(c.closed(), "closed quietly when idle");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "not before the keep-alive timeout: {waited:?}"
    );
}

#[test]
fn connection_that_never_sends_is_closed() {
    let server = TestServer::with_config(app, fast_timeouts());
    let mut c = server.connect();
    // Nothing sent at all: the header timeout applies from accept. No 408 is
    // owed to a client that never started a request.
    let r = {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut c.stream, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 408"), "{r}");
}

#[test]
fn stalled_body_gets_408() {
    let server = TestServer::with_config(app, fast_timeouts());
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(
        c.response(),
        refusal("408 Request Timeout", "request not received in time")
    );
    assert!(c.closed());
}
