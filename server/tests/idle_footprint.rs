//! An idle connection holds only what it needs to wake up: after its
//! answer it gives its exchange (buffers, parsing state, answer queue,
//! timer) back to the loop's spares and waits in the idle list; bytes wake
//! it. These tests show the hand-over and what must survive it: request
//! sequence numbers (a late answer never meets a later request), the
//! keep-alive deadline counted from the last response (never earlier, even
//! for a connection that kept its place in the lazily kept list), and a
//! connection that woke and is busy past its old idle deadline.

mod util;

use std::io::Read;
use std::time::{Duration, Instant};

use phaseloop::{App, ServerConfig};
use util::{text_response, Client, TestServer};

fn app() -> App {
    App::new()
        .get_with("/ok", |_, _, res| res.text(200, "ok"))
        .get_with("/late", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(400), move |_| res.text(200, "late"));
        })
        .get_with("/soon", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(140), move |_| res.text(200, "soon"));
        })
        .get_with("/slow", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(700), move |_| res.text(200, "slow"));
        })
}

fn ok() -> String {
    text_response("200 OK", "ok", "")
}

/// Waits until the server counts `busy` connections with an exchange.
fn wait_for_busy(server: &TestServer, busy: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().busy != busy {
        assert!(
            Instant::now() < deadline,
            "busy connections: {}, expected {busy}",
            server.stats().busy
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn answered_connections_give_their_exchange_back_and_wake_on_bytes() {
    let server = TestServer::start(app);
    let mut clients: Vec<Client> = (0..50).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response(), ok());
    }
    // All open, none holding request state.
    wait_for_busy(&server, 0);
    assert_eq!(server.stats().open, 50);
    // Each wakes for its next request, pipelined ones too, and sleeps again.
    for c in &mut clients {
        c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response(), ok());
        assert_eq!(c.response(), ok());
    }
    wait_for_busy(&server, 0);
    assert_eq!(server.stats().requests, 150);
    assert_eq!(server.stats().open, 50);
}

#[test]
fn a_connection_waiting_for_its_handler_keeps_its_exchange() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    // Not idle while the handler works: the answer needs its queue.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.stats().busy, 1);
    assert_eq!(c.response(), text_response("200 OK", "slow", ""));
    wait_for_busy(&server, 0);
}

#[test]
fn a_late_answer_never_meets_a_later_request_after_a_sleep() {
    let cfg = ServerConfig {
        handler_timeout: Some(Duration::from_millis(150)),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut c = server.connect();
    let sent = Instant::now();
    c.send(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "503 Service Unavailable",
            "503 Service Unavailable: the handler did not answer within 150 ms\n",
            ""
        )
    );
    // The connection goes to sleep; its next request wakes it with a new
    // exchange, which must not reuse the old request's number: "/late"
    // answers at 400 ms, while "/soon" (sent at 300 ms, answering 140 ms
    // later) waits for its own.
    wait_for_busy(&server, 0);
    std::thread::sleep(Duration::from_millis(300).saturating_sub(sent.elapsed()));
    c.send(b"GET /soon HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "soon", ""));
}

#[test]
fn an_idle_connection_closes_no_earlier_than_its_keep_alive_timeout() {
    // Its list regroups every 100 ms (a sixteenth).
    let keep_alive = Duration::from_millis(1600);
    let cfg = ServerConfig {
        keep_alive_timeout: keep_alive,
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut c = server.connect();
    // Requests closer together than the list's regrouping time: the
    // connection keeps its first place in the idle list (for up to 100 ms)
    // and only moves its idle time on.
    let mut last_answer = Instant::now();
    for _ in 0..8 {
        c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response(), ok());
        last_answer = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
    }
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = c.stream.read(&mut byte);
    let closed_after = last_answer.elapsed();
    assert!(matches!(read, Ok(0)), "closed by the server: {read:?}");
    // Counted from the last response, not from the place in the list (one
    // 4 ms clock tick of slack for the loop's millisecond timers).
    assert!(
        closed_after + Duration::from_millis(5) >= keep_alive,
        "closed {closed_after:?} after its last answer, before the keep-alive timeout"
    );
    assert_eq!(server.stats().timeouts, 1);
}

#[test]
fn a_connection_busy_past_its_old_idle_deadline_is_not_closed() {
    let cfg = ServerConfig {
        keep_alive_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut c = server.connect();
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), ok());
    // Asleep in the idle list; it wakes for "/slow", whose answer comes
    // 700 ms later, well past the idle deadline its old place implied.
    wait_for_busy(&server, 0);
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "slow", ""));
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), ok());
    assert_eq!(server.stats().timeouts, 0);
}

#[test]
fn a_connection_that_sends_nothing_is_refused_at_the_header_timeout() {
    let cfg = ServerConfig {
        header_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let started = Instant::now();
    let mut c = server.connect();
    // Asleep from its accept: no exchange until bytes come.
    wait_for_busy(&server, 0);
    assert_eq!(server.stats().open, 1);
    let response = c.read_to_close();
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response}"
    );
    assert!(started.elapsed() + Duration::from_millis(5) >= Duration::from_millis(200));
    server.assert_all_released_within(Duration::from_secs(5));
}
