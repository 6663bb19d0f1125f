//! The examples in `server/examples/` serve what their doc comments say.

mod util;

#[path = "../examples/async_handler.rs"]
mod async_handler;
#[path = "../examples/deferred.rs"]
mod deferred;
#[path = "../examples/hello_world.rs"]
mod hello_world;
#[path = "../examples/json_api.rs"]
mod json_api;

use util::{body_of, status_of, text_response, TestServer};

#[test]
fn hello_world_example() {
    let server = TestServer::start(hello_world::app);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "Hello, World!", ""));
}

#[test]
fn json_api_example() {
    let server = TestServer::start(json_api::app);
    let mut c = server.connect();
    let body = r#"{"name":"pho","price_cents":1250}"#;
    c.send(
        format!(
            "POST /dishes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(body_of(&c.response()), r#"{"id":1}"#);
    c.send(b"GET /dishes/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(body_of(&c.response()), body);
    c.send(b"POST /dishes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: 3\r\n\r\n{x}");
    let r = c.response();
    assert_eq!(status_of(&r), "HTTP/1.1 400 Bad Request");
    assert!(
        body_of(&r).starts_with(r#"{"error":"invalid JSON: key must be a string"#),
        "{r}"
    );
    c.send(b"GET /dishes/9 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n");
    assert_eq!(body_of(&c.response()), r#"{"error":"no such dish"}"#);
}

#[test]
fn deferred_example() {
    let server = TestServer::start(deferred::app);
    let mut c = server.connect();
    c.send(b"GET /timer HTTP/1.1\r\nHost: x\r\n\r\nGET /hash?password=pw HTTP/1.1\r\nHost: x\r\n\r\nGET /immediate HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(body_of(&c.response()), "answered from a timer");
    assert_eq!(
        body_of(&c.response()).len(),
        32,
        "16 bytes of pbkdf2 in hex"
    );
    assert_eq!(body_of(&c.response()), "answered from the check phase");
}

#[test]
fn async_handler_example() {
    let server = TestServer::start(async_handler::app);
    let mut c = server.connect();
    c.send(b"GET /report HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert!(body_of(&r).starts_with("waited 10 ms, then read "), "{r}");
}
