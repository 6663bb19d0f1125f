//! A handler slower than `ServerConfig::handler_timeout`: its request is
//! answered 503 in its place, the requests behind it go on, and its late
//! answer is dropped. A stream started in time is not cut; without the
//! setting a handler may take as long as it likes.

mod util;

use std::cell::RefCell;
use std::io::Read;
use std::time::Duration;

use phaseloop::{App, Responder, Response, ServerConfig};
use util::{text_response, TestServer};

thread_local! {
    /// Responders of handlers that never answer, kept alive (a dropped
    /// responder would answer 500 at once).
    static HELD: RefCell<Vec<Responder>> = const { RefCell::new(Vec::new()) };
}

fn app() -> App {
    App::new()
        .get_with("/ok", |_, _, res| res.text(200, "ok"))
        .get_with("/never", |_, _, res| {
            HELD.with(|h| h.borrow_mut().push(res))
        })
        .get_with("/late", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(300), move |_| res.text(200, "late"));
        })
        .get_with("/in-time", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(20), move |_| res.text(200, "in time"));
        })
        .get_with("/stream", |lp, _, res| {
            let writer = res.stream(Response::text(200, "start\n"));
            lp.set_timeout(Duration::from_millis(300), move |_| writer.finish());
        })
}

fn with_timeout() -> ServerConfig {
    ServerConfig {
        handler_timeout: Some(Duration::from_millis(100)),
        ..ServerConfig::default()
    }
}

fn timed_out() -> String {
    text_response(
        "503 Service Unavailable",
        "503 Service Unavailable: the handler did not answer within 100 ms\n",
        "",
    )
}

#[test]
fn slow_handlers_get_503_in_their_place_and_late_answers_are_dropped() {
    let server = TestServer::with_config(app, with_timeout());
    let mut c = server.connect();
    c.send(
        b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /ok HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /late HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /in-time HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let ok = text_response("200 OK", "ok", "");
    assert_eq!(c.response(), timed_out());
    assert_eq!(c.response(), ok);
    assert_eq!(c.response(), timed_out());
    assert_eq!(c.response(), text_response("200 OK", "in time", ""));
    assert_eq!(c.response(), ok);
    // "/late" answers at 300 ms: nothing of it reaches the client.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let extra = c.stream.read(&mut byte);
    assert!(
        matches!(&extra, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "nothing more on the wire: {extra:?}"
    );
    // The connection serves on.
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), ok);
    let stats = server.stats();
    assert_eq!(stats.handler_timeouts, 2);
    // Handlers' answers as the clients got them: three "ok" and "in time";
    // "/late"'s 200 reached nobody and is not counted.
    assert_eq!(stats.responses_by_class[2], 4);
}

#[test]
fn a_stream_started_in_time_is_not_cut() {
    let server = TestServer::with_config(app, with_timeout());
    let mut c = server.connect();
    c.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = c.read_through(b"\r\n0\r\n\r\n");
    assert!(got.ends_with("\r\n6\r\nstart\n\r\n0\r\n\r\n"), "{got}");
    assert_eq!(server.stats().handler_timeouts, 0);
}

#[test]
fn without_the_setting_a_handler_takes_as_long_as_it_likes() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "late", ""));
}

#[test]
fn a_connection_paused_by_unanswered_requests_reads_on_after_their_503s() {
    // Four unanswered requests pause reading (the default
    // `max_unanswered`); their 503s must let the fifth and sixth in.
    let server = TestServer::with_config(app, with_timeout());
    let mut c = server.connect();
    let mut burst = Vec::new();
    for _ in 0..5 {
        burst.extend_from_slice(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    burst.extend_from_slice(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(&burst);
    for _ in 0..5 {
        assert_eq!(c.response(), timed_out());
    }
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    assert_eq!(server.stats().handler_timeouts, 5);
}

/// A request whose body is still arriving has no handler yet: the handler
/// timeout starts once it is dispatched, not while the body comes (a slow
/// upload got 503 from a handler that had not been called).
#[test]
fn a_body_still_arriving_is_not_timed_as_a_handler() {
    fn upload() -> App {
        App::new().post_with("/upload", |_, req, res| {
            res.text(200, format!("{} bytes", req.body().len()))
        })
    }
    let server = TestServer::with_config(upload, with_timeout());
    let mut c = server.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    // Several handler timeouts long, well within the body timeout.
    std::thread::sleep(Duration::from_millis(600));
    c.send(b"world");
    assert_eq!(c.response(), text_response("200 OK", "10 bytes", ""));
}
