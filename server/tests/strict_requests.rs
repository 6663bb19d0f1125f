//! Requests RFC 9112 and RFC 9110 say to refuse get their exact status on a
//! raw socket (and the connection closes after a 400): a Host that is not
//! `uri-host [":" port]`, an absolute-form target without a host, target
//! characters RFC 3986 has no place for, bad chunk extensions and trailer
//! lines; `OPTIONS *` and unknown methods are answered as RFC 9110 says.

mod util;

use phaseloop::App;
use util::{refused, text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/", |_, _, res| res.text(200, "ok"))
        .get_with("/host", |_, req, res| {
            res.text(200, req.host().unwrap_or("none").to_string())
        })
        .post_with("/echo", |_, mut req, res| {
            let body = req.take_body();
            res.send(phaseloop::Response::new(200).body(body))
        })
        .put_with("/things/:id", |_, _, res| res.text(200, "put"))
}

#[test]
fn a_host_outside_the_grammar_is_refused() {
    let server = TestServer::start(app);
    for host in ["h:p/path", "user@h", "a, b", "h:80x", "[::1", "h h"] {
        refused(
            &server,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            "400 Bad Request",
            "invalid Host header",
        );
    }
    // What the grammar allows is served.
    for host in ["example.com:8080", "127.0.0.1", "[::1]:3000", ""] {
        let mut c = server.connect();
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(c.response(), text_response("200 OK", "ok", ""), "{host:?}");
    }
}

#[test]
fn an_absolute_form_target_needs_a_host_and_its_authority_is_the_host() {
    let server = TestServer::start(app);
    for target in [
        "http://",
        "http:///x",
        "http://?q",
        "http://user@h/",
        "http://h h/",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut c = server.connect();
        c.send(raw.as_bytes());
        let r = c.response();
        assert!(
            r.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{raw:?}: {r}"
        );
        assert!(c.closed());
    }
    let mut c = server.connect();
    c.send(b"GET http://example.com:8080/host HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response("200 OK", "example.com:8080", "")
    );
    c.send(b"GET /host HTTP/1.1\r\nHost: plain.example\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "plain.example", ""));
}

#[test]
fn target_characters_outside_rfc_3986_are_refused() {
    let server = TestServer::start(app);
    for ch in ['#', '<', '>', '{', '}', '|', '\\', '^', '`', '"'] {
        for target in [
            format!("/a{ch}b"),
            format!("/?q={ch}"),
            format!("/{}{ch}", "x".repeat(20)),
        ] {
            refused(
                &server,
                &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
                "400 Bad Request",
                "invalid character in request target",
            );
        }
    }
    // The rest of RFC 3986's characters are served (404: no such route).
    let mut c = server.connect();
    c.send(b"GET /a-b._~!$&'()*+,;=:@%20[x]?q=/?a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.response().starts_with("HTTP/1.1 404 Not Found\r\n"));
}

#[test]
fn options_asterisk_and_unknown_methods_are_answered_as_rfc_9110_says() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    // RFC 9110 §9.3.7: the server's own methods.
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nAllow: GET, POST, PUT, HEAD, OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    // A method no route knows: 501, whatever the path.
    c.send(b"FOOBAR / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "501 Not Implemented",
            "501 Not Implemented: no route answers FOOBAR\n",
            ""
        )
    );
    c.send(b"PATCH /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "501 Not Implemented",
            "501 Not Implemented: no route answers PATCH\n",
            ""
        )
    );
    // A known method on a path without it: 405 with Allow.
    c.send(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let r = c.response();
    assert!(
        r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && r.contains("Allow: GET, HEAD\r\n"),
        "{r}"
    );
    // The connection is still good.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
}

#[test]
fn bad_chunk_extensions_and_trailer_lines_are_refused() {
    let server = TestServer::start(app);
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "5;\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5;bad[=x\r\nhello\r\n0\r\n\r\n",
        "5;a\0b\r\nhello\r\n0\r\n\r\n",
    ] {
        refused(
            &server,
            &format!("{head}{body}"),
            "400 Bad Request",
            "invalid chunk extension",
        );
    }
    for body in ["0\r\nno colon\r\n\r\n", "0\r\nX: a\0b\r\n\r\n"] {
        refused(
            &server,
            &format!("{head}{body}"),
            "400 Bad Request",
            "invalid trailer field",
        );
    }
    let mut c = server.connect();
    c.send(format!("{head}5; a = \"q;v\" ;b\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n").as_bytes());
    let r = c.response();
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nhello"),
        "{r}"
    );
}
