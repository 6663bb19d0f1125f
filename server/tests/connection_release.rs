//! No connection is held for ever: a request cut short by the client's end
//! of stream is answered 400 and closed at once, and every state a
//! connection can wait in (a head, a body, a handler, an idle keep-alive,
//! our own half-close) ends within its bound.

mod util;

use std::io::Write;
use std::time::Duration;

use phaseloop::{App, ServerConfig};
use util::{refusal, text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .post_with("/echo", |_, _, res| res.text(200, "got it"))
        // Never answers: only a handler timeout ends its wait.
        .get_with("/never", |_, _, res| std::mem::forget(res))
}

/// Far below every default timeout (the shortest is 5 s): a connection
/// released within it was released by the event, not by a timer.
const AT_ONCE: Duration = Duration::from_millis(1500);

const CUT_BODY: &str = "connection closed before the request body was complete";
const CUT_HEAD: &str = "connection closed before the request head was complete";

#[test]
fn end_of_stream_inside_a_content_length_body_answers_400_and_closes() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
    c.shutdown_write();
    assert_eq!(c.response(), refusal("400 Bad Request", CUT_BODY));
    assert!(c.closed());
    server.assert_all_released_within(AT_ONCE);
    assert_eq!(server.stats().refused, 1);
}

#[test]
fn end_of_stream_inside_a_chunked_body_answers_400_and_closes() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    c.shutdown_write();
    assert_eq!(c.response(), refusal("400 Bad Request", CUT_BODY));
    assert!(c.closed());
    server.assert_all_released_within(AT_ONCE);
}

#[test]
fn end_of_stream_inside_a_head_answers_400_and_closes() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
    c.shutdown_write();
    assert_eq!(c.response(), refusal("400 Bad Request", CUT_HEAD));
    assert!(c.closed());
    server.assert_all_released_within(AT_ONCE);
}

#[test]
fn answered_requests_go_out_before_the_cut_one_is_refused() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    c.shutdown_write();
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    assert_eq!(c.response(), refusal("400 Bad Request", CUT_BODY));
    assert!(c.closed());
    server.assert_all_released_within(AT_ONCE);
}

/// The outside run's case: the client closes both ways in the middle of a
/// body. Today's defaults (30 s body timeout) must not be what frees it.
#[test]
fn clients_gone_in_the_middle_of_bodies_are_released_at_once() {
    let server = TestServer::start(app);
    for i in 0..50 {
        let mut c = server.connect();
        if i % 2 == 0 {
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
        } else {
            c.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nabc",
            );
        }
        drop(c);
    }
    server.assert_all_released_within(AT_ONCE);
    // The server still serves.
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
}

#[test]
fn a_client_that_shuts_its_side_while_idle_is_closed_at_once() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    c.shutdown_write();
    assert!(c.closed());
    server.assert_all_released_within(AT_ONCE);
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        send_timeout: Duration::from_millis(300),
        handler_timeout: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    }
}

/// Every waiting state, all at once on one server, each with a client
/// that stays connected and sends nothing more: all are released within
/// the longest bound that applies (the 2 s linger of our own half-close,
/// plus slack for a busy machine).
#[test]
fn every_waiting_state_ends_within_its_bound() {
    let server = TestServer::with_config(app, short_timeouts());
    let mut clients = Vec::new();
    // Reading a head.
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n");
    clients.push(c);
    // Reading a body.
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    clients.push(c);
    // Waiting on a handler that never answers.
    let mut c = server.connect();
    c.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    clients.push(c);
    // The same, with the client's side already shut.
    let mut c = server.connect();
    c.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    c.shutdown_write();
    clients.push(c);
    // Idle keep-alive after an answer.
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    clients.push(c);
    // Our side shut after a refusal while the client keeps sending
    // (lingering): bytes after a bad request are read and dropped.
    let mut c = server.connect();
    c.send(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n");
    clients.push(c);
    // A connection that never sends a byte.
    clients.push(server.connect());

    server.assert_all_released_within(Duration::from_secs(6));
    // Each got what its state calls for, then the end of the stream.
    let expect = [
        Some(refusal(
            "408 Request Timeout",
            "request not received in time",
        )),
        Some(refusal(
            "408 Request Timeout",
            "request not received in time",
        )),
        None,
        None,
        None,
        Some(refusal("400 Bad Request", "invalid request line")),
        Some(refusal(
            "408 Request Timeout",
            "request not received in time",
        )),
    ];
    for (i, (c, want)) in clients.iter_mut().zip(expect).enumerate() {
        match want {
            Some(want) => assert_eq!(c.response(), want, "client {i}"),
            None if i == 2 || i == 3 => {
                let r = c.response();
                assert!(
                    r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
                    "client {i}: {r}"
                );
            }
            None => {}
        }
        assert!(c.closed(), "client {i} saw the end of the stream");
    }
    let _ = clients[5].stream.write_all(b"more");
}
