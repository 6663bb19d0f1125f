//! A handler that panics (sync or async) or forgets to answer yields a 500
//! for its request; the connection and the loop go on.

mod util;

use phaseloop::{App, Response};
use util::{text_response, TestServer};

fn app() -> App {
    App::new()
        .get_with("/ok", |_, _, res| res.text(200, "ok"))
        .get_with("/panic", |_, _, _res| panic!("handler bug"))
        .get_with("/forget", |_, _, res| drop(res))
        .get_async("/async-panic", |_req, _| async {
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
            "500 Internal Server Error: the handler panicked\n",
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
            "500 Internal Server Error: the handler panicked\n",
            ""
        )
    );
    c.send(b"GET /forget HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        c.response(),
        text_response(
            "500 Internal Server Error",
            "500 Internal Server Error: the handler finished without responding\n",
            ""
        )
    );
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(), text_response("200 OK", "ok", ""));
    assert_eq!(server.stats().handler_panics, 2);
}

/// Handlers that panic later, in callbacks they scheduled, and a response
/// hook that panics: the server's loop catches panics.
fn deferred_app() -> App {
    use phaseloop_core::{Job, Lane};
    App::new()
        .wrap(
            |lp: &phaseloop_core::Loop,
             req: phaseloop::Request,
             mut res: phaseloop::Responder,
             next: phaseloop::Next| {
                if req.path().starts_with("/hook-panic") {
                    res.on_send(|_| panic!("response hook bug"));
                }
                next.run(lp, req, res)
            },
        )
        .get_with("/ok", |_, _, res| res.text(200, "ok"))
        .get_with("/hook-panic", |_, _, res| res.text(200, "unreachable"))
        // The hook then runs while the handler's panic unwinds: caught
        // inside the responder's drop, a second panic does not abort.
        .get_with("/hook-panic-too", |_, _, _res| panic!("handler bug"))
        .get_with("/timer-panic", |lp, _, res| {
            lp.set_timeout(std::time::Duration::from_millis(1), move |_| {
                let _res = res;
                panic!("timer callback bug");
            });
        })
        .get_with("/immediate-panic", |lp, _, res| {
            lp.set_immediate(move |_| {
                let _res = res;
                panic!("immediate callback bug");
            });
        })
        .get_with("/job-panic", |lp, _, res| {
            // (A refused job would drop the responder unrun: a 500 that
            // says so, which the test would see.)
            let _ = Job::new(Lane::Cpu, || 1).submit(lp, move |_, _| {
                let _res = res;
                panic!("job callback bug");
            });
        })
}

#[test]
fn panics_in_deferred_callbacks_and_hooks_answer_500_in_order() {
    let server = TestServer::start(deferred_app);
    let panicked = text_response(
        "500 Internal Server Error",
        "500 Internal Server Error: the handler panicked\n",
        "",
    );
    let ok = text_response("200 OK", "ok", "");
    let mut c = server.connect();
    // Pipelined: each answer keeps its place, the connection stays open.
    c.send(
        b"GET /timer-panic HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /ok HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /immediate-panic HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /job-panic HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hook-panic HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hook-panic-too HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    for expected in [
        &panicked, &ok, &panicked, &panicked, &panicked, &panicked, &ok,
    ] {
        assert_eq!(&c.response(), expected);
    }
    // The loop serves on, other connections included.
    let mut other = server.connect();
    other.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(other.response(), ok);
    // The hook's panic inside the handler's counts too.
    assert_eq!(server.stats().handler_panics, 6);
}
