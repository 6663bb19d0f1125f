//! Request bodies (Content-Length and chunked), 100-continue, JSON in and
//! out, and per-route body limits.

mod util;

use phaseloop::{App, Error, Json, Response};
use serde::{Deserialize, Serialize};
use util::{refusal, text_response, TestServer};

#[derive(Deserialize, Serialize)]
struct Order {
    item: String,
    qty: u32,
}

fn app() -> App {
    App::new()
        .post_with("/echo", |_, mut req, res| {
            let body = req.take_body();
            res.send(Response::text(200, body))
        })
        .post("/orders", |req, _| {
            let Json(order): Json<Order> = req.extract()?;
            Ok::<_, Error>((201, Json(order)))
        })
        .body_limit(32)
}

#[test]
fn content_length_and_chunked_bodies() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.response(), text_response("200 OK", "hello world", ""));
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: ignored\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "hello world", ""));
    // A body split across many writes.
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
    for _ in 0..20 {
        c.send(&[b'z'; 100]);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(c.response(), text_response("200 OK", &"z".repeat(2000), ""));
}

#[test]
fn expect_100_continue() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_eq!(c.response(), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"ping");
    assert_eq!(c.response(), text_response("200 OK", "ping", ""));
    // Too large: refused without asking for the body.
    c.send(
        b"POST /orders HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
    );
    assert_eq!(
        c.response(),
        refusal("413 Content Too Large", "request body too large")
    );
    assert!(c.closed());
}

#[test]
fn json_in_and_out_with_route_limit() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    let body = r#"{"item":"pho","qty":2}"#;
    c.send(
        format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(
        c.response(),
        format!(
            "HTTP/1.1 201 Created\r\nDate: <date>\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    );
    let bad = r#"{"item":"pho","qty":"two"}"#;
    c.send(
        format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=utf-8\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{bad}",
            bad.len()
        )
        .as_bytes(),
    );
    let r = c.response();
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(
        r.contains(r#"{"error":"invalid JSON: invalid type: string \"two\", expected u32"#),
        "{r}"
    );
    // Without a JSON content type: 415, rendered as text for a client
    // that does not ask for JSON.
    c.send(
        format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(
        c.response(),
        refusal(
            "415 Unsupported Media Type",
            "expected a body with Content-Type: application/json"
        )
        .replace("Connection: close\r\n", "")
    );
    // The connection survives a handler-level 400.
    c.send(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n");
    assert_eq!(
        c.response(),
        refusal("413 Content Too Large", "request body too large")
    );
}
