//! A handler that panics (sync or async) or forgets to answer yields a 500
//! for its request; the connection and the loop go on.

mod util;

use phaseloop::{App, Response};
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get("/ok", |_, _, res| res.text(200, "ok"))
        .get("/panic", |_, _, _res| panic!("handler bug"))
        .get("/forget", |_, _, res| drop(res))
        .get_async("/async-panic", |_req| async {
            phaseloop_core::sleep(std::time::Duration::from_millis(1)).await;
            if true {
                panic!("async handler bug");
            }
            Response::text(200, "unreachable")
        })
}

#[test]
fn panicking_handlers_answer_500_and_the_connection_goes_on() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "500 Internal Server Error",
            "Internal Server Error: the handler panicked\n",
            ""
        )
    );
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    c.send(b"GET /async-panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "500 Internal Server Error",
            "Internal Server Error: the handler panicked\n",
            ""
        )
    );
    c.send(b"GET /forget HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "500 Internal Server Error",
            "Internal Server Error: the handler finished without responding\n",
            ""
        )
    );
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    assert_eq!(server.stats().handler_panics, 2);
}
