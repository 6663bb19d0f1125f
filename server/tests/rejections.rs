//! Every request RFC 9112 says to refuse gets its exact status and a
//! readable reason, then the connection closes; nothing a client sends
//! stops the server.

mod util;

use phaseloop::{App, ServerConfig};
use util::{refusal, refused, text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .post_with("/echo", |_, mut req, res| {
            let body = req.take_body();
            res.send(phaseloop::Response::new(200).body(body))
        })
}

fn small_limits() -> ServerConfig {
    ServerConfig {
        max_request_line: 100,
        max_head_bytes: 400,
        max_headers: 10,
        max_body: 64,
        ..ServerConfig::default()
    }
}

#[test]
fn each_rejection_has_its_status() {
    let server = TestServer::with_config(app, small_limits());
    let cases: Vec<(String, &str, &str)> = vec![
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc".into(), "400 Bad Request", "conflicting Content-Length fields"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".into(), "400 Bad Request", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".into(), "400 Bad Request", "both Content-Length and Transfer-Encoding"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n".into(), "400 Bad Request", "chunked must be the final transfer coding"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(), "501 Not Implemented", "unsupported transfer coding"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n".into(), "400 Bad Request", "chunked must be the final transfer coding"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".into(), "400 Bad Request", "invalid chunk size"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX".into(), "400 Bad Request", "chunk data not followed by CRLF"),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n".into(), "400 Bad Request", "invalid header field name (or obs-fold)"),
        ("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n".into(), "400 Bad Request", "invalid header field name (or obs-fold)"),
        ("GET / HTTP/1.1\nHost: x\n\n".into(), "400 Bad Request", "bare LF in request head"),
        ("GET / HTTP/1.1\r\n\r\n".into(), "400 Bad Request", "missing Host header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), "400 Bad Request", "multiple Host headers"),
        (format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200)), "414 URI Too Long", "request line too long"),
        (format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(500)), "431 Request Header Fields Too Large", "request header block too large"),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-H: 1\r\n".repeat(12)), "431 Request Header Fields Too Large", "too many header fields"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n".into(), "413 Content Too Large", "request body too large"),
        (format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n{}\r\n0\r\n\r\n", "c".repeat(65)), "413 Content Too Large", "request body too large"),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n".into(), "505 HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are supported"),
        ("GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n".into(), "417 Expectation Failed", "unsupported expectation"),
        ("G@T / HTTP/1.1\r\nHost: x\r\n\r\n".into(), "400 Bad Request", "invalid request line"),
        ("GET nope HTTP/1.1\r\nHost: x\r\n\r\n".into(), "400 Bad Request", "invalid request target"),
        ("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03".into(), "400 Bad Request", "invalid request line"),
    ];
    for (raw, status, message) in &cases {
        refused(&server, raw, status, message);
    }
    assert_eq!(server.stats().refused, cases.len() as u64);
    // And the server still serves.
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
}

#[test]
fn refusal_comes_after_earlier_pipelined_responses() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    assert_eq!(
        c.response(),
        refusal("400 Bad Request", "missing Host header")
    );
    assert!(c.closed(), "nothing after the refused request is answered");
}

#[test]
fn not_found_and_method_not_allowed() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "404 Not Found",
            "404 Not Found: no route for /missing\n",
            ""
        )
    );
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "405 Method Not Allowed",
            "405 Method Not Allowed: GET is not allowed on /echo\n",
            "Allow: POST\r\n"
        )
    );
    // No route answers DELETE at all: 501 (RFC 9110 §15.6.2).
    c.send(b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "501 Not Implemented",
            "501 Not Implemented: no route answers DELETE\n",
            ""
        )
    );
}

/// Absolute-form targets route by the path after their authority (RFC
/// 9112 §3.2.2), `/` when they have none; asterisk-form asks about the
/// server (RFC 9110 §9.3.7).
#[test]
fn every_target_form_routes_by_its_path() {
    fn echo_target() -> App {
        let show = |req: &phaseloop::Request| {
            format!(
                "{} {} {}",
                req.path(),
                req.param("id").unwrap_or("-".into()),
                req.query().unwrap_or("-")
            )
        };
        App::new()
            .get_with("/", move |_, req, res| res.text(200, show(&req)))
            .get_with("/a/:id", move |_, req, res| res.text(200, show(&req)))
    }
    let server = TestServer::start(echo_target);
    let mut c = server.connect();
    for (target, body) in [
        ("/a/42?x=1", "/a/42 42 x=1"),
        ("http://example.com/a/42?x=1", "/a/42 42 x=1"),
        ("HTTPS://EXAMPLE.COM:8443/a/7", "/a/7 7 -"),
        ("http://example.com", "/ - -"),
        ("http://example.com?q=2", "/ - q=2"),
        // The query starts at the first `?`; later ones are its own.
        ("/a/42?b=1?c", "/a/42 42 b=1?c"),
        ("/?", "/ - "),
        ("/a/caf\u{e9}?x=\u{e9}", "/a/caf\u{e9} caf\u{e9} x=\u{e9}"),
    ] {
        c.send(format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes());
        assert_eq!(c.response(), text_response("200 OK", body, ""), "{target}");
    }
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nAllow: GET, HEAD, OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn random_garbage_never_stops_the_server() {
    let server = TestServer::start(app);
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..200 {
        let mut c = server.connect();
        let mut junk = Vec::new();
        for _ in 0..(seed % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed & 0xff) as u8);
        }
        // Sometimes start like a real request to get deeper into the parser.
        if seed % 3 == 0 {
            let mut real =
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            real.extend_from_slice(&junk);
            junk = real;
        }
        let _ = std::io::Write::write_all(&mut c.stream, &junk);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut c.stream, &mut sink);
        if !sink.is_empty() {
            let text = String::from_utf8_lossy(&sink);
            assert!(text.starts_with("HTTP/1.1 "), "{text}");
        }
    }
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
}

/// RFC 9110 §9.3.2: an answer to HEAD has no content, a refusal included.
#[test]
fn a_refused_head_request_gets_no_body() {
    let server = TestServer::with_config(app, small_limits());
    for (raw, status, message) in [
        (
            "HEAD / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
            "400 Bad Request",
            "invalid header field name (or obs-fold)",
        ),
        (
            "HEAD / HTTP/1.1\r\n\r\n",
            "400 Bad Request",
            "missing Host header",
        ),
        (
            "HEAD /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n",
            "413 Content Too Large",
            "request body too large",
        ),
        (
            "HEAD /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
            "400 Bad Request",
            "connection closed before the request body was complete",
        ),
    ] {
        let mut c = server.connect();
        c.send(raw.as_bytes());
        c.shutdown_write();
        let full = refusal(status, message);
        let head = &full[..full.find("\r\n\r\n").unwrap() + 4];
        assert_eq!(c.head_response(), head, "for {raw:?}");
        assert!(c.closed(), "nothing after the head of {raw:?}");
    }
}
