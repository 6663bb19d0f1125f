//! Connection persistence: keep-alive reuse, HTTP/1.0, Connection: close, HEAD.

mod util;

use std::time::Duration;

use phaseloop::{App, ServerConfig};
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "Hello, World!"))
        .get_with("/n/:n", |_, req, res| {
            let n = req.param("n").unwrap().into_owned();
            res.text(200, n)
        })
}

#[test]
fn keep_alive_reuses_one_connection() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    for i in 0..5 {
        c.send(format!("GET /n/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(c.response(), text_response("200 OK", &i.to_string(), ""));
    }
    c.send(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "404 Not Found",
            "404 Not Found: no route for /missing\n",
            ""
        )
    );
    let stats = server.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.responses_by_class, [0, 0, 5, 0, 1, 0]);
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response("200 OK", "Hello, World!", "")
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    assert!(c.closed(), "the server closed after Connection: close");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response("200 OK", "Hello, World!", "")
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    assert!(c.closed());

    let mut c = server.connect();
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            c.response(),
            text_response("200 OK", "Hello, World!", "")
                .replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n")
        );
    }
}

#[test]
fn head_has_get_headers_and_no_body() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    // A GET first: the HEAD's answer must not be the GET's remembered one.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "Hello, World!", ""));
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.head_response();
    assert_eq!(
        head,
        text_response("200 OK", "", "").replace("Content-Length: 0", "Content-Length: 13")
    );
    // The connection is still in sync: the next response is whole.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "Hello, World!", ""));
}

#[test]
fn client_half_close_still_gets_its_answer() {
    // The end of stream must be seen at once: the idle timeout is far longer
    // than the client's 10 s read timeout. (The request and the FIN arrive
    // together: after the short read that takes the request, the FIN's edge
    // is already spent, so the server must read on to end of stream.)
    let cfg = ServerConfig {
        keep_alive_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.shutdown_write();
    // Answered (it may or may not say close: the end of input can be seen
    // after the response was already encoded), then closed.
    let r = c.response();
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("Hello, World!"),
        "{r}"
    );
    assert!(c.closed());
}

#[test]
fn a_request_per_round_trip_costs_one_read() {
    // Each request arrives alone and is read by one short `read`; a second
    // `read` would only return EAGAIN (edge-triggered readiness reports the
    // next request), so the server makes none.
    let server = TestServer::start(app);
    let mut c = server.connect();
    for i in 0..20 {
        c.send(format!("GET /n/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(c.response(), text_response("200 OK", &i.to_string(), ""));
    }
    let stats = server.stats();
    assert_eq!(stats.requests, 20);
    assert!(
        (20..=22).contains(&stats.socket_reads),
        "{} reads for 20 requests",
        stats.socket_reads
    );
}
